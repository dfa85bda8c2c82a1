//! Pieces of a whole backup: `extract ARCHIVE --volume|--path -o DIR`,
//! `restore ARCHIVE --volume NAME [--as NEWNAME] [--stop-containers]`, and
//! the volumes section of `inspect`. The work is in
//! `dockroot::plan::restore::{piece, volume}`.

use std::collections::BTreeMap;
use std::os::unix::ffi::OsStrExt;
use std::path::Path;

use anyhow::{Result, bail};
use serde_json::json;

use super::output::{Output, bytes};
use super::{ExtractArgs, Global, RestoreArgs, exit};
use dockroot::archive::phases::TreeSize;
use dockroot::archive::pick::Pick;
use dockroot::plan::backup::meta::BackupMeta;
use dockroot::plan::restore::bind_piece::{self, BindOptions};
use dockroot::plan::restore::piece;
use dockroot::plan::restore::volume::{self, VolumeOptions};
use dockroot::progress::Progress;
use dockroot::service::wait::Timing;

fn threads(g: &Global) -> usize {
    g.threads.unwrap_or_else(dockroot::tree::default_threads)
}

/// The piece `--volume`, `--bind` or `--path` names; an absolute `--path`
/// below the archived data-root is taken relative to it.
fn pick(a: &ExtractArgs) -> Result<Pick> {
    if let Some(v) = &a.volume {
        return Ok(Pick::volume(v)?);
    }
    if let Some(b) = &a.bind {
        let meta = BackupMeta::parse(&dockroot::archive::open(&a.archive)?.meta)?;
        return Ok(bind_piece::pick(&meta, b)?);
    }
    let p = a.path.as_deref().unwrap_or(Path::new(""));
    let rel = if p.is_absolute() {
        let meta = BackupMeta::parse(&dockroot::archive::open(&a.archive)?.meta)?;
        match p.strip_prefix(&meta.data_root) {
            Ok(rel) => rel.to_path_buf(),
            Err(_) => bail!(
                "--path {} is not below the archived data-root {}; give a path relative to it, e.g. volumes/NAME/_data",
                p.display(),
                meta.data_root.display()
            ),
        }
    } else {
        p.to_path_buf()
    };
    Ok(Pick::path(rel.as_os_str().as_bytes())?)
}

pub fn extract(a: &ExtractArgs, g: &Global, out: &Output, progress: &dyn Progress) -> Result<i32> {
    if a.archive == Path::new("-") {
        bail!("extract reads the archive from a file; save the stream first (e.g. `restic dump ... > FILE`)");
    }
    super::archive_exists(&a.archive)?;
    let pick = pick(a)?;
    let s = piece::extract(&a.archive, &pick, &a.output, threads(g), progress)?;
    for d in s.differences.iter().chain(&s.errors) {
        out.problem(&sanitize(d));
    }
    if s.ok() {
        out.say(&format!(
            "extracted {} ({} entries, {}) into {}, verified against the archive's manifest",
            sanitize(&s.piece),
            s.entries,
            bytes(s.bytes),
            s.dir.display()
        ));
    } else {
        out.say(&format!(
            "FAILED: {} differs from the archive's manifest of {} ({} differences, {} errors); the files are left there",
            s.dir.display(),
            sanitize(&s.piece),
            s.differences.len(),
            s.errors.len()
        ));
    }
    out.json(&json!({"command": "extract", "ok": s.ok(), "summary": s}));
    Ok(if s.ok() { exit::OK } else { exit::DIFFERENCES })
}

/// What `restore --volume` and `--bind` refuse before anything else: an
/// archive on stdin (it is read twice), a missing file, and `--dry-run`.
fn piece_preflight(a: &RestoreArgs, flag: &str, listed: &str) -> Result<()> {
    if a.archive == Path::new("-") {
        bail!("restore {flag} reads the archive from a file; save the stream first (e.g. `restic dump ... > FILE`)");
    }
    super::archive_exists(&a.archive)?;
    if a.dry_run {
        bail!("restore {flag} has no --dry-run; `dockroot inspect ARCHIVE` lists the {listed} and the containers that use them");
    }
    Ok(())
}

/// `restore --volume`: the caller checked that `a.volume` is set.
pub fn restore_volume(
    a: &RestoreArgs,
    g: &Global,
    out: &Output,
    progress: &dyn Progress,
    confirm: impl Fn(&str) -> Result<()>,
) -> Result<i32> {
    let name = a.volume.clone().unwrap_or_default();
    piece_preflight(a, "--volume", "volumes")?;
    let target = a.as_name.clone().unwrap_or_else(|| name.clone());
    confirm(&format!("replace the files of volume `{target}` with those of `{name}` in {}?", a.archive.display()))?;
    let opts = VolumeOptions {
        source: a.archive.clone(),
        api: super::socket::api(g),
        state_dir: g.state_dir.clone(),
        name,
        as_name: a.as_name.clone(),
        stop_containers: a.stop_containers,
        threads: threads(g),
        timing: Timing::default(),
    };
    let s = volume::restore_volume(&opts, progress)?;
    for w in &s.warnings {
        out.problem(&format!("warning: {w}"));
    }
    out.say(&format!(
        "restored volume {}{} ({} entries, {}) into {} in {:.2}s; the previous files are kept as {}",
        s.volume,
        if s.from != s.volume { format!(" from the archive's `{}`", s.from) } else { String::new() },
        s.entries,
        bytes(s.bytes),
        s.mountpoint.display(),
        s.seconds,
        s.old.display()
    ));
    if s.created {
        out.say(&format!("  created volume {} as the archive describes it", s.volume));
    }
    if !s.restarted.is_empty() {
        out.say(&format!("  stopped and started again: {}", s.restarted.join(", ")));
    }
    out.json(&json!({"command": "restore", "volume": true, "ok": true, "summary": s}));
    Ok(exit::OK)
}

/// `restore --bind`: the caller checked that `a.bind` is set.
pub fn restore_bind(
    a: &RestoreArgs,
    g: &Global,
    out: &Output,
    progress: &dyn Progress,
    confirm: impl Fn(&str) -> Result<()>,
) -> Result<i32> {
    let path = a.bind.clone().unwrap_or_default();
    piece_preflight(a, "--bind", "bind sources")?;
    confirm(&format!(
        "replace the files of bind source {} with those in {} (the current ones are kept aside)?",
        path.display(),
        a.archive.display()
    ))?;
    let opts = BindOptions {
        source: a.archive.clone(),
        api: super::socket::api(g),
        state_dir: g.state_dir.clone(),
        path,
        stop_containers: a.stop_containers,
        threads: threads(g),
        timing: Timing::default(),
    };
    let s = bind_piece::restore_bind(&opts, progress)?;
    let kept = s.old.as_ref().map(|o| format!("; the previous files are kept as {}", o.display())).unwrap_or_default();
    out.say(&format!(
        "restored bind source {} ({} entries, {}) in {:.2}s, verified against the archive's manifest{kept}",
        s.path.display(),
        s.entries,
        bytes(s.bytes),
        s.seconds
    ));
    if !s.restarted.is_empty() {
        out.say(&format!("  stopped and started again: {}", s.restarted.join(", ")));
    }
    out.json(&json!({"command": "restore", "bind": true, "ok": true, "summary": s}));
    Ok(exit::OK)
}

/// The volumes section of `inspect`: each with its size (from the
/// manifest) and, when the archive records them, its driver options,
/// labels and the containers that use it.
pub fn volume_lines(meta: &BackupMeta, sizes: &BTreeMap<String, TreeSize>) -> Vec<String> {
    let names: Vec<String> = match (&meta.volumes, &meta.docker) {
        (Some(v), _) => v.iter().map(|v| v.name.clone()).collect(),
        (None, Some(d)) => d.volumes.clone(),
        (None, None) => sizes.keys().cloned().collect(),
    };
    let mut lines = vec![format!("volumes ({}):", names.len())];
    for n in &names {
        let size = sizes.get(n).map(|s| format!("{} entries, {}", s.entries, bytes(s.bytes))).unwrap_or("no files in the archive".into());
        let spec = meta.volumes.as_ref().and_then(|v| v.iter().find(|v| &v.name == n));
        let used = match spec {
            Some(s) if s.users.is_empty() => ", used by no container".to_string(),
            Some(s) => format!(", used by {}", s.users.join(", ")),
            None => String::new(),
        };
        lines.push(format!("  {n} ({size}{used})"));
        if let Some(s) = spec.filter(|s| s.driver != "local" || !s.options.is_empty() || !s.labels.is_empty()) {
            let kv = |m: &BTreeMap<String, String>| m.iter().map(|(k, v)| format!("{k}={v}")).collect::<Vec<_>>().join(" ");
            lines.push(format!("    driver {} options [{}] labels [{}]", s.driver, kv(&s.options), kv(&s.labels)));
        }
    }
    lines
}

/// Names come from containers and archives: escape control characters before printing.
pub fn sanitize(s: &str) -> String {
    s.chars().map(|c| if c.is_control() { '?' } else { c }).collect()
}
