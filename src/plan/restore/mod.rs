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
pub mod bind_piece;
pub mod binds;
mod live;
pub mod piece;
mod pin;
mod room;
mod stores;
mod swap;
pub mod volume;

use std::os::fd::AsFd;
use std::path::{Path, PathBuf};
use std::time::{Instant, SystemTime};

use serde::Serialize;

use crate::archive;
use crate::docker::api::DockerApi;
use crate::docker::facts::{self, EngineChange};
use crate::docker::rootless::RootlessIds;
use crate::docker::{discover, layout, userns};
use crate::plan::backup::meta::BackupMeta;
use crate::plan::backup::{self, CONFIG_DIRS};
use crate::plan::core::intent::{Flusher, Intent, flushing_while};
use crate::plan::core::journal::{Journal, Method, Outcome, StateDir};
use crate::plan::core::runner::Runner;
use crate::plan::{PlanError, Result};
use crate::progress::Progress;
use crate::service::wait::Timing;
use crate::service::{ServiceContext, ServiceKind};
use crate::tree::remap::{RemapStats, Shift, remap_tree};
use crate::util::atomic;

pub(crate) const STAGING_INFIX: &str = ".dockroot-staging-";
pub(crate) use crate::docker::facts::OLD_INFIX;

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
    /// The engine's daemon.json (its userns-remap must match the archive's).
    pub daemon_json: PathBuf,
    pub dockerd: PathBuf,
    pub threads: usize,
    pub timing: Timing,
    /// Restore a containerd store that other namespaces (a kubelet's) share.
    pub shared_store: bool,
    /// The rootless daemon restored into (`None`: the system daemon).
    pub rootless: Option<Box<crate::docker::rootless::RootlessDaemon>>,
    /// Shift the archive's ids into the target's rootless id maps.
    pub remap_ids: bool,
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
    /// `--remap-ids`: what the shift into this host's id maps changed.
    pub remapped: Option<crate::tree::remap::RemapStats>,
    /// Bind sources put back at their paths.
    pub binds: Vec<binds::BindPlace>,
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
            return Err(PlanError::EngineMismatch { archive: want.clone(), installed });
        }
        _ => warnings.push(format!(
            "the archive was made with Docker {want}, and the installed Docker {installed} is older or unknown; restoring anyway \
             (--allow-downgrade), which Docker does not support"
        )),
    }
    Ok(())
}

/// The archive's layout must fit this engine and host, checked before
/// anything is extracted: a btrfs-driver tree needs btrfs where it is
/// staged; a remapped engine's tree the same remapping and subordinate
/// ranges (archives from before dockroot recorded it are only warned about).
fn check_layout(opts: &RestoreOptions, meta: &BackupMeta, place: &bind::Place, warnings: &mut Vec<String>) -> Result<()> {
    // The directory the staging tree is extracted into (its name does not matter here).
    let staging = place.staging("layout-check");
    let at = staging.parent().unwrap_or(place.tree());
    let fs_type = crate::plan::r#move::probe::statfs(&crate::plan::r#move::probe::existing_ancestor(at)).map(|(t, _)| t);
    if let (Some(driver), Ok(fs)) = (&meta.storage_driver, fs_type)
        && let Some(msg) = layout::driver_refusal(driver, &fs, at)
    {
        return Err(PlanError::refused(msg));
    }
    let engine = match opts.with_config {
        // The archive's daemon.json comes back with the tree.
        true => meta.userns.as_ref().map(|u| u.setting.clone()),
        false => {
            let d = discover::DiscoverOptions { daemon_json: opts.daemon_json.clone(), api: None, ..Default::default() };
            discover::discover(&d).map_err(PlanError::docker_at("read daemon.json"))?.userns_remap
        }
    };
    if meta.userns.is_none() && engine.is_some() {
        warnings.push(format!(
            "this engine remaps user namespaces (userns-remap `{}`); the archive records no remapping, so its state may be invisible to it",
            engine.as_deref().unwrap_or_default()
        ));
        return Ok(());
    }
    match userns::mismatch(meta.userns.as_ref(), engine.as_deref(), &userns::IdFiles::default()) {
        Some(m) => Err(PlanError::refused(m.to_string())),
        None => Ok(()),
    }
}

/// The id shift a rootless restore needs, from the archive's owner and id
/// maps (`archive`) to the target daemon's (`here`): none when they are the
/// same; refused when they differ without `remap` (`--remap-ids`), and when
/// one side is rootless and the other is not.
pub fn id_shift(archive: Option<&RootlessIds>, here: Option<&RootlessIds>, remap: bool) -> Result<Option<Shift>> {
    match (archive, here) {
        (None, None) => Ok(None),
        (Some(a), None) => Err(PlanError::refused(format!(
            "the archive is of {}'s rootless Docker; restore it into a rootless daemon with --user NAME",
            a.user
        ))),
        (None, Some(h)) => Err(PlanError::refused(format!(
            "the archive is of a system daemon, whose files belong to root; restore it with --rootful, not into {}'s rootless Docker",
            h.user
        ))),
        (Some(a), Some(h)) => {
            let differences = a.differences(h);
            if differences.is_empty() {
                return Ok(None);
            }
            if !remap {
                return Err(PlanError::IdsDiffer { user: a.user.clone(), differences: differences.join("; ") });
            }
            Ok(Some(Shift { uids: (a.uids.clone(), h.uids.clone()), gids: (a.gids.clone(), h.gids.clone()) }))
        }
    }
}

fn non_empty(p: &Path) -> bool {
    std::fs::read_dir(p).map(|mut d| d.next().is_some()).unwrap_or(false)
}

/// The data-root to restore (`--data-root` or Docker's) and what is mounted there.
pub fn place(opts: &RestoreOptions, warnings: &mut Vec<String>) -> Result<bind::Place> {
    let dr = backup::data_root(opts.data_root.as_deref(), &opts.host_root.join("etc/docker/daemon.json"), &opts.api)?;
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
    let shift = id_shift(meta.rootless.as_ref(), opts.rootless.as_ref().map(|d| &d.ids), opts.remap_ids)?;
    // With --with-config the archive's own daemon.json comes back with the tree.
    if let Some(e) = meta.engine.as_ref().filter(|_| !opts.with_config) {
        let cfg = crate::docker::daemon_json::DaemonJson::load(&opts.host_root.join("etc/docker/daemon.json"))
            .map_err(PlanError::docker_at("read daemon.json"))?;
        crate::docker::engine::check_store_pin(e.image_store, &cfg).map_err(PlanError::refused)?;
    }
    let place = place(opts, &mut warnings)?;
    check_layout(opts, &meta, &place, &mut warnings)?;
    let dr = place.data_root.clone();
    if non_empty(place.tree()) && !opts.force {
        return Err(PlanError::refused(format!(
            "data-root {} is not empty; pass --force to keep it as {} and restore in its place",
            dr.display(),
            place.old("<UTC time>").display()
        )));
    }
    let state = StateDir::new(&opts.state_dir);
    // A signal only sets a flag: the restore undoes itself instead of
    // dying, with Docker down or a staging tree half written.
    crate::plan::core::signal::install();
    state.check_room(0)?;
    let _lock = state.lock()?;
    state.refuse_unfinished()?;
    let ts = atomic::utc_timestamp(SystemTime::now());
    let second = stores::plan(opts, &meta, &ts, &mut warnings)?;
    let binds = binds::plan(&meta, &dr, second.as_ref().map(|s| s.root.as_path()), opts.force, &ts)?;
    let staging = place.staging(&ts);
    // Archives of older versions record no allocated size: their trees are not counted.
    let mut needs = vec![room::Need { staging: &staging, bytes: meta.allocated.unwrap_or(0), what: "the data-root".into() }];
    if let (Some(s), Some(t)) = (&second, &meta.containerd_tree) {
        needs.push(room::Need { staging: &s.staging, bytes: t.allocated.unwrap_or(0), what: "containerd's root".into() });
    }
    needs.extend(binds.iter().map(|b| room::Need {
        staging: &b.staging,
        bytes: b.bind.allocated.unwrap_or(0),
        what: format!("bind source {}", b.bind.path.display()),
    }));
    room::check(&needs, room::free)?;
    let mut j = Journal::new("restore", format!("restore-{ts}"), dr.clone(), place.staging(&ts), Method::Swap);
    j.socket = opts.api.socket.clone();
    j.archive = Some(opts.source.clone());
    j.old_tree = place.tree().symlink_metadata().is_ok().then(|| place.old(&ts));
    // What a rollback, however late, must find again.
    j.before = opts.api.ping().then(|| crate::docker::snapshot::DockerState::capture(&opts.api).ok()).flatten();
    let mut r = Runner { state: &state, j, progress };
    r.save()?;

    // (1) Extract and verify while Docker still runs on the current data.
    // Then the image store the restored tree needs, pinned if this engine would pick the other.
    let tree = r.j.target.clone();
    let staged = extract_and_verify(opts, &mut reader, &meta, (second.as_ref(), &binds), &mut r, progress)
        .and_then(|ex| Ok((ex, remap(&mut r, &tree, shift.as_ref())?)))
        .and_then(|(ex, remapped)| Ok((ex, remapped, pin::plan(opts, &meta, &tree)?)));
    let (ex, remapped, pin) = match staged {
        Ok(staged) => staged,
        Err(e) => {
            // Docker never stopped: the undo only removes the staging tree.
            return Err(match crate::plan::core::undo::undo_journal(&opts.api, opts.timing, &state, &mut r.j, progress) {
                Ok(_) => e,
                Err(u) => e.undone(Some(u)),
            });
        }
    };

    warnings.extend(pin.as_ref().map(|p| p.said.clone()));

    // (2) Stop, swap, start.
    let ctx = ServiceContext { data_root: dr.clone(), api: opts.api.clone(), timing: opts.timing };
    let svc = opts.service.clone().build(&ctx);
    // containerd holds its root open: it stops after Docker and starts before it.
    let svc = match &second {
        Some(s) => s.whole_engine(svc, opts.timing),
        None => svc,
    };
    let none = svc.kind() == ServiceKind::None;
    let stopped = Instant::now();
    let at = swap::Where { place: &place, second: second.as_ref(), binds: &binds, pin: pin.as_ref() };
    match swap::swap_and_start(opts, &ex, &meta, at, &mut r, svc.as_ref(), none) {
        Ok(config_restored) => {
            let downtime = stopped.elapsed().as_secs_f64();
            warnings.extend(place.note(r.j.old_tree.as_deref()));
            warnings.extend(second.as_ref().and_then(|s| s.place.note(s.old.as_deref())));
            r.j.outcome = Outcome::Done;
            r.j.finished_at = Some(crate::plan::core::identity::unix_now());
            r.j.downtime_seconds = Some(downtime);
            r.save_finished()?;
            for b in &binds {
                let _ = std::fs::remove_file(&b.manifest);
                // A file's staging directory, empty since the swap.
                let _ = std::fs::remove_dir(&b.staging);
            }
            if !none {
                warnings.extend(binds::empty_sources(&opts.api, &dr, &binds));
            }
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
                containerd_entries: ex.containerd_entries(),
                store_pinned: pin.map(|p| p.said),
                remapped,
                binds,
            })
        }
        Err(e) => {
            let undo = crate::plan::core::undo::undo_journal(&opts.api, opts.timing, &state, &mut r.j, progress);
            Err(e.undone(undo.err()))
        }
    }
}

/// Extracts into the staging directories (the data-root's, with the
/// containerd image store containerd's root's, and each bind tree's) and
/// verifies each against its manifest. Nothing outside the staging trees changes.
fn extract_and_verify(
    opts: &RestoreOptions,
    reader: &mut archive::ArchiveReader,
    meta: &BackupMeta,
    (second, binds): (Option<&stores::Second>, &[binds::BindPlace]),
    r: &mut Runner,
    progress: &dyn Progress,
) -> Result<archive::Extracted> {
    let staging = r.j.target.clone();
    let parent = staging.parent().unwrap_or(Path::new("/"));
    std::fs::create_dir_all(parent).map_err(PlanError::file("create", parent))?;
    let mut made = vec![Intent::make_tree(&staging)];
    made.extend(second.map(|s| Intent::make_tree(&s.staging)));
    made.extend(binds.iter().map(|b| Intent::make_tree(&b.staging)));
    r.step_with("staging", made, |_| {
        std::fs::create_dir(&staging).map_err(PlanError::file("create the staging directory", &staging))?;
        second.map_or(Ok(()), |s| s.make_staging())?;
        binds::make_staging(binds)
    })?;
    // Opened before the extraction, flushed during the verify (see Flusher).
    let fs = std::iter::once(&staging)
        .chain(second.map(|s| &s.staging))
        .chain(binds.iter().map(|b| &b.staging))
        .map(|p| Flusher::open("verify", p))
        .collect::<Result<Vec<_>>>()?;
    // The archive's manifests stream to files next to the staging trees (never
    // into memory); verify_staging below hashes each tree as written against its own.
    let mpath = atomic::with_suffix(&staging, ".manifest");
    let mut made = vec![Intent::make_tree(&mpath)];
    made.extend(second.map(|s| Intent::make_tree(&s.manifest)));
    made.extend(binds.iter().map(|b| Intent::make_tree(&b.manifest)));
    let mut trees = vec![(archive::Tree::Data, staging.as_path(), mpath.as_path())];
    trees.extend(second.map(|s| (archive::Tree::Containerd, s.staging.as_path(), s.manifest.as_path())));
    trees.extend(binds.iter().map(|b| (b.bind.tree(), b.staging.as_path(), b.manifest.as_path())));
    let ex = r.step_with("extract", made, |_| {
        progress.phase("extract", Some(meta.totals()));
        let ex = extract_to(reader, &trees);
        progress.finish();
        ex
    })?;
    r.step("verify", |_| {
        flushing_while(&fs, || {
            verify_staging(opts, &staging, &mpath, progress)?;
            second.map_or(Ok(()), |s| verify_staging(opts, &s.staging, &s.manifest, progress))?;
            // Bind manifests stay until the health check compares the trees in place.
            binds.iter().try_for_each(|b| check_staging(opts, &b.staging, &b.manifest, progress))
        })
    })?;
    Ok(ex)
}

/// `--remap-ids`: shifts the verified staging tree's ids into this host's
/// maps, a journaled step (its undo is the staging tree's removal).
fn remap(r: &mut Runner, tree: &Path, shift: Option<&Shift>) -> Result<Option<RemapStats>> {
    let Some(shift) = shift else { return Ok(None) };
    r.step("remap-ids", |_| Ok(Some(remap_tree(tree, shift)?)))
}

/// A manifest file the extraction writes.
fn manifest_file(path: &Path) -> Result<std::io::BufWriter<std::fs::File>> {
    let f = std::fs::File::create(path).map_err(PlanError::file("create", path))?;
    Ok(std::io::BufWriter::with_capacity(1 << 20, f))
}

/// Extracts each tree of the archive into its staging directory, writing
/// its manifest beside it: `(tree, staging, manifest)`. A tree of the
/// archive without a place here is an error.
fn extract_to(reader: &mut archive::ArchiveReader, trees: &[(archive::Tree, &Path, &Path)]) -> Result<archive::Extracted> {
    let (mut fds, mut writers) = (Vec::new(), Vec::new());
    for (_, dir, m) in trees {
        fds.push(crate::sys::open_dir_path(dir).map_err(PlanError::file("open", *dir))?);
        writers.push(manifest_file(m)?);
    }
    let targets = archive::Targets {
        trees: trees
            .iter()
            .zip(&fds)
            .zip(writers.iter_mut())
            .map(|(((t, _, _), fd), w)| (*t, archive::Target { staging: fd.as_fd(), manifest: w as &mut dyn std::io::Write }))
            .collect(),
        skip_others: false,
    };
    let ex = archive::extract_trees(reader, targets)?;
    for ((_, _, m), w) in trees.iter().zip(&mut writers) {
        std::io::Write::flush(w).map_err(PlanError::file("write", *m))?;
    }
    Ok(ex)
}

/// Verifies the staging tree of the data-root or containerd's root against
/// the archive's manifest (`mpath`, written by the extract, then removed).
fn verify_staging(opts: &RestoreOptions, staging: &Path, mpath: &Path, progress: &dyn Progress) -> Result<()> {
    let rep = crate::audit::verify_staged(staging, mpath, opts.threads, progress);
    let _ = std::fs::remove_file(mpath);
    check_report(rep?)
}

/// Verifies a bind source's staging tree against the manifest `mpath`,
/// which stays.
fn check_staging(opts: &RestoreOptions, staging: &Path, mpath: &Path, progress: &dyn Progress) -> Result<()> {
    check_report(crate::audit::verify_tree(staging, mpath, opts.threads, progress)?)
}

/// A staging tree's verify report: any difference or error fails the step.
fn check_report(rep: crate::manifest::compare::Report) -> Result<()> {
    if !rep.ok() {
        let first = rep.differences.first().map(|d| d.to_string()).or_else(|| rep.errors.first().cloned()).unwrap_or_default();
        return Err(PlanError::StagingDiffers { count: rep.differences.len() as u64 + rep.more + rep.errors.len() as u64, first });
    }
    Ok(())
}

fn archive_show(b: &[u8]) -> String {
    b.escape_ascii().to_string()
}

#[cfg(test)]
mod tests {
    use super::{PlanError, config_name_ok, id_shift};
    use crate::docker::rootless::{IdMap, IdRange, RootlessIds};

    #[test]
    fn rootless_ids_are_kept_refused_or_shifted() {
        let ids = |start| {
            let m = IdMap { owner: 1000, ranges: vec![IdRange { start, count: 65536 }] };
            RootlessIds { user: "alice".into(), uids: m.clone(), gids: m }
        };
        let (a, b) = (ids(100000), ids(300000));
        assert!(id_shift(None, None, false).unwrap().is_none());
        assert!(id_shift(Some(&a), Some(&a), false).unwrap().is_none(), "same ids: nothing to shift");
        let e = id_shift(Some(&a), Some(&b), false).unwrap_err();
        assert!(matches!(e, PlanError::IdsDiffer { .. }) && e.to_string().contains("--remap-ids"), "{e}");
        let s = id_shift(Some(&a), Some(&b), true).unwrap().unwrap();
        assert_eq!((s.uids.1.ranges[0].start, s.gids.0.ranges[0].start), (300000, 100000));
        assert!(id_shift(Some(&a), None, true).unwrap_err().to_string().contains("--user NAME"));
        assert!(id_shift(None, Some(&b), true).unwrap_err().to_string().contains("--rootful"));
    }

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
