//! `dockroot backup`: stop Docker, stream the data-root (and optionally the
//! host's Docker configuration) into a zstd tar archive with a manifest as
//! its last member, and start Docker again, always, also on failure.
//!
//! The archive is written to `FILE.partial` and renamed only when complete,
//! so an interrupted backup never looks like a finished one. With an output
//! directory, the archive gets a timestamped name and `--keep N` prunes older
//! dockroot archives there.

pub mod binds;
pub mod live;
pub mod meta;
pub mod snapshot;
pub mod stores;
pub mod stream;
pub mod target;

use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::{Instant, SystemTime};

use serde::Serialize;

use self::snapshot::{self as snap, Capture, Choice, Request};
use self::target::{commit, open_partial, or_remove_partial, partial_path};
use crate::archive::layout::Tree;
use crate::archive::{self, ArchiveError, TreeSource, WriterOptions};
use crate::docker::api::{DockerApi, Info};
use crate::docker::daemon_json::DaemonJson;
use crate::docker::engine::EngineMeta;
use crate::docker::snapshot::DockerState;
use crate::docker::{discover, facts, userns};
use crate::plan::backup::meta::{BackupMeta, META_FORMAT};
use crate::plan::{PlanError, Result};
use crate::progress::Progress;
use crate::service::engine::{ContainerdRecord, WholeEngine};
use crate::service::wait::Timing;
use crate::service::{ServiceContext, ServiceKind};
use crate::util::atomic;

/// Prefix and suffix of archive names written into a directory.
pub(crate) const NAME_PREFIX: &str = "dockroot-";
pub(crate) const NAME_SUFFIX: &str = ".tar.zst";
/// The name's end with `--compress none`.
pub(crate) const PLAIN_SUFFIX: &str = ".tar";

/// Config sources: every regular file below `/etc/docker` and the docker
/// unit drop-ins. Their archive names are the host paths without the leading `/`.
pub(crate) const CONFIG_DIRS: &[&str] = &["etc/docker", "etc/systemd/system/docker.service.d"];

/// What the caller asked for (built by the CLI).
#[derive(Debug, Clone)]
pub struct BackupOptions {
    pub data_root: Option<PathBuf>,
    pub service: ServiceKind,
    pub api: DockerApi,
    /// daemon.json (--daemon-config): where the data-root and the image store are read from.
    pub daemon_json: PathBuf,
    /// A file, a directory (existing, or ending in `/`), or `-` for stdout.
    pub output: PathBuf,
    /// With a directory output: keep only the newest N dockroot archives.
    pub keep: Option<usize>,
    /// Include `/etc/docker` and drop-ins.
    pub config: bool,
    /// Root of the host's configuration (`/`; tests use another).
    pub host_root: PathBuf,
    pub dockerd: PathBuf,
    pub writer: WriterOptions,
    pub timing: Timing,
    /// The shared journal's directory (a backup is journaled while Docker is down).
    pub state_dir: PathBuf,
    /// `--snapshot`: archive from a snapshot of the stopped tree, with Docker running.
    pub snapshot: Request,
    /// Worker threads of a reflink clone.
    pub threads: usize,
    /// Two phases, Docker stopped for the second only (the default);
    /// `false` is `--stop-the-world`: Docker stopped for the whole archive.
    pub live: bool,
    /// Archive a containerd store that other namespaces (a kubelet's) share.
    pub shared_store: bool,
    /// `--restic REPO`: the stream goes into a restic repository (output `-`).
    pub restic: Option<stream::ResticTarget>,
    /// The rootless daemon backed up (its owner and ids go into meta.json).
    pub rootless: Option<Box<crate::docker::rootless::RootlessDaemon>>,
    /// `--binds`: carry the containers' app-data bind sources.
    pub binds: binds::Binds,
    /// `--exclude-bind`: sources left out.
    pub exclude_binds: Vec<PathBuf>,
}

/// The plan (the dry run prints it).
#[derive(Debug, Clone, Serialize)]
pub struct BackupPlan {
    pub data_root: PathBuf,
    pub service: String,
    /// `None` for stdout.
    pub output: Option<PathBuf>,
    pub config_files: Vec<PathBuf>,
    /// Archives that `--keep` would delete after a successful backup.
    pub prune: Vec<PathBuf>,
    /// Said before Docker is stopped (e.g. the archive is on the data-root's disk).
    pub warnings: Vec<String>,
}

/// The result of a backup.
#[derive(Debug, Clone, Serialize)]
pub struct BackupSummary {
    pub output: Option<PathBuf>,
    pub entries: u64,
    pub bytes: u64,
    pub archive_bytes: u64,
    pub seconds: f64,
    /// From the stop of Docker to its start.
    pub downtime_seconds: f64,
    /// `btrfs`, `reflink` or `none` (archived with Docker stopped).
    pub snapshot: String,
    /// Why `--snapshot auto` took no snapshot.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub snapshot_skipped: Option<String>,
    pub removed: Vec<PathBuf>,
    pub meta: BackupMeta,
    /// A live backup's phases (absent with `--stop-the-world` or a snapshot).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub phases: Option<live::LivePhases>,
    /// `--restic`: the snapshot saved, read back and retained.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub restic: Option<stream::ResticReport>,
}

use crate::util::hostname;

/// The data-root: as given, or discovered the way dockerd would find it.
pub(crate) fn data_root(given: Option<&Path>, daemon_json: &Path, api: &DockerApi) -> Result<PathBuf> {
    discover::data_root(given, daemon_json, api).map_err(PlanError::docker_at("discover the data-root"))
}

fn is_dir_output(p: &Path) -> bool {
    p.as_os_str().as_encoded_bytes().ends_with(b"/") || p.is_dir()
}

/// Dockroot archives in `dir`, oldest first (names sort by their UTC time).
pub(crate) fn archives_in(dir: &Path) -> Result<Vec<PathBuf>> {
    let mut v: Vec<PathBuf> = std::fs::read_dir(dir)
        .map_err(PlanError::file("list", dir))?
        .filter_map(|e| e.ok())
        .map(|e| e.path())
        .filter(|p| {
            let n = p.file_name().and_then(|n| n.to_str()).unwrap_or("");
            n.starts_with(NAME_PREFIX) && (n.ends_with(NAME_SUFFIX) || n.ends_with(PLAIN_SUFFIX)) && p.is_file()
        })
        .collect();
    v.sort();
    Ok(v)
}

/// Regular files below the config directories of `host_root`.
pub(crate) fn config_files(host_root: &Path) -> Vec<(Vec<u8>, PathBuf)> {
    let mut out = Vec::new();
    for d in CONFIG_DIRS {
        for e in walkdir::WalkDir::new(host_root.join(d)).sort_by_file_name().into_iter().filter_map(|e| e.ok()) {
            if let (true, Ok(rel)) = (e.file_type().is_file(), e.path().strip_prefix(host_root)) {
                out.push((rel.as_os_str().as_encoded_bytes().to_vec(), e.path().to_path_buf()));
            }
        }
    }
    out
}

/// Computes what a backup will do; changes nothing.
pub fn plan(opts: &BackupOptions) -> Result<BackupPlan> {
    let dr = data_root(opts.data_root.as_deref(), &opts.daemon_json, &opts.api)?;
    if !dr.is_dir() {
        return Err(PlanError::refused(format!("data-root {} is not a directory", dr.display())));
    }
    let dr = std::fs::canonicalize(&dr).map_err(PlanError::file("resolve", &dr))?;
    let (output, prune) = if opts.output == Path::new("-") {
        (None, Vec::new())
    } else if is_dir_output(&opts.output) {
        let suffix = if opts.writer.level.is_some() { NAME_SUFFIX } else { PLAIN_SUFFIX };
        let name = format!("{NAME_PREFIX}{}-{}{suffix}", hostname(), atomic::utc_timestamp(SystemTime::now()));
        let new = opts.output.join(name);
        // An archive of the same second is replaced, never pruned after the
        // new one took its name (that would delete the new archive).
        let existing: Vec<PathBuf> =
            if opts.output.is_dir() { archives_in(&opts.output)?.into_iter().filter(|p| *p != new).collect() } else { Vec::new() };
        // The new archive counts as one of the kept.
        let prune = match opts.keep {
            Some(n) => existing.iter().rev().skip(n.saturating_sub(1)).cloned().collect(),
            None => Vec::new(),
        };
        (Some(new), prune)
    } else {
        if opts.keep.is_some() {
            return Err(PlanError::refused("--keep needs a directory as output (-o DIR/)"));
        }
        (Some(opts.output.clone()), Vec::new())
    };
    let mut warnings = Vec::new();
    if output.is_some() {
        warnings.extend(target::check(&opts.output, is_dir_output(&opts.output), &dr)?);
    }
    if let Some(out) = &output {
        crate::sys::check_replaceable(out).map_err(PlanError::file("check the output", out))?;
        let abs = crate::plan::env::absolute(out);
        if abs.starts_with(&dr) {
            return Err(PlanError::refused(format!(
                "the archive {} would be inside the data-root {}; write it elsewhere",
                abs.display(),
                dr.display()
            )));
        }
    }
    let config_files = if opts.config { config_files(&opts.host_root).into_iter().map(|c| c.1).collect() } else { Vec::new() };
    Ok(BackupPlan { data_root: dr, service: opts.service.clone().resolve().to_string(), output, config_files, prune, warnings })
}

/// Completes a walked entry's manifest record with what the writer read: a
/// regular file's size and BLAKE3.
pub use crate::archive::phase2::complete;

/// Writes the whole archive of `trees` (archive order, the data-root last)
/// to `out` in one pass; returns (entries, data bytes) of all trees.
pub fn write_archive<W: Write + Send + 'static>(
    out: W,
    trees: &[TreeSource],
    meta: &BackupMeta,
    config: &[(Vec<u8>, PathBuf)],
    wopts: &WriterOptions,
    progress: &dyn Progress,
) -> Result<(W, u64, u64)> {
    let meta_json = serde_json::to_vec_pretty(meta).map_err(|e| ArchiveError::Meta(e.to_string()))?;
    let mut w = archive::ArchiveWriter::new(out, wopts, &meta_json)?;
    for (name, host) in config {
        w.add_config(name, host)?;
    }
    progress.phase("backup", Some(meta.totals()));
    let (out, counts) = archive::trees::write_trees(w, trees, &mut |b| progress.advance(1, b))?;
    progress.finish();
    let t = counts.total();
    Ok((out, t.entries, t.bytes))
}

/// What [`engine_check`] found.
pub struct EngineCheck {
    /// The daemon that owns the data-root (`None` if it is not running).
    pub info: Option<Info>,
    pub meta: EngineMeta,
    /// containerd's root, to archive beside the data-root.
    pub containerd_root: Option<PathBuf>,
    pub namespaces: Vec<String>,
    /// The system containerd to stop with Docker while its root is archived.
    pub containerd: Option<ContainerdRecord>,
}

/// The daemon that owns `dr`, what meta.json records about the engine, and
/// the containerd root the archive must carry (issue 8). Refuses a backup
/// that would silently lack the images, or take another user's along
/// without `--shared-store`.
pub fn engine_check(opts: &BackupOptions, dr: &Path) -> Result<EngineCheck> {
    // Only a daemon that owns this data-root describes it (a system dockerd
    // next to a `--service none --data-root` tree does not).
    let info = opts.api.ping().then(|| opts.api.info().ok()).flatten();
    let info = info.filter(|i| i.check_root(dr).is_ok());
    let cfg = DaemonJson::load(&opts.daemon_json).map_err(PlanError::docker_at("read daemon.json"))?;
    let facts = crate::service::engine::engine_facts(&opts.service, &cfg, dr, info.as_ref(), opts.timing);
    let containerd_root = stores::containerd_root(&facts, dr, opts.shared_store)?;
    let containerd = info.as_ref().and_then(|_| opts.api.components().ok()?.into_iter().find(|c| c.name == "containerd"));
    let meta = EngineMeta::new(&facts, containerd.map(|c| c.version));
    let containerd = containerd_root.as_ref().and_then(|_| ContainerdRecord::for_engine(&facts));
    Ok(EngineCheck { info, meta, containerd_root, containerd, namespaces: facts.containerd.namespaces })
}

/// How a backup captures the stopped state of its trees; computed once
/// ([`prepare`]) from the options and the engine's facts, for the dry run
/// and the backup alike.
#[derive(Debug, Clone)]
pub enum Mode {
    /// Every tree captured with Docker stopped; the archive is read from the
    /// captures with Docker running again.
    Snapshot(Vec<Capture>),
    /// Phase 1 of every tree with Docker running, phase 2 with it stopped.
    Live,
    /// Docker stopped for the whole archive, and why.
    Stopped(String),
}

/// Everything decided before Docker is touched.
pub struct Prepared {
    pub plan: BackupPlan,
    pub engine: EngineCheck,
    pub binds: binds::Selected,
    /// The trees to archive, in archive order: containerd's root, the bind sources, the data-root.
    pub trees: Vec<TreeSource>,
    pub mode: Mode,
    /// Why `--snapshot auto` took no snapshot.
    pub snapshot_skipped: Option<String>,
}

/// Plans the backup, checks the engine, selects the bind sources and
/// decides the mode; changes nothing.
pub fn prepare(opts: &BackupOptions, progress: &dyn Progress) -> Result<Prepared> {
    let plan = plan(opts)?;
    let dr = plan.data_root.clone();
    let engine = engine_check(opts, &dr)?;
    let carried = crate::docker::mounts::Carried { data_root: dr.clone(), containerd_root: engine.containerd_root.clone() };
    let binds = binds::select(opts.binds, &opts.exclude_binds, &opts.api, &carried)?;
    let mut trees: Vec<TreeSource> = engine.containerd_root.iter().map(|r| TreeSource::dir(Tree::Containerd, r)).collect();
    trees.extend(binds.sources());
    trees.push(TreeSource::dir(Tree::Data, &dr));
    let driver = engine.info.as_ref().map(|i| i.driver.as_str());
    let (captures, snapshot_skipped) = capture(opts, &trees, driver, progress)?;
    let mode = match captures {
        Some(c) => Mode::Snapshot(c),
        None if opts.live => Mode::Live,
        None => Mode::Stopped("--stop-the-world".into()),
    };
    Ok(Prepared { plan, engine, binds, trees, mode, snapshot_skipped })
}

/// Runs the backup: snapshot, stop, archive, start (always), prune.
pub fn backup(opts: &BackupOptions, progress: &dyn Progress) -> Result<BackupSummary> {
    let mut s = backup_archive(opts, progress)?;
    if let Some(t) = &opts.restic {
        s.restic = Some(stream::after_upload(t, &s.meta, progress)?);
    }
    Ok(s)
}

/// The backup up to the archive's end.
fn backup_archive(opts: &BackupOptions, progress: &dyn Progress) -> Result<BackupSummary> {
    let start = Instant::now();
    let Prepared { plan, engine, binds, trees, mode, snapshot_skipped } = prepare(opts, progress)?;
    for w in &plan.warnings {
        progress.warn(w);
    }
    for b in &binds.carried {
        progress.log(&format!("carrying bind source {}", binds::describe(b)));
    }
    for b in &binds.skipped {
        progress.log(&format!("not carrying bind source {}: {}", b.path.display(), b.reason));
    }
    let dr = plan.data_root.clone();
    let EngineCheck { info, meta: engine_meta, containerd_root, namespaces, containerd } = engine;
    // The remapped subtree the running daemon uses; without a daemon, the one on disk.
    let userns = match &info {
        Some(i) if !i.remapped() => None,
        i => userns::observe(&dr, i.as_ref().map(|i| i.docker_root_dir.as_path()), &userns::IdFiles::default()),
    };
    let (docker, driver) = match info {
        Some(i) => {
            (Some(DockerState::capture(&opts.api).map_err(PlanError::docker_at("list images, containers and volumes"))?), Some(i.driver))
        }
        None => (None, None),
    };
    // What `restore --volume` creates a missing volume from, and `inspect` shows.
    let volumes = match &docker {
        Some(_) => Some(opts.api.volume_specs().map_err(PlanError::docker_at("list volumes and the containers that use them"))?),
        None => None,
    };
    // A rootless daemon that is not running still names its driver (daemon.json, the tree).
    let driver = driver.or_else(|| opts.rootless.as_ref().and_then(|d| d.storage_driver.clone()));
    let engine = facts::engine_version(&opts.dockerd).ok().map(|v| v.version);
    let config: Vec<(Vec<u8>, PathBuf)> = if opts.config { config_files(&opts.host_root) } else { Vec::new() };

    let ctx = ServiceContext { data_root: dr.clone(), api: opts.api.clone(), timing: opts.timing };
    let svc = opts.service.clone().build(&ctx);
    // A consistent copy of containerd's root needs containerd stopped too.
    let svc: Box<dyn crate::service::ServiceManager> = match containerd {
        Some(c) => Box::new(WholeEngine::new(svc, c, opts.timing)),
        None => svc,
    };
    let window = crate::plan::core::window::Window {
        state_dir: &opts.state_dir,
        data_root: &dr,
        svc: svc.as_ref(),
        api: &opts.api,
        timing: opts.timing,
        creates: plan.output.iter().map(|p| partial_path(p)).collect(),
    };
    let method = match &mode {
        Mode::Snapshot(c) => c.first().map(|c| c.method.name().to_string()),
        _ => None,
    };
    // meta.json of the trees read from `src` (the data-root, or its snapshot).
    let meta_of = |src: &Path, two_phase: bool| {
        // Counted before the archive, so meta.json (the first member) can carry them.
        let (entries, bytes, allocated) = crate::tree::estimate::estimate_with_allocated(src);
        BackupMeta {
            format: META_FORMAT,
            tool: "dockroot".into(),
            tool_version: env!("CARGO_PKG_VERSION").into(),
            engine_version: engine,
            storage_driver: driver,
            data_root: dr.clone(),
            hostname: hostname(),
            created: atomic::utc_timestamp(SystemTime::now()),
            entries,
            bytes,
            allocated: Some(allocated),
            docker,
            engine: Some(engine_meta),
            snapshot: method.clone(),
            containerd_tree: containerd_root.as_deref().map(|r| stores::describe(r, &namespaces)),
            two_phase,
            userns: userns.clone(),
            volumes: volumes.clone(),
            rootless: opts.rootless.as_ref().map(|d| d.ids.clone()),
            binds: binds.carried.clone(),
            binds_skipped: binds.skipped.clone(),
        }
    };
    let taken = (method.clone(), snapshot_skipped.clone());
    if let Mode::Live = mode {
        // The hook for the two-phase backup: Docker is stopped inside it.
        let meta = meta_of(&dr, true);
        let input = live::LiveInput { trees: &trees, meta: &meta, config: &config, wopts: &opts.writer };
        let (phases, downtime, archive_bytes) = live::backup_live(plan.output.as_deref(), opts.restic.as_ref(), input, window, progress)?;
        let (entries, bytes) = phases.tree;
        return finish(plan, start, (meta, entries, bytes, archive_bytes), downtime, Some(phases), taken);
    }
    // Reads the trees from `roots` (the trees themselves, or their snapshots) and records the originals.
    let archive = |roots: &[PathBuf]| {
        let srcs: Vec<TreeSource> = trees.iter().zip(roots).map(|(t, r)| t.at(r)).collect();
        let data = &srcs.last().expect("the data-root is a tree").root;
        let meta = meta_of(data, false);
        let (entries, bytes, archive_bytes) = match &plan.output {
            None => {
                let out = stream::Stream::open(opts.restic.as_ref(), &meta)?;
                let (out, e, b) = write_archive(out, &srcs, &meta, &config, &opts.writer, progress)?;
                let len = out.close()?;
                (e, b, len)
            }
            Some(path) => {
                let ((e, b), len) =
                    write_file(path, |f| write_archive(f, &srcs, &meta, &config, &opts.writer, progress).map(|(f, e, b)| (f, (e, b))))?;
                (e, b, len)
            }
        };
        Ok((meta, entries, bytes, archive_bytes))
    };
    // Docker starts again whatever happens; the downtime includes the stop.
    let (done, downtime) = match &mode {
        Mode::Snapshot(caps) => snap::run(window, caps, progress, archive)?,
        _ => {
            let roots: Vec<PathBuf> = trees.iter().map(|t| t.root.clone()).collect();
            crate::plan::core::window::with_docker_stopped(window, progress, || archive(&roots))?
        }
    };
    finish(plan, start, done, downtime, None, taken)
}

/// Reads the new archive back with the checks of `dockroot verify FILE`
/// before `--keep` deletes `kept` older ones (it was fsynced, its directory
/// too, by [`commit`]); any failure keeps them.
fn read_back(archive: &Path, kept: usize) -> Result<()> {
    crate::plan::core::hooks::damage_hook(archive);
    let check = || -> std::result::Result<(), String> {
        let rep = crate::archive::open(archive).and_then(crate::archive::verify).map_err(|e| e.to_string())?;
        BackupMeta::parse(&rep.meta).map_err(|e| e.to_string())?;
        if !rep.ok() {
            let first = rep.report.differences.first().map(|d| d.to_string()).unwrap_or_default();
            return Err(format!("its members differ from its manifest, first: {first}"));
        }
        Ok(())
    };
    check().map_err(|why| {
        // Out of the archive pattern: never counted by a later --keep as a good archive.
        let bad = atomic::with_suffix(archive, ".unverified");
        let why = match std::fs::rename(archive, &bad) {
            Ok(()) => format!("{why}; it is kept as {} for inspection", bad.display()),
            Err(e) => format!("{why}; renaming it to {} failed too ({e})", bad.display()),
        };
        PlanError::ReadBack { archive: archive.into(), why, kept }
    })
}

/// Prunes old archives (`--keep`) after a successful backup, once the new
/// one read back clean, and sums it up.
fn finish(
    plan: BackupPlan,
    start: Instant,
    (meta, entries, bytes, archive_bytes): (BackupMeta, u64, u64, u64),
    downtime: f64,
    phases: Option<live::LivePhases>,
    (snapshot, snapshot_skipped): (Option<String>, Option<String>),
) -> Result<BackupSummary> {
    if let (Some(new), false) = (&plan.output, plan.prune.is_empty()) {
        read_back(new, plan.prune.len())?;
    }
    let mut removed = Vec::new();
    for p in &plan.prune {
        std::fs::remove_file(p).map_err(PlanError::file("remove old archive", p))?;
        removed.push(p.clone());
    }
    Ok(BackupSummary {
        output: plan.output,
        entries,
        bytes,
        archive_bytes,
        seconds: start.elapsed().as_secs_f64(),
        downtime_seconds: downtime,
        snapshot: snapshot.unwrap_or_else(|| "none".into()),
        snapshot_skipped,
        removed,
        meta,
        phases,
        restic: None,
    })
}

/// The snapshots `--snapshot` asks for, one per tree, probed with Docker
/// running: the captures to make, or none and why `auto` took none. An
/// explicit method that cannot work for a tree is refused before Docker is stopped.
pub fn capture(
    opts: &BackupOptions,
    trees: &[TreeSource],
    driver: Option<&str>,
    progress: &dyn Progress,
) -> Result<(Option<Vec<Capture>>, Option<String>)> {
    if opts.snapshot == Request::None {
        return Ok((None, None));
    }
    let without = |why: String| {
        if opts.snapshot != Request::Auto {
            return Err(PlanError::refused(format!("--snapshot: {why}; nothing was changed")));
        }
        progress.log(&format!("no snapshot: {why}"));
        Ok((None, Some(why)))
    };
    let mut caps = Vec::new();
    for t in trees {
        if t.only.is_some() {
            return without(format!("{} is a regular file, which snapshots do not capture; use --snapshot none", t.tree.describe()));
        }
        let path = snap::capture_path(&t.root);
        // The storage driver describes the data-root only.
        let facts = snap::probe(&t.root, &path, driver.filter(|_| t.tree == Tree::Data), &opts.service.clone().resolve());
        match snap::choose(opts.snapshot, &facts) {
            Ok(Choice::Use(method)) => caps.push(Capture { method, tree: t.root.clone(), path, threads: opts.threads }),
            Ok(Choice::Without(why)) if t.tree == Tree::Data => return without(why),
            Ok(Choice::Without(why)) => return without(format!("{} ({}): {why}", t.tree.describe(), t.root.display())),
            Err(why) => {
                return Err(PlanError::refused(format!(
                    "--snapshot: {} ({}): {why}; nothing was changed",
                    t.tree.describe(),
                    t.root.display()
                )));
            }
        }
    }
    Ok((Some(caps), None))
}

/// Writes `path.partial` with `write`, fsyncs it and renames it to `path`;
/// returns what `write` returned and the archive's size.
fn write_file<T>(path: &Path, write: impl FnOnce(std::fs::File) -> Result<(std::fs::File, T)>) -> Result<(T, u64)> {
    let (f, partial) = open_partial(path)?;
    let r: Result<_> = write(f).map_err(|e| e.naming_output(&partial)).and_then(|(f, v)| Ok((v, commit(f, &partial, path)?)));
    or_remove_partial(path, r)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keep_prunes_oldest_and_counts_the_new_archive() {
        let d = tempfile::tempdir().unwrap();
        for ts in ["20260101T000000Z", "20260102T000000Z", "20260103T000000Z"] {
            std::fs::write(d.path().join(format!("dockroot-h-{ts}.tar.zst")), b"x").unwrap();
        }
        std::fs::write(d.path().join("other.tar.zst"), b"x").unwrap();
        let src = tempfile::tempdir().unwrap();
        let opts = BackupOptions {
            data_root: Some(src.path().to_path_buf()),
            service: ServiceKind::None,
            api: DockerApi::new("/nonexistent.sock"),
            daemon_json: d.path().join("daemon.json"),
            output: d.path().to_path_buf(),
            keep: Some(2),
            config: false,
            host_root: "/".into(),
            dockerd: "dockerd".into(),
            writer: WriterOptions::default(),
            timing: Timing::default(),
            state_dir: d.path().join("state"),
            snapshot: Request::None,
            threads: 1,
            live: true,
            shared_store: false,
            restic: None,
            rootless: None,
            binds: Default::default(),
            exclude_binds: Vec::new(),
        };
        let p = plan(&opts).unwrap();
        let names: Vec<String> = p.prune.iter().map(|p| p.file_name().unwrap().to_string_lossy().into_owned()).collect();
        assert_eq!(names, ["dockroot-h-20260102T000000Z.tar.zst", "dockroot-h-20260101T000000Z.tar.zst"]);
        // An archive inside the data-root would archive itself.
        let inside = BackupOptions { output: src.path().join("a.tar.zst"), keep: None, ..opts };
        assert!(plan(&inside).unwrap_err().to_string().contains("inside the data-root"));
    }
}
