//! The archive commands: `backup`, `restore`, `inspect` and `verify ARCHIVE`.
//! They turn arguments into plan options, ask for confirmation and render
//! the result; the work is in `dockroot::plan::{backup, restore}`.

use std::io::IsTerminal;
use std::path::Path;

use anyhow::{Result, bail};
use serde_json::json;

use super::commands::print_report;
use super::exit;
use super::output::{Output, bytes};
use super::{BackupArgs, BindsArg, CompressArg, Global, InspectArgs, RestoreArgs, SnapshotArg, VerifyArgs};
use dockroot::archive::restic::{Keep, Restic};
use dockroot::archive::{self, WriterOptions};
use dockroot::docker::api::DockerApi;
use dockroot::plan::backup::meta::BackupMeta;
use dockroot::plan::backup::meta::{BindTree, SkippedBind};
use dockroot::plan::backup::snapshot::Request;
use dockroot::plan::backup::stream::ResticTarget;
use dockroot::plan::backup::{self as bk, BackupOptions};
use dockroot::plan::restore::{self as rs, RestoreOptions};
use dockroot::progress::Progress;
use dockroot::service::ServiceKind;
use dockroot::service::wait::Timing;

fn api(g: &Global) -> DockerApi {
    super::socket::api(g)
}

fn service(g: &Global) -> ServiceKind {
    ServiceKind::from(&g.service)
}

fn threads(g: &Global) -> usize {
    g.threads.unwrap_or_else(dockroot::tree::default_threads)
}

/// Prints a result line; on stderr when stdout carries the archive.
fn say(out: &Output, to_stderr: bool, line: &str) {
    if to_stderr {
        if !out.quiet && !out.json {
            super::output::err_line(line);
        }
    } else {
        out.say(line);
    }
}

pub fn backup(a: &BackupArgs, g: &Global, out: &Output, progress: &dyn Progress) -> Result<i32> {
    let opts = backup_options(a, g)?;
    let stdout = a.output.as_deref() == Some(Path::new("-"));
    if stdout && std::io::stdout().is_terminal() {
        bail!("refusing to write the archive to a terminal; redirect stdout or use -o FILE");
    }
    if a.dry_run {
        return backup_dry_run(&opts, out, stdout, progress);
    }
    let s = bk::backup(&opts, progress)?;
    say_backed_up(out, stdout, &s);
    if !stdout {
        out.json(&json!({"command": "backup", "ok": true, "summary": s}));
    }
    Ok(0)
}

fn backup_options(a: &BackupArgs, g: &Global) -> Result<BackupOptions> {
    let level = match (a.compress, &a.restic) {
        // restic deduplicates an uncompressed stream; it compresses itself (repository v2).
        (_, Some(_)) | (CompressArg::None, _) => None,
        (CompressArg::Zstd, None) => Some(a.level),
    };
    let mut writer = WriterOptions { level, ..WriterOptions::default() };
    if let Some(t) = g.threads {
        writer.threads = t as u32;
    }
    Ok(BackupOptions {
        data_root: g.data_root.clone(),
        service: service(g),
        api: api(g),
        daemon_json: g.daemon_json(),
        output: a.output.clone().unwrap_or_else(|| "-".into()),
        keep: a.keep,
        // A rootless daemon's configuration is its user's, not /etc/docker.
        config: !a.no_config && g.rootless.is_none(),
        host_root: "/".into(),
        dockerd: "dockerd".into(),
        writer,
        timing: Timing::default(),
        state_dir: g.state_dir.clone(),
        snapshot: match (a.snapshot, a.stop_the_world) {
            // Docker stopped for the whole archive: no snapshot either.
            (SnapshotArg::Auto | SnapshotArg::None, true) => Request::None,
            (_, true) => bail!("--stop-the-world archives with Docker stopped throughout; it does not go with --snapshot btrfs|reflink"),
            (SnapshotArg::Auto, false) => Request::Auto,
            (SnapshotArg::Btrfs, false) => Request::Btrfs,
            (SnapshotArg::Reflink, false) => Request::Reflink,
            (SnapshotArg::None, false) => Request::None,
        },
        threads: g.threads.unwrap_or_else(dockroot::tree::default_threads),
        live: !a.stop_the_world,
        shared_store: a.shared_store,
        restic: a.restic.as_ref().map(|r| {
            let keep = Keep { last: a.keep_last, daily: a.keep_daily, weekly: a.keep_weekly, monthly: a.keep_monthly };
            ResticTarget::new(Restic::new((!r.is_empty()).then(|| r.clone())), keep)
        }),
        rootless: g.rootless.clone(),
        binds: match a.binds {
            BindsArg::Auto => dockroot::plan::backup::binds::Binds::Auto,
            BindsArg::None => dockroot::plan::backup::binds::Binds::None,
        },
        exclude_binds: a.exclude_bind.clone(),
    })
}

/// `backup --dry-run`: what would be stopped, captured and written (the
/// mode the backup itself would run in, from [`bk::prepare`]).
fn backup_dry_run(opts: &BackupOptions, out: &Output, stdout: bool, progress: &dyn Progress) -> Result<i32> {
    let bk::Prepared { plan: p, binds, trees, mode, snapshot_skipped: skipped, .. } = bk::prepare(opts, progress)?;
    for w in &p.warnings {
        out.problem(&format!("warning: {w}"));
    }
    let to = p.output.as_deref().map(|p| p.display().to_string()).unwrap_or("stdout".into());
    let how = match &mode {
        bk::Mode::Live => format!(
            "would archive {} to {to} while Docker runs, then stop Docker ({}) and append what changed",
            p.data_root.display(),
            p.service
        ),
        _ => format!("would stop Docker ({}), archive {} to {to}", p.service, p.data_root.display()),
    };
    say(out, stdout, &how);
    if let Some(t) = trees.iter().find(|t| t.tree == dockroot::archive::Tree::Containerd) {
        say(out, stdout, &format!("  with containerd's root {} (the containerd image store)", t.root.display()));
    }
    say_binds(out, stdout, &binds.carried, &binds.skipped, "would carry", "would not carry");
    match &mode {
        bk::Mode::Snapshot(caps) => {
            for c in caps {
                say(
                    out,
                    stdout,
                    &format!(
                        "  from a {} snapshot of {} at {}, taken with Docker stopped; Docker starts before the archive",
                        c.method.name(),
                        c.tree.display(),
                        c.path.display()
                    ),
                );
            }
        }
        bk::Mode::Stopped(why) => say(out, stdout, &format!("  with Docker stopped for the whole archive ({why})")),
        bk::Mode::Live => {}
    }
    for c in &p.config_files {
        say(out, stdout, &format!("  with config file {}", c.display()));
    }
    for r in &p.prune {
        say(out, stdout, &format!("  then delete old archive {}", r.display()));
    }
    let snapshot = matches!(mode, bk::Mode::Snapshot(_));
    say(out, stdout, if snapshot { "and delete the snapshots after the archive" } else { "then start Docker again" });
    if !stdout {
        let method = match &mode {
            bk::Mode::Snapshot(c) => c.first().map(|c| c.method.name()).unwrap_or("none"),
            _ => "none",
        };
        let stopped = match &mode {
            bk::Mode::Stopped(why) => Some(why.as_str()),
            _ => None,
        };
        out.json(&json!({"command": "backup", "dry_run": true, "plan": p, "snapshot": method, "snapshot_skipped": skipped,
            "live": matches!(mode, bk::Mode::Live), "stopped_reason": stopped, "binds": binds.carried, "binds_skipped": binds.skipped}));
    }
    Ok(0)
}

/// Names every bind source carried and every one not, with the reason.
fn say_binds(out: &Output, stdout: bool, carried: &[BindTree], skipped: &[SkippedBind], yes: &str, no: &str) {
    for b in carried {
        say(out, stdout, &format!("  {yes} bind source {}", dockroot::plan::backup::binds::describe(b)));
    }
    for b in skipped {
        say(out, stdout, &format!("  {no} bind source {} ({}): {}", b.path.display(), b.containers.join(", "), b.reason));
    }
}

fn say_backed_up(out: &Output, stdout: bool, s: &bk::BackupSummary) {
    let dest = match (&s.output, &s.restic) {
        (Some(p), _) => p.display().to_string(),
        (None, Some(r)) => {
            format!("restic snapshot {} ({}, a {} stream)", &r.snapshot[..r.snapshot.len().min(8)], r.file, bytes(s.archive_bytes))
        }
        (None, None) => "stdout".into(),
    };
    say(
        out,
        stdout,
        &format!(
            "backed up {} entries, {} into {dest}{} in {:.2}s (Docker down {:.2}s{})",
            s.entries,
            bytes(s.bytes),
            if stdout || s.restic.is_some() { String::new() } else { format!(" ({})", bytes(s.archive_bytes)) },
            s.seconds,
            s.downtime_seconds,
            if s.snapshot == "none" { String::new() } else { format!(", {} snapshot", s.snapshot) }
        ),
    );
    say_binds(out, stdout, &s.meta.binds, &s.meta.binds_skipped, "carried", "did not carry");
    if let Some(p) = &s.phases {
        say(
            out,
            stdout,
            &format!(
                "  phase 1 (Docker running): {} entries, {} ({} changed while read); phase 2 (Docker stopped): {} entries, {}, {} deleted",
                p.phase1.entries,
                bytes(p.phase1.bytes),
                p.phase1.raced,
                p.phase2.entries,
                bytes(p.phase2.bytes),
                p.phase2.deleted
            ),
        );
    }
    for r in &s.removed {
        say(out, stdout, &format!("removed old archive {}", r.display()));
    }
    if let Some(r) = &s.restic {
        say(
            out,
            stdout,
            &format!("  read back from the repository: {} manifest entries verified; tags {}", r.verified_entries, r.tags.join(",")),
        );
        for id in &r.forgotten {
            say(out, stdout, &format!("forgot snapshot {} (--keep-*)", &id[..id.len().min(8)]));
        }
    }
}

pub fn restore(a: &RestoreArgs, g: &Global, out: &Output, progress: &dyn Progress) -> Result<i32> {
    super::archive_exists(&a.archive)?;
    let opts = RestoreOptions {
        source: a.archive.clone(),
        data_root: g.data_root.clone(),
        service: service(g),
        api: api(g),
        state_dir: g.state_dir.clone(),
        force: a.force,
        allow_downgrade: a.allow_downgrade,
        with_config: a.with_config,
        host_root: "/".into(),
        daemon_json: g.daemon_json(),
        dockerd: "dockerd".into(),
        threads: threads(g),
        timing: Timing::default(),
        shared_store: a.shared_store,
        rootless: g.rootless.clone(),
        remap_ids: a.remap_ids,
    };
    if a.dry_run {
        let mut warnings = Vec::new();
        let place = rs::place(&opts, &mut warnings)?;
        let r = archive::open(&a.archive)?;
        let meta = BackupMeta::parse(&r.meta)?;
        let second = rs::containerd_place(&opts, &meta, &mut warnings)?;
        for w in &warnings {
            out.problem(&format!("warning: {w}"));
        }
        out.say(&format!(
            "would extract {} into {} and verify it against its manifest while Docker runs,",
            a.archive.display(),
            place.staging("<UTC time>").display()
        ));
        if let (Some(t), Some((p, staging))) = (&meta.containerd_tree, &second) {
            out.say(&format!(
                "and containerd's root ({} entries) into {}, to swap in the same step (containerd stopped too): {}",
                t.entries,
                staging.display(),
                p.describe()
            ));
        }
        let ts = "<UTC time>";
        let binds = rs::binds::plan(&meta, &place.data_root, second.as_ref().map(|s| s.0.data_root.as_path()), a.force, ts)?;
        for b in &binds {
            out.say(&format!(
                "and bind source {} ({} entries, used by {}) into {}, to rename into place{}",
                b.bind.path.display(),
                b.bind.entries,
                b.bind.containers.join(", "),
                b.staging.display(),
                b.old.as_ref().map(|o| format!(" (what is there now is kept as {})", o.display())).unwrap_or_default()
            ));
        }
        for b in &meta.binds_skipped {
            out.say(&format!("(the archive does not carry bind source {}: {})", b.path.display(), b.reason));
        }
        out.say(&format!(
            "then stop Docker ({}), {}{}, start Docker and compare {} images, {} containers, {} volumes",
            service(g).resolve(),
            place.describe(),
            if a.with_config { ", restore the configuration" } else { "" },
            meta.docker.as_ref().map_or(0, |d| d.images.len()),
            meta.docker.as_ref().map_or(0, |d| d.containers.len()),
            meta.docker.as_ref().map_or(0, |d| d.volumes.len())
        ));
        out.json(&json!({"command": "restore", "dry_run": true, "meta": meta, "place": place, "swap": place.describe(),
                "containerd_place": second.as_ref().map(|s| &s.0), "containerd_swap": second.as_ref().map(|s| s.0.describe()),
                "binds": binds, "warnings": warnings}));
        return Ok(0);
    }
    let dr = g.data_root.as_ref().map_or("the data-root".into(), |d| d.display().to_string());
    super::output::confirm(a.yes, &format!("replace {dr} with the contents of {}?", a.archive.display()), a.archive == Path::new("-"))
        .map_err(anyhow::Error::msg)?;
    let s = rs::restore(&opts, progress)?;
    for w in &s.warnings {
        out.problem(&format!("warning: {w}"));
    }
    out.say(&format!(
        "restored {} entries into {} in {:.2}s (Docker down {:.2}s){}",
        s.meta.entries,
        s.data_root.display(),
        s.seconds,
        s.downtime_seconds,
        s.old.as_ref().map(|o| format!("; the previous data-root is kept as {}", o.display())).unwrap_or_default()
    ));
    if let Some(root) = &s.containerd_root {
        out.say(&format!(
            "restored {} entries of containerd's root into {}{}",
            s.containerd_entries,
            root.display(),
            s.containerd_old.as_ref().map(|o| format!("; the previous one is kept as {}", o.display())).unwrap_or_default()
        ));
    }
    for b in &s.binds {
        out.say(&format!(
            "restored bind source {} (used by {}){}",
            b.bind.path.display(),
            b.bind.containers.join(", "),
            b.old.as_ref().map(|o| format!("; what was there is kept as {}", o.display())).unwrap_or_default()
        ));
    }
    for b in &s.meta.binds_skipped {
        out.say(&format!("not restored bind source {}: {}", b.path.display(), b.reason));
    }
    out.json(&json!({"command": "restore", "ok": true, "summary": s}));
    Ok(0)
}

pub fn inspect(a: &InspectArgs, out: &Output) -> Result<i32> {
    super::archive_exists(&a.archive)?;
    let r = archive::open(&a.archive)?;
    let meta = BackupMeta::parse(&r.meta)?;
    let size: Option<u64> = std::fs::metadata(&a.archive).ok().filter(|m| m.is_file()).map(|m| m.len());
    // A live backup's phase sizes and the volumes' sizes (from the manifest,
    // the last member) are spread over the stream: read it through.
    let census = archive::phases::census(r)?;
    let phases = census.phases;
    if out.json {
        out.json(&json!({"command": "inspect", "archive": a.archive, "size": size, "meta": meta, "phases": phases,
            "volume_sizes": census.volumes}));
        return Ok(0);
    }
    let mut lines = vec![
        format!("archive:        {}{}", a.archive.display(), size.map(|s| format!(" ({})", bytes(s))).unwrap_or_default()),
        format!("created:        {} on {} by dockroot {}", meta.created, meta.hostname, meta.tool_version),
        format!("data-root:      {}", meta.data_root.display()),
        format!("engine:         {}", meta.engine_version.as_deref().unwrap_or("unknown")),
        format!("storage driver: {}", meta.storage_driver.as_deref().unwrap_or("unknown")),
        format!("entries:        {} ({})", meta.entries, bytes(meta.bytes)),
    ];
    if let Some(r) = &meta.rootless {
        lines.push(format!("rootless:       {}'s daemon, uids {}, gids {}", r.user, r.uids, r.gids));
    }
    if let Some(p) = phases {
        lines.push(format!(
            "phases:         1 (Docker running): {} members, {} ({} changed while read); 2 (Docker stopped): {} members, {}; {} deleted",
            p.phase1.members,
            bytes(p.phase1.bytes),
            p.raced,
            p.phase2.members,
            bytes(p.phase2.bytes),
            p.deleted
        ));
    }
    if let Some(e) = &meta.engine {
        lines.push(format!("image store:    {}", e.image_store));
        lines.push(format!(
            "containerd:     {} ({}, root {})",
            e.containerd_version.as_deref().unwrap_or("unknown version"),
            e.containerd_serving,
            e.containerd_root.display()
        ));
    }
    if let Some(t) = &meta.containerd_tree {
        lines.push(format!(
            "containerd tree: {} entries ({}) of {}, namespaces {}",
            t.entries,
            bytes(t.bytes),
            t.root.display(),
            t.namespaces.join(", ")
        ));
    }
    if !meta.binds.is_empty() || !meta.binds_skipped.is_empty() {
        lines.push(format!("bind sources ({} carried, {} not):", meta.binds.len(), meta.binds_skipped.len()));
        lines.extend(
            meta.binds
                .iter()
                .map(|b| format!("  carried {} ({} entries, {})", dockroot::plan::backup::binds::describe(b), b.entries, bytes(b.bytes))),
        );
        lines.extend(
            meta.binds_skipped.iter().map(|b| format!("  not carried {} ({}): {}", b.path.display(), b.containers.join(", "), b.reason)),
        );
    }
    if let Some(d) = &meta.docker {
        lines.push(format!("images ({}):", d.images.len()));
        lines.extend(d.images.iter().map(|i| format!("  {} {}", dockroot::docker::id::short(&i.id), i.tags.join(" "))));
        lines.push(format!("containers ({}):", d.containers.len()));
        lines.extend(
            d.containers
                .iter()
                .map(|c| format!("  {} {} {} ({})", dockroot::docker::id::short(&c.id), c.names.join(","), c.image, c.state)),
        );
    }
    if meta.docker.is_some() || !census.volumes.is_empty() {
        lines.extend(super::pieces::volume_lines(&meta, &census.volumes));
    }
    for l in lines {
        out.say(&super::pieces::sanitize(&l));
    }
    Ok(0)
}

/// Checks an archive: its structure and zstd checksums, and every data
/// member against the manifest. Exit 1 when a member differs.
pub fn verify_archive(a: &VerifyArgs, out: &Output) -> Result<i32> {
    super::archive_exists(&a.path)?;
    if a.path.is_dir() {
        bail!("{} is a directory: give --manifest to verify a tree, or an archive file", a.path.display());
    }
    let rep = archive::verify(archive::open(&a.path)?)?;
    let meta = BackupMeta::parse(&rep.meta)?;
    let entries = Some(rep.entries);
    let r = &rep.report;
    print_report(out, r);
    for t in &rep.trees {
        print_report(out, &t.report);
    }
    let others: String = rep.trees.iter().map(|t| format!(" and {} of {}", t.entries, t.tree.describe())).collect();
    if rep.ok() {
        out.say(&format!(
            "OK: {} is a complete dockroot archive: {} members, {} of data, {} manifest entries{others} match their members",
            a.path.display(),
            rep.members,
            bytes(rep.data_bytes),
            entries.map(|e| e.to_string()).unwrap_or("?".into())
        ));
    } else {
        let more: u64 = rep.trees.iter().map(|t| t.report.differences.len() as u64 + t.report.more).sum();
        out.say(&format!(
            "FAILED: {} differences between the members of {} and its manifests",
            r.differences.len() as u64 + r.more + more,
            a.path.display()
        ));
    }
    out.json(&json!({
        "command": "verify",
        "ok": rep.ok(),
        "archive": a.path,
        "members": rep.members,
        "data_bytes": rep.data_bytes,
        "entries": entries,
        "meta": meta,
        "differences": r.differences,
        "more": r.more,
        "containerd": rep.containerd().map(|c| json!({
            "entries": c.entries,
            "differences": c.report.differences,
            "more": c.report.more,
        })),
        "trees": rep.trees.iter().map(|t| json!({
            "tree": t.tree,
            "manifest": String::from_utf8_lossy(&t.tree.manifest()),
            "entries": t.entries,
            "differences": t.report.differences,
            "more": t.report.more,
        })).collect::<Vec<_>>(),
    }));
    Ok(if rep.ok() { exit::OK } else { exit::DIFFERENCES })
}
