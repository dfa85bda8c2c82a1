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
//! the old data. Every step is journaled write-ahead in the shared journal
//! (`<state-dir>/journal.json`, operation `restore`), and `dockroot rollback`
//! undoes a restore that was interrupted.

pub mod bind;
mod pin;
mod stores;
mod swap;

use std::os::fd::AsFd;
use std::path::{Path, PathBuf};
use std::time::{Instant, SystemTime};

use serde::Serialize;

use crate::archive;
use crate::archive::meta::BackupMeta;
use crate::docker::api::DockerApi;
use crate::docker::facts::{self, EngineChange};
use crate::plan::backup::error::{BackupError, Result};
use crate::plan::backup::{self, CONFIG_DIRS};
use crate::plan::core::intent::Intent;
use crate::plan::core::journal::{Journal, Method, Outcome, StateDir};
use crate::plan::core::runner::Runner;
use crate::progress::Progress;
use crate::service::wait::Timing;
use crate::service::{ServiceContext, ServiceKind};
use crate::util::atomic;

pub(crate) const STAGING_INFIX: &str = ".dockroot-staging-";
pub(crate) const OLD_INFIX: &str = ".dockroot-old-";

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
    /// Restore a containerd store that other namespaces (a kubelet's) share.
    pub shared_store: bool,
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
    /// What is mounted at the data-root and so what was renamed and remounted.
    pub place: bind::Place,
    /// containerd's root, restored with the data-root (containerd image store).
    pub containerd_root: Option<PathBuf>,
    /// What is mounted at containerd's root, and so what was renamed and remounted.
    pub containerd_place: Option<bind::Place>,
    /// Where the previous containerd root was kept.
    pub containerd_old: Option<PathBuf>,
    pub containerd_entries: u64,
    /// The daemon.json edit that pinned the archive's image store, if one was needed.
    pub store_pinned: Option<String>,
}

/// Checks a config name from the archive: only files below /etc/docker and
/// `*.conf` drop-ins of docker.service, no `.` or `..` components.
pub(crate) fn config_name_ok(name: &[u8]) -> bool {
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

/// The data-root to restore (`--data-root` or Docker's) and what is mounted there.
pub fn place(opts: &RestoreOptions, warnings: &mut Vec<String>) -> Result<bind::Place> {
    let dr = backup::data_root(opts.data_root.as_deref(), &opts.api)?;
    bind::Place::detect(&crate::plan::env::absolute(&dr), warnings)
}

/// containerd's root when the archive carries it: what is mounted there and
/// where its tree would be staged (`--dry-run`).
pub fn containerd_place(opts: &RestoreOptions, meta: &BackupMeta, warnings: &mut Vec<String>) -> Result<Option<(bind::Place, PathBuf)>> {
    meta.containerd_tree.as_ref().map(|_| stores::place(opts, "<UTC time>", warnings)).transpose()
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
    let place = place(opts, &mut warnings)?;
    let dr = place.data_root.clone();
    if non_empty(place.tree()) && !opts.force {
        return Err(BackupError::Refused(format!(
            "data-root {} is not empty; pass --force to keep it as {} and restore in its place",
            dr.display(),
            place.old("<UTC time>").display()
        )));
    }
    let state = StateDir::new(&opts.state_dir);
    let _lock = state.lock()?;
    state.refuse_unfinished()?;
    let ts = atomic::utc_timestamp(SystemTime::now());
    let second = stores::plan(opts, &meta, &ts, &mut warnings)?;
    let mut j = Journal::new("restore", format!("restore-{ts}"), dr.clone(), place.staging(&ts), Method::Swap);
    j.socket = opts.api.socket.clone();
    j.archive = Some(opts.source.clone());
    j.old_tree = place.tree().symlink_metadata().is_ok().then(|| place.old(&ts));
    let mut r = Runner { state: &state, j, progress };
    r.save()?;

    // (1) Extract and verify while Docker still runs on the current data.
    // Then the image store the restored tree needs, pinned if this engine would pick the other.
    let tree = r.j.target.clone();
    let staged = extract_and_verify(opts, &mut reader, &meta, second.as_ref(), &mut r, progress)
        .and_then(|ex| Ok((ex, pin::plan(opts, &meta, &tree)?)));
    let (ex, pin) = match staged {
        Ok(staged) => staged,
        Err(e) => {
            // Docker never stopped: the undo only removes the staging tree.
            return Err(match crate::plan::core::undo::undo_journal(&opts.api, opts.timing, &state, &mut r.j, progress) {
                Ok(_) => e,
                Err(u) => BackupError::Undone { error: Box::new(e), undo: vec![u.to_string()] },
            });
        }
    };

    warnings.extend(pin.as_ref().map(|p| p.said.clone()));

    // (2) Stop, swap, start. From here a signal only sets a flag, checked
    // between steps, so the restore undoes itself instead of dying with
    // Docker down.
    crate::plan::core::signal::install();
    let ctx = ServiceContext { data_root: dr.clone(), api: opts.api.clone(), timing: opts.timing };
    let svc = opts.service.clone().build(&ctx);
    // containerd holds its root open: it stops after Docker and starts before it.
    let svc = match &second {
        Some(s) => s.whole_engine(svc, opts.timing),
        None => svc,
    };
    let none = svc.kind() == ServiceKind::None;
    let stopped = Instant::now();
    let at = swap::Where { place: &place, second: second.as_ref(), pin: pin.as_ref() };
    match swap::swap_and_start(opts, &ex, &meta, at, &mut r, svc.as_ref(), none) {
        Ok(config_restored) => {
            let downtime = stopped.elapsed().as_secs_f64();
            warnings.extend(place.note(r.j.old_tree.as_deref()));
            warnings.extend(second.as_ref().and_then(|s| s.place.note(s.old.as_deref())));
            r.j.outcome = Outcome::Done;
            r.j.downtime_seconds = Some(downtime);
            r.save()?;
            Ok(RestoreSummary {
                data_root: dr,
                old: r.j.old_tree.clone(),
                entries: ex.entries,
                config_restored,
                health_checked: !none && meta.docker.is_some(),
                seconds: start.elapsed().as_secs_f64(),
                downtime_seconds: downtime,
                meta,
                warnings,
                place,
                containerd_root: second.as_ref().map(|s| s.root.clone()),
                containerd_place: second.as_ref().map(|s| s.place.clone()),
                containerd_old: second.as_ref().and_then(|s| s.old.clone()),
                containerd_entries: ex.containerd_entries,
                store_pinned: pin.map(|p| p.said),
            })
        }
        Err(e) => {
            let undo = crate::plan::core::undo::undo_journal(&opts.api, opts.timing, &state, &mut r.j, progress);
            Err(BackupError::Undone { error: Box::new(e), undo: undo.err().map(|u| vec![u.to_string()]).unwrap_or_default() })
        }
    }
}

/// Extracts into the staging directories (the data-root's and, with the
/// containerd image store, containerd's root's) and verifies each against
/// its manifest. Nothing outside the staging trees changes.
fn extract_and_verify(
    opts: &RestoreOptions,
    reader: &mut archive::ArchiveReader,
    meta: &BackupMeta,
    second: Option<&stores::Second>,
    r: &mut Runner,
    progress: &dyn Progress,
) -> Result<archive::Extracted> {
    let staging = r.j.target.clone();
    let parent = staging.parent().unwrap_or(Path::new("/"));
    std::fs::create_dir_all(parent).map_err(BackupError::io("create", parent))?;
    let mut made = vec![Intent::MakeTree { path: staging.clone() }];
    made.extend(second.map(|s| Intent::MakeTree { path: s.staging.clone() }));
    r.step_with("staging", made, |_| {
        std::fs::create_dir(&staging).map_err(BackupError::io("create the staging directory", &staging))?;
        second.map_or(Ok(()), |s| s.make_staging())
    })?;
    // The archive's manifests stream to files next to the staging trees (never
    // into memory); verify_staging below hashes each tree as written against its own.
    let mpath = atomic::with_suffix(&staging, ".manifest");
    let mut made = vec![Intent::MakeTree { path: mpath.clone() }];
    made.extend(second.map(|s| Intent::MakeTree { path: s.manifest.clone() }));
    let ex = r.step_with("extract", made, |_| {
        let (ce, cb) = meta.containerd_tree.as_ref().map_or((0, 0), |t| (t.entries, t.bytes));
        progress.phase("extract", Some((meta.entries + ce, meta.bytes + cb)));
        let ex = extract_to(reader, (&staging, &mpath), second.map(|s| (s.staging.as_path(), s.manifest.as_path())));
        progress.finish();
        ex
    })?;
    r.step("verify", |_| {
        verify_staging(opts, &staging, &mpath, progress)?;
        second.map_or(Ok(()), |s| verify_staging(opts, &s.staging, &s.manifest, progress))
    })?;
    Ok(ex)
}

/// A manifest file the extraction writes.
fn manifest_file(path: &Path) -> Result<std::io::BufWriter<std::fs::File>> {
    let f = std::fs::File::create(path).map_err(BackupError::io("create", path))?;
    Ok(std::io::BufWriter::with_capacity(1 << 20, f))
}

/// Extracts the data-root into `data.0`, writing its manifest to `data.1`,
/// and containerd's root likewise into `second`.
fn extract_to(reader: &mut archive::ArchiveReader, data: (&Path, &Path), second: Option<(&Path, &Path)>) -> Result<archive::Extracted> {
    let fd = crate::sys::open_dir_path(data.0).map_err(BackupError::io("open", data.0))?;
    let mut w = manifest_file(data.1)?;
    let mut second = match second {
        Some((dir, m)) => Some((crate::sys::open_dir_path(dir).map_err(BackupError::io("open", dir))?, manifest_file(m)?, m)),
        None => None,
    };
    let target = second.as_mut().map(|(fd, w, _)| archive::Target { staging: (*fd).as_fd(), manifest: w });
    let ex = archive::extract_trees(reader, archive::Target { staging: fd.as_fd(), manifest: &mut w }, target)?;
    std::io::Write::flush(&mut w).map_err(BackupError::io("write", data.1))?;
    if let Some((_, w, m)) = &mut second {
        std::io::Write::flush(w).map_err(BackupError::io("write", *m))?;
    }
    Ok(ex)
}

/// Verifies a staging tree against the archive's manifest (`mpath`, written by the extract).
fn verify_staging(opts: &RestoreOptions, staging: &Path, mpath: &Path, progress: &dyn Progress) -> Result<()> {
    let rep = crate::audit::verify_tree(staging, mpath, opts.threads, progress);
    let _ = std::fs::remove_file(mpath);
    let rep = rep?;
    if !rep.ok() {
        let first = rep.differences.first().map(|d| d.to_string()).or_else(|| rep.errors.first().cloned()).unwrap_or_default();
        return Err(BackupError::StagingDiffers { count: rep.differences.len() as u64 + rep.more + rep.errors.len() as u64, first });
    }
    Ok(())
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
