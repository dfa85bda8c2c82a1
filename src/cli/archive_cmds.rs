//! The archive commands: `backup`, `restore`, `inspect` and `verify ARCHIVE`.
//! They turn arguments into plan options, ask for confirmation and render
//! the result; the work is in `dockroot::plan::{backup, restore}`.

use std::io::{IsTerminal, Write};
use std::path::Path;

use anyhow::{Context, Result, bail};
use serde_json::json;

use super::commands::print_report;
use super::exit;
use super::output::{Output, bytes};
use super::{BackupArgs, CompressArg, Global, InspectArgs, RestoreArgs, SnapshotArg, VerifyArgs};
use dockroot::archive::meta::BackupMeta;
use dockroot::archive::{self, WriterOptions};
use dockroot::docker::api::DockerApi;
use dockroot::plan::backup::snapshot::Request;
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
            eprintln!("{line}");
        }
    } else {
        out.say(line);
    }
}

pub fn backup(a: &BackupArgs, g: &Global, out: &Output, progress: &dyn Progress) -> Result<i32> {
    let opts = backup_options(a, g)?;
    let stdout = a.output == Path::new("-");
    if stdout && std::io::stdout().is_terminal() {
        bail!("refusing to write the archive to a terminal; redirect stdout or use -o FILE");
    }
    if a.dry_run {
        return backup_dry_run(a, &opts, out, stdout, progress);
    }
    let s = bk::backup(&opts, progress)?;
    say_backed_up(out, stdout, &s);
    if !stdout {
        out.json(&json!({"command": "backup", "ok": true, "summary": s}));
    }
    Ok(0)
}

fn backup_options(a: &BackupArgs, g: &Global) -> Result<BackupOptions> {
    let level = match a.compress {
        CompressArg::Zstd => Some(a.level),
        CompressArg::None => None,
    };
    let mut writer = WriterOptions { level, ..WriterOptions::default() };
    if let Some(t) = g.threads {
        writer.threads = t as u32;
    }
    Ok(BackupOptions {
        data_root: g.data_root.clone(),
        service: service(g),
        api: api(g),
        output: a.output.clone(),
        keep: a.keep,
        config: !a.no_config,
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
    })
}

/// `backup --dry-run`: what would be stopped, captured and written.
fn backup_dry_run(a: &BackupArgs, opts: &BackupOptions, out: &Output, stdout: bool, progress: &dyn Progress) -> Result<i32> {
    let p = bk::plan(opts)?;
    let e = bk::engine_check(opts, &p.data_root)?;
    let driver = e.info.as_ref().map(|i| i.driver.as_str());
    let (capture, skipped) = bk::capture(opts, &p.data_root, driver, e.containerd_root.as_deref(), progress)?;
    for w in &p.warnings {
        out.problem(&format!("warning: {w}"));
    }
    let to = p.output.as_deref().map(|p| p.display().to_string()).unwrap_or("stdout".into());
    // Two-phase covers the data-root only: with containerd's root it is one pass.
    let one_pass = opts.live.then(|| bk::one_pass_reason(e.containerd_root.as_deref())).flatten();
    let live = opts.live && one_pass.is_none() && capture.is_none();
    let how = if live {
        format!(
            "would archive {} to {to} while Docker runs, then stop Docker ({}) and append what changed",
            p.data_root.display(),
            p.service
        )
    } else {
        format!("would stop Docker ({}), archive {} to {to}", p.service, p.data_root.display())
    };
    say(out, stdout, &how);
    if let Some(r) = &e.containerd_root {
        say(out, stdout, &format!("  with containerd's root {} (the containerd image store)", r.display()));
    }
    match &capture {
        Some(c) => say(
            out,
            stdout,
            &format!(
                "  from a {} snapshot at {}, taken with Docker stopped; Docker starts before the archive",
                c.method.name(),
                c.path.display()
            ),
        ),
        None if !live => say(
            out,
            stdout,
            &format!(
                "  with Docker stopped for the whole archive ({})",
                one_pass.or(skipped.as_deref()).unwrap_or(if a.stop_the_world { "--stop-the-world" } else { "--snapshot none" })
            ),
        ),
        None => {}
    }
    for c in &p.config_files {
        say(out, stdout, &format!("  with config file {}", c.display()));
    }
    for r in &p.prune {
        say(out, stdout, &format!("  then delete old archive {}", r.display()));
    }
    say(out, stdout, if capture.is_some() { "and delete the snapshot after the archive" } else { "then start Docker again" });
    if !stdout {
        let snapshot = capture.as_ref().map(|c| c.method.name()).unwrap_or("none");
        out.json(&json!({"command": "backup", "dry_run": true, "plan": p, "snapshot": snapshot, "snapshot_skipped": skipped, "live": live, "one_pass_reason": one_pass}));
    }
    Ok(0)
}

fn say_backed_up(out: &Output, stdout: bool, s: &bk::BackupSummary) {
    let dest = s.output.as_deref().map(|p| p.display().to_string()).unwrap_or("stdout".into());
    say(
        out,
        stdout,
        &format!(
            "backed up {} entries, {} into {dest}{} in {:.2}s (Docker down {:.2}s{})",
            s.entries,
            bytes(s.bytes),
            if stdout { String::new() } else { format!(" ({})", bytes(s.archive_bytes)) },
            s.seconds,
            s.downtime_seconds,
            if s.snapshot == "none" { String::new() } else { format!(", {} snapshot", s.snapshot) }
        ),
    );
    if let Some(why) = &s.one_pass_reason {
        say(out, stdout, &format!("  {why}"));
    }
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
}

/// Asks on a TTY; without one, `--yes` is required.
fn confirm(yes: bool, question: &str, stdin_is_data: bool) -> Result<()> {
    if yes {
        return Ok(());
    }
    if stdin_is_data || !std::io::stdin().is_terminal() {
        bail!("{question}: no terminal to ask on; pass --yes to confirm");
    }
    eprint!("{question} [y/N] ");
    std::io::stderr().flush().ok();
    let mut line = String::new();
    std::io::stdin().read_line(&mut line).context("read the answer")?;
    if !matches!(line.trim(), "y" | "Y" | "yes") {
        bail!("not confirmed; nothing was changed");
    }
    Ok(())
}

/// A missing archive file is a typo, not a damaged archive: say so before
/// anything else reads it.
fn archive_exists(p: &Path) -> Result<()> {
    if p != Path::new("-") {
        std::fs::metadata(p).with_context(|| format!("archive {}: check the path", p.display()))?;
    }
    Ok(())
}

pub fn restore(a: &RestoreArgs, g: &Global, out: &Output, progress: &dyn Progress) -> Result<i32> {
    archive_exists(&a.archive)?;
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
        dockerd: "dockerd".into(),
        threads: threads(g),
        timing: Timing::default(),
        shared_store: a.shared_store,
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
                "warnings": warnings}));
        return Ok(0);
    }
    let dr = g.data_root.as_ref().map_or("the data-root".into(), |d| d.display().to_string());
    confirm(a.yes, &format!("replace {dr} with the contents of {}?", a.archive.display()), a.archive == Path::new("-"))?;
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
    out.json(&json!({"command": "restore", "ok": true, "summary": s}));
    Ok(0)
}

pub fn inspect(a: &InspectArgs, out: &Output) -> Result<i32> {
    archive_exists(&a.archive)?;
    let r = archive::open(&a.archive)?;
    let meta = BackupMeta::parse(&r.meta)?;
    let size: Option<u64> = std::fs::metadata(&a.archive).ok().filter(|m| m.is_file()).map(|m| m.len());
    // A live backup's phase sizes are spread over the stream: read it through.
    let phases = if meta.two_phase { archive::phases::phase_sizes(r)? } else { None };
    if out.json {
        out.json(&json!({"command": "inspect", "archive": a.archive, "size": size, "meta": meta, "phases": phases}));
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
    if let Some(d) = &meta.docker {
        lines.push(format!("images ({}):", d.images.len()));
        lines.extend(d.images.iter().map(|i| format!("  {} {}", dockroot::docker::id::short(&i.id), i.tags.join(" "))));
        lines.push(format!("containers ({}):", d.containers.len()));
        lines.extend(
            d.containers
                .iter()
                .map(|c| format!("  {} {} {} ({})", dockroot::docker::id::short(&c.id), c.names.join(","), c.image, c.state)),
        );
        lines.push(format!("volumes ({}):", d.volumes.len()));
        lines.extend(d.volumes.iter().map(|v| format!("  {v}")));
    }
    for l in lines {
        out.say(&sanitize(&l));
    }
    Ok(0)
}

/// Names come from containers: escape control characters before printing.
fn sanitize(s: &str) -> String {
    s.chars().map(|c| if c.is_control() { '?' } else { c }).collect()
}

/// Checks an archive: its structure and zstd checksums, and every data
/// member against the manifest. Exit 1 when a member differs.
pub fn verify_archive(a: &VerifyArgs, out: &Output) -> Result<i32> {
    archive_exists(&a.path)?;
    if a.path.is_dir() {
        bail!("{} is a directory: give --manifest to verify a tree, or an archive file", a.path.display());
    }
    let rep = archive::verify(archive::open(&a.path)?)?;
    let meta = BackupMeta::parse(&rep.meta)?;
    let entries = Some(rep.entries);
    let r = &rep.report;
    print_report(out, r);
    if let Some(c) = &rep.containerd {
        print_report(out, &c.report);
    }
    let ctd = rep.containerd.as_ref().map(|c| format!(" and {} of containerd's root", c.entries)).unwrap_or_default();
    if rep.ok() {
        out.say(&format!(
            "OK: {} is a complete dockroot archive: {} members, {} of data, {} manifest entries{ctd} match their members",
            a.path.display(),
            rep.members,
            bytes(rep.data_bytes),
            entries.map(|e| e.to_string()).unwrap_or("?".into())
        ));
    } else {
        out.say(&format!(
            "FAILED: {} differences between the members of {} and its manifests",
            r.differences.len() as u64 + r.more + rep.containerd.as_ref().map_or(0, |c| c.report.differences.len() as u64 + c.report.more),
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
        "containerd": rep.containerd.as_ref().map(|c| json!({
            "entries": c.entries,
            "differences": c.report.differences,
            "more": c.report.more,
        })),
    }));
    Ok(if rep.ok() { exit::OK } else { exit::DIFFERENCES })
}
