//! `dockroot restore`: put a backup archive back as the data-root.
//!
//! Order of steps, so that a bad archive never costs the current data nor
//! any downtime: read the archive's meta and check the engine version, then,
//! while Docker keeps running on the current data, extract the archive into
//! `<data-root>.dockroot-staging-<ts>` on the same filesystem (the zstd frame
//! checksums and the tar structure are checked as it streams) and verify the
//! staging tree against the archive's manifest, its last member. Only a
//! verified tree goes on: stop Docker, swap by two renames (the current
//! data-root is kept as `<data-root>.dockroot-old-<ts>`), optionally restore
//! the configuration, start Docker and compare its images, containers and
//! volumes with the archive's. A failure before the stop only removes the
//! staging tree; after it, everything is put back and Docker is started on
//! the old data. Every step is journaled (`<state-dir>/restore.json`), and
//! `dockroot rollback` undoes a restore that was interrupted.

pub mod journal;

use std::os::fd::AsFd;
use std::path::{Path, PathBuf};
use std::time::{Instant, SystemTime};

use serde::Serialize;

use super::archive_error::{BackupError, Result};
use super::backup::{self, BackupMeta, CONFIG_DIRS};
use crate::archive::{self, ExtractOptions};
use crate::docker::api::DockerApi;
use crate::docker::atomic;
use crate::docker::facts::{self, EngineChange};
use crate::docker::snapshot::DockerState;
use crate::progress::Progress;
use crate::service::wait::Timing;
use crate::service::{ServiceContext, ServiceKind, ServiceManager};
use journal::{Journal, step};

pub const STAGING_INFIX: &str = ".dockroot-staging-";
pub const OLD_INFIX: &str = ".dockroot-old-";

#[derive(Debug, Clone)]
pub struct RestoreOptions {
    /// The archive, or `-` for stdin.
    pub source: PathBuf,
    pub data_root: Option<PathBuf>,
    pub service: ServiceKind,
    pub api: DockerApi,
    pub state_dir: PathBuf,
    /// Restore over a non-empty data-root (it is kept aside).
    pub force: bool,
    /// Restore an archive written by a newer engine than the installed one.
    pub allow_downgrade: bool,
    pub with_config: bool,
    pub host_root: PathBuf,
    pub dockerd: PathBuf,
    pub threads: usize,
    pub timing: Timing,
}

#[derive(Debug, Clone, Serialize)]
pub struct RestoreSummary {
    pub data_root: PathBuf,
    /// Where the previous data-root was kept (`None` when there was none).
    pub old: Option<PathBuf>,
    pub entries: u64,
    pub config_restored: Vec<PathBuf>,
    pub health_checked: bool,
    pub seconds: f64,
    pub downtime_seconds: f64,
    pub meta: BackupMeta,
    pub warnings: Vec<String>,
}

/// Checks a config name from the archive: only files below /etc/docker and
/// `*.conf` drop-ins of docker.service, no `.` or `..` components.
pub fn config_name_ok(name: &[u8]) -> bool {
    let Ok(s) = std::str::from_utf8(name) else {
        return false;
    };
    let comps: Vec<&str> = s.split('/').collect();
    if comps.iter().any(|c| c.is_empty() || *c == "." || *c == "..") {
        return false;
    }
    CONFIG_DIRS.iter().any(|d| s.starts_with(&format!("{d}/")))
        && (s.starts_with("etc/docker/") || (comps.len() == 5 && s.ends_with(".conf")))
}

fn check_engine(meta: &BackupMeta, opts: &RestoreOptions, warnings: &mut Vec<String>) -> Result<()> {
    let Some(want) = &meta.engine_version else {
        warnings.push("the archive does not record the engine version; not checked".into());
        return Ok(());
    };
    let installed = facts::engine_version(&opts.dockerd).map(|v| v.version).unwrap_or_else(|e| format!("unknown ({e})"));
    // Docker upgrades an older engine's data-root in place, as any package
    // upgrade does; it does not support the reverse.
    match facts::compare_engines(want, &installed) {
        EngineChange::Same => {}
        EngineChange::Upgrade => warnings.push(format!(
            "the archive was made with Docker {want}; the installed Docker {installed} is newer and upgrades the data when it \
             starts, so the restored data-root cannot go back to Docker {want}"
        )),
        EngineChange::Downgrade | EngineChange::Unknown if !opts.allow_downgrade => {
            return Err(BackupError::EngineMismatch { archive: want.clone(), installed });
        }
        _ => warnings.push(format!(
            "the archive was made with Docker {want}, and the installed Docker {installed} is older or unknown; restoring anyway \
             (--allow-downgrade), which Docker does not support"
        )),
    }
    Ok(())
}

fn non_empty(p: &Path) -> bool {
    std::fs::read_dir(p).map(|mut d| d.next().is_some()).unwrap_or(false)
}

/// Container states change across a restart; compare identity only.
fn identity(s: &DockerState) -> DockerState {
    let mut s = s.clone();
    for c in &mut s.containers {
        c.state.clear();
    }
    s
}

/// Runs the restore (see the module docs).
pub fn restore(opts: &RestoreOptions, progress: &dyn Progress) -> Result<RestoreSummary> {
    let start = Instant::now();
    let mut warnings = Vec::new();
    let mut reader = archive::open(&opts.source)?;
    let meta = BackupMeta::parse(&reader.meta)?;
    check_engine(&meta, opts, &mut warnings)?;
    // With --with-config the archive's own daemon.json comes back with the tree.
    if let Some(e) = meta.engine.as_ref().filter(|_| !opts.with_config) {
        let cfg = crate::docker::daemon_json::DaemonJson::load(&opts.host_root.join("etc/docker/daemon.json"))
            .map_err(BackupError::docker("read daemon.json"))?;
        crate::docker::engine::check_store_pin(e.image_store, &cfg).map_err(BackupError::Refused)?;
    }
    let dr = backup::data_root(opts.data_root.as_deref(), &opts.api)?;
    let dr = super::absolute(&dr);
    if non_empty(&dr) && !opts.force {
        return Err(BackupError::Refused(format!(
            "data-root {} is not empty; pass --force to keep it as {}<UTC time> and restore in its place",
            dr.display(),
            atomic::with_suffix(&dr, OLD_INFIX).display()
        )));
    }
    let _lock = lock(&opts.state_dir)?;
    if let Some(j) = Journal::load(&opts.state_dir)?
        && j.outcome == "running"
    {
        return Err(BackupError::Refused(format!(
            "a restore into {} was interrupted (journal {}); run `dockroot rollback` first",
            j.data_root.display(),
            j.path.display()
        )));
    }
    let ts = atomic::utc_timestamp(SystemTime::now());
    let staging = atomic::with_suffix(&dr, &format!("{STAGING_INFIX}{ts}"));
    let old = atomic::with_suffix(&dr, &format!("{OLD_INFIX}{ts}"));
    let mut j = Journal::new(&opts.state_dir, &opts.source, &dr, &staging, &old);
    j.save()?;
    let ctx = ServiceContext { data_root: dr.clone(), api: opts.api.clone(), timing: opts.timing };

    // (1) Extract and verify while Docker still runs on the current data.
    let ex = match extract_and_verify(opts, &mut reader, &meta, &mut j, progress) {
        Ok(ex) => ex,
        Err(e) => {
            let undo = j.undo(&ctx, progress);
            j.end("refused")?;
            return Err(if undo.is_empty() { e } else { BackupError::Undone { error: Box::new(e), undo } });
        }
    };

    // (2) Stop, swap, start. From here a signal only sets a flag, checked
    // between steps, so the restore undoes itself instead of dying with
    // Docker down.
    super::signal::install();
    let svc = opts.service.clone().build(&ctx);
    let none = svc.kind() == ServiceKind::None;
    let stopped = Instant::now();
    match swap_and_start(opts, &ex, &meta, &mut j, svc.as_ref(), none, progress) {
        Ok(config_restored) => {
            j.end("done")?;
            Ok(RestoreSummary {
                data_root: dr,
                old: j.done(journal::step::ASIDE).then_some(old),
                entries: ex.records.len() as u64,
                config_restored,
                health_checked: !none && meta.docker.is_some(),
                seconds: start.elapsed().as_secs_f64(),
                downtime_seconds: stopped.elapsed().as_secs_f64(),
                meta,
                warnings,
            })
        }
        Err(e) => {
            let undo = j.undo(&ctx, progress);
            j.end(if undo.is_empty() { "undone" } else { "undo-failed" })?;
            Err(BackupError::Undone { error: Box::new(e), undo })
        }
    }
}

/// `dockroot rollback` for a restore that was interrupted: undoes what its
/// journal shows was done and starts Docker again if it was stopped.
pub fn rollback(state_dir: &Path, api: &DockerApi, timing: Timing, progress: &dyn Progress) -> Result<Option<RestoreRollback>> {
    let _lock = lock(state_dir)?;
    let Some(mut j) = Journal::load(state_dir)? else { return Ok(None) };
    if j.outcome != "running" {
        return Ok(None);
    }
    let ctx = ServiceContext { data_root: j.data_root.clone(), api: api.clone(), timing };
    let undo = j.undo(&ctx, progress);
    if !undo.is_empty() {
        j.end("undo-failed")?;
        return Err(BackupError::Refused(format!(
            "rolling back the restore into {} failed: {}; fix this by hand (journal {})",
            j.data_root.display(),
            undo.join("; "),
            j.path.display()
        )));
    }
    j.end("rolled-back")?;
    Ok(Some(RestoreRollback { data_root: j.data_root.clone(), docker_restarted: j.done(journal::step::STOPPED), journal: j.path.clone() }))
}

#[derive(Debug, Clone, Serialize)]
pub struct RestoreRollback {
    pub data_root: PathBuf,
    pub docker_restarted: bool,
    pub journal: PathBuf,
}

/// Takes `<state-dir>/lock`, the lock `move` takes, so a restore and a move
/// or another restore never run at once; released when dropped.
fn lock(state_dir: &Path) -> Result<std::fs::File> {
    super::journal::StateDir::new(state_dir).lock().map_err(|e| BackupError::Refused(e.to_string()))
}

/// Extracts into the staging directory and verifies it against the
/// archive's manifest. Nothing outside the staging directory changes.
fn extract_and_verify(
    opts: &RestoreOptions,
    reader: &mut archive::ArchiveReader,
    meta: &BackupMeta,
    j: &mut Journal,
    progress: &dyn Progress,
) -> Result<archive::Extracted> {
    let staging = j.staging.clone();
    let parent = staging.parent().unwrap_or(Path::new("/"));
    std::fs::create_dir_all(parent).map_err(BackupError::io("create", parent))?;
    std::fs::create_dir(&staging).map_err(BackupError::io("create the staging directory", &staging))?;
    j.step(step::STAGING)?;
    let fd = crate::sys::open_dir_path(&staging).map_err(BackupError::io("open", &staging))?;
    progress.phase("extract", Some((meta.entries, meta.bytes)));
    // verify_tree below hashes the tree as written; hashing while extracting would do it twice.
    let ex = archive::extract(reader, fd.as_fd(), &ExtractOptions { hash: false });
    progress.finish();
    let ex = ex?;
    drop(fd);
    j.step(step::EXTRACTED)?;
    interrupted("extract")?;
    let mpath = atomic::with_suffix(&staging, ".manifest");
    std::fs::write(&mpath, &ex.manifest).map_err(BackupError::io("write", &mpath))?;
    let rep = crate::manifest::verify::verify_tree(&staging, &mpath, opts.threads, progress);
    let _ = std::fs::remove_file(&mpath);
    let rep = rep?;
    if !rep.ok() {
        let first = rep.differences.first().map(|d| d.to_string()).or_else(|| rep.errors.first().cloned()).unwrap_or_default();
        return Err(BackupError::StagingDiffers { count: rep.differences.len() as u64 + rep.more + rep.errors.len() as u64, first });
    }
    j.step(step::VERIFIED)?;
    interrupted("verify")?;
    Ok(ex)
}

fn interrupted(step: &'static str) -> Result<()> {
    if super::signal::caught() {
        return Err(BackupError::Refused(format!("interrupted by a signal after the {step} step")));
    }
    Ok(())
}

/// Stops Docker, swaps the verified staging tree in, restores the config if
/// asked, starts Docker and checks its health. Returns the config files written.
fn swap_and_start(
    opts: &RestoreOptions,
    ex: &archive::Extracted,
    meta: &BackupMeta,
    j: &mut Journal,
    svc: &dyn ServiceManager,
    none: bool,
    progress: &dyn Progress,
) -> Result<Vec<PathBuf>> {
    let (dr, staging, old) = (j.data_root.clone(), j.staging.clone(), j.old.clone());
    // Recorded before the stop: even a half-done stop must be undone by starting again.
    let stop = svc.stop(progress);
    j.service = Some(svc.record());
    j.step(step::STOPPED)?;
    stop.map_err(BackupError::service("stop Docker"))?;
    if dr.exists() {
        crate::service::verify_stopped(&dr).map_err(BackupError::service("stop Docker"))?;
    }
    interrupted("stop")?;
    if dr.symlink_metadata().is_ok() {
        std::fs::rename(&dr, &old).map_err(BackupError::io("rename the current data-root aside", &dr))?;
        j.step(step::ASIDE)?;
    }
    std::fs::rename(&staging, &dr).map_err(BackupError::io("rename the staging tree into place", &dr))?;
    j.step(step::SWAPPED)?;
    let mut config = Vec::new();
    if opts.with_config {
        for (name, bytes) in &ex.config {
            if !config_name_ok(name) {
                return Err(BackupError::Refused(format!(
                    "config member `{}` is outside /etc/docker and docker.service.d",
                    archive_show(name)
                )));
            }
            let path = opts.host_root.join(String::from_utf8_lossy(name).as_ref());
            if let Some(p) = path.parent() {
                std::fs::create_dir_all(p).map_err(BackupError::io("create", p))?;
            }
            let backup = atomic::replace_with_backup(&path, bytes).map_err(BackupError::docker("restore config"))?;
            j.config.push(journal::ConfigChange { path: path.clone(), backup });
            j.save()?;
            config.push(path);
        }
        j.step(step::CONFIG)?;
    }
    interrupted("swap")?;
    svc.start(progress).map_err(BackupError::service("start Docker"))?;
    j.step(step::STARTED)?;
    if !none && let Some(want) = &meta.docker {
        let got = DockerState::capture(&opts.api).map_err(BackupError::docker("list images, containers and volumes"))?;
        let d = identity(want).diff(&identity(&got));
        if !d.is_empty() {
            return Err(BackupError::Health(d.join("; ")));
        }
        j.step(step::HEALTHY)?;
    }
    Ok(config)
}

fn archive_show(b: &[u8]) -> String {
    b.escape_ascii().to_string()
}

#[cfg(test)]
mod tests {
    use super::config_name_ok;

    #[test]
    fn config_names_are_confined() {
        assert!(config_name_ok(b"etc/docker/daemon.json"));
        assert!(config_name_ok(b"etc/docker/certs.d/x/ca.crt"));
        assert!(config_name_ok(b"etc/systemd/system/docker.service.d/override.conf"));
        for bad in
            [&b"etc/passwd"[..], b"etc/docker/../shadow", b"/etc/docker/x", b"etc/systemd/system/docker.service.d/x.sh", b"etc/docker//x"]
        {
            assert!(!config_name_ok(bad), "{}", String::from_utf8_lossy(bad));
        }
    }
}
