//! `dockroot restore`: put a backup archive back as the data-root.
//!
//! Order of steps, so that a bad archive never costs the current data:
//! verify the whole archive (file input), check the engine version, stop
//! Docker, extract into `<data-root>.dockroot-staging-<ts>` on the same
//! filesystem, verify the staging tree against the archive's manifest, then
//! swap by two renames (the current data-root is kept as
//! `<data-root>.dockroot-old-<ts>`), optionally restore the configuration,
//! start Docker and compare its images, containers and volumes with the
//! archive's. Any failure after the stop renames back, removes the staging
//! tree and starts Docker on the old data. Each step is recorded in a small
//! JSON journal (`<state-dir>/restore.json`).

use std::os::fd::AsFd;
use std::path::{Path, PathBuf};
use std::time::{Instant, SystemTime};

use serde::Serialize;

use super::archive_error::{BackupError, Result};
use super::backup::{self, BackupMeta, CONFIG_DIRS};
use crate::archive::{self, ExtractOptions};
use crate::docker::api::DockerApi;
use crate::docker::snapshot::DockerState;
use crate::docker::{atomic, facts};
use crate::progress::Progress;
use crate::service::wait::Timing;
use crate::service::{ServiceContext, ServiceKind, ServiceManager};

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
    /// Restore over a non-empty data-root and despite an engine version mismatch.
    pub force: bool,
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

/// The journal: the steps done so far, rewritten after each one.
#[derive(Debug, Serialize)]
struct Journal {
    operation: &'static str,
    archive: PathBuf,
    data_root: PathBuf,
    staging: PathBuf,
    old: PathBuf,
    steps: Vec<String>,
    outcome: &'static str,
    #[serde(skip)]
    path: PathBuf,
}

impl Journal {
    fn step(&mut self, s: &str) {
        self.steps.push(s.to_string());
        self.save();
    }
    fn end(&mut self, outcome: &'static str) {
        self.outcome = outcome;
        self.save();
    }
    /// Best effort: the journal documents a restore, it does not drive one.
    fn save(&self) {
        if std::fs::create_dir_all(self.path.parent().unwrap_or(Path::new("/"))).is_ok()
            && let Ok(j) = serde_json::to_vec_pretty(self)
        {
            let _ = atomic::replace_with_backup(&self.path, &j).map(|b| b.map(std::fs::remove_file));
        }
    }
}

fn with_suffix(p: &Path, infix: &str, ts: &str) -> PathBuf {
    let mut s = p.as_os_str().to_owned();
    s.push(infix);
    s.push(ts);
    PathBuf::from(s)
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
    if &installed != want {
        if !opts.force {
            return Err(BackupError::EngineMismatch { archive: want.clone(), installed });
        }
        warnings.push(format!("engine version differs (archive {want}, installed {installed}); restoring anyway (--force)"));
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
    let stdin = opts.source == Path::new("-");
    // (1) A file is read completely before anything changes.
    let mut expected_manifest = None;
    let mut reader = archive::open(&opts.source)?;
    if !stdin {
        progress.phase("verify archive", None);
        let rep = archive::verify(reader)?;
        progress.finish();
        if !rep.ok() {
            let r = &rep.report;
            let first = r.differences.first().map(|d| d.to_string()).unwrap_or_default();
            return Err(BackupError::ArchiveDiffers { count: r.differences.len() as u64 + r.more, first });
        }
        expected_manifest = Some(rep.manifest);
        reader = archive::open(&opts.source)?;
    }
    let meta = BackupMeta::parse(&reader.meta)?;
    // (2) Engine version.
    check_engine(&meta, opts, &mut warnings)?;
    let dr = backup::data_root(opts.data_root.as_deref(), &opts.api)?;
    let dr = absolute(&dr);
    if non_empty(&dr) && !opts.force {
        return Err(BackupError::Refused(format!(
            "data-root {} is not empty; pass --force to keep it as {}<UTC time> and restore in its place",
            dr.display(),
            with_suffix(&dr, OLD_INFIX, "").display()
        )));
    }
    let ts = atomic::utc_timestamp(SystemTime::now());
    let staging = with_suffix(&dr, STAGING_INFIX, &ts);
    let old = with_suffix(&dr, OLD_INFIX, &ts);
    let mut j = Journal {
        operation: "restore",
        archive: opts.source.clone(),
        data_root: dr.clone(),
        staging: staging.clone(),
        old: old.clone(),
        steps: Vec::new(),
        outcome: "running",
        path: opts.state_dir.join("restore.json"),
    };
    let _lock = lock(&opts.state_dir)?;
    // (3) Stop Docker.
    let ctx = ServiceContext { data_root: dr.clone(), api: opts.api.clone(), timing: opts.timing };
    let svc = opts.service.clone().build(&ctx);
    let none = svc.kind() == ServiceKind::None;
    svc.stop().map_err(BackupError::service("stop Docker"))?;
    let stopped = Instant::now();
    j.step("stopped");
    let mut swapped = None;
    let r = run(opts, &mut reader, expected_manifest, &meta, &dr, &staging, &old, &mut swapped, &mut j, svc.as_ref(), none, progress);
    match r {
        Ok((entries, config_restored)) => {
            j.end("done");
            Ok(RestoreSummary {
                data_root: dr,
                old: swapped.flatten(),
                entries,
                config_restored,
                health_checked: !none && meta.docker.is_some(),
                seconds: start.elapsed().as_secs_f64(),
                downtime_seconds: stopped.elapsed().as_secs_f64(),
                meta,
                warnings,
            })
        }
        Err(e) => {
            let mut undo = Vec::new();
            // Docker may already run on the restored tree (health check failed).
            if !none
                && svc.is_running().unwrap_or(false)
                && let Err(x) = svc.stop()
            {
                undo.push(format!("stop Docker: {x}"));
            }
            if let Some(prev) = swapped {
                // Put the restored tree back aside, then the previous data-root back.
                if dr.exists()
                    && let Err(x) = std::fs::rename(&dr, &staging)
                {
                    undo.push(format!("rename {} back to {}: {x}", dr.display(), staging.display()));
                }
                if let Some(prev) = prev
                    && let Err(x) = std::fs::rename(&prev, &dr)
                {
                    undo.push(format!("rename {} back to {}: {x}", prev.display(), dr.display()));
                }
            }
            if staging.exists()
                && let Err(x) = remove_tree(&staging)
            {
                undo.push(format!("remove {}: {x}", staging.display()));
            }
            if let Err(x) = svc.start() {
                undo.push(format!("start Docker: {x}"));
            }
            j.end(if undo.is_empty() { "undone" } else { "undo-failed" });
            Err(BackupError::Undone { error: Box::new(e), undo })
        }
    }
}

/// Takes `<state-dir>/lock` (the same lock as `move`), so a restore and a
/// move or another restore never run at once; released when dropped.
fn lock(state_dir: &Path) -> Result<std::fs::File> {
    use std::os::fd::AsRawFd;
    std::fs::create_dir_all(state_dir).map_err(BackupError::io("create the state directory", state_dir))?;
    let p = state_dir.join("lock");
    let f = std::fs::OpenOptions::new().create(true).truncate(false).write(true).open(&p).map_err(BackupError::io("open", &p))?;
    // SAFETY: flock on an fd we own.
    if unsafe { libc::flock(f.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) } != 0 {
        return Err(BackupError::Refused(format!("another dockroot run holds {}; wait for it to finish", p.display())));
    }
    Ok(f)
}

/// Removes a tree whose directories may lack write permission for us.
fn remove_tree(p: &Path) -> std::io::Result<()> {
    std::fs::remove_dir_all(p)
}

/// `p` made absolute, its existing part canonicalised (symlinks resolved).
pub fn absolute(p: &Path) -> PathBuf {
    let p = if p.is_absolute() { p.to_path_buf() } else { std::env::current_dir().map(|c| c.join(p)).unwrap_or_else(|_| p.to_path_buf()) };
    let mut base = p.as_path();
    let mut rest = Vec::new();
    while !base.exists() {
        match (base.parent(), base.file_name()) {
            (Some(parent), Some(name)) => {
                rest.push(name.to_owned());
                base = parent;
            }
            _ => return p.clone(),
        }
    }
    let mut out = std::fs::canonicalize(base).unwrap_or_else(|_| base.to_path_buf());
    out.extend(rest.iter().rev());
    out
}

/// Steps (3)–(5) after the stop. `swapped` becomes `Some(old path if any)` once
/// the staging tree is the data-root.
#[allow(clippy::too_many_arguments)]
fn run(
    opts: &RestoreOptions,
    reader: &mut archive::ArchiveReader,
    expected: Option<Vec<u8>>,
    meta: &BackupMeta,
    dr: &Path,
    staging: &Path,
    old: &Path,
    swapped: &mut Option<Option<PathBuf>>,
    j: &mut Journal,
    svc: &dyn ServiceManager,
    none: bool,
    progress: &dyn Progress,
) -> Result<(u64, Vec<PathBuf>)> {
    let parent = staging.parent().unwrap_or(Path::new("/"));
    std::fs::create_dir_all(parent).map_err(BackupError::io("create", parent))?;
    std::fs::create_dir(staging).map_err(BackupError::io("create the staging directory", staging))?;
    j.step("staging-created");
    let fd = crate::sys::open_dir_path(staging).map_err(BackupError::io("open", staging))?;
    progress.phase("extract", Some((meta.entries, meta.bytes)));
    let ex = archive::extract(reader, fd.as_fd(), &ExtractOptions::default())?;
    progress.finish();
    drop(fd);
    if let Some(m) = expected
        && m != ex.manifest
    {
        return Err(BackupError::Refused("the archive changed between its verification and the extraction".into()));
    }
    j.step("extracted");
    // Verify the staging tree against the archive's manifest.
    let mpath = with_suffix(staging, ".manifest", "");
    std::fs::write(&mpath, &ex.manifest).map_err(BackupError::io("write", &mpath))?;
    let rep = crate::manifest::verify::verify_tree(staging, &mpath, opts.threads, progress);
    let _ = std::fs::remove_file(&mpath);
    let rep = rep?;
    if !rep.ok() {
        let first = rep.differences.first().map(|d| d.to_string()).or_else(|| rep.errors.first().cloned()).unwrap_or_default();
        return Err(BackupError::StagingDiffers { count: rep.differences.len() as u64 + rep.more + rep.errors.len() as u64, first });
    }
    j.step("verified");
    // (4) Swap.
    let prev = if dr.symlink_metadata().is_ok() {
        std::fs::rename(dr, old).map_err(BackupError::io("rename the current data-root aside", dr))?;
        Some(old.to_path_buf())
    } else {
        None
    };
    *swapped = Some(prev.clone());
    if let Err(e) = std::fs::rename(staging, dr) {
        return Err(BackupError::io("rename the staging tree into place", dr)(e));
    }
    j.step("swapped");
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
            atomic::replace_with_backup(&path, bytes).map_err(BackupError::docker("restore config"))?;
            config.push(path);
        }
        j.step("config");
    }
    // (5) Start and health check.
    svc.start().map_err(BackupError::service("start Docker"))?;
    j.step("started");
    if !none && let Some(want) = &meta.docker {
        let got = DockerState::capture(&opts.api).map_err(BackupError::docker("list images, containers and volumes"))?;
        let d = identity(want).diff(&identity(&got));
        if !d.is_empty() {
            return Err(BackupError::Health(d.join("; ")));
        }
        j.step("healthy");
    }
    Ok((ex.records.len() as u64, config))
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
