//! `dockroot backup`: stop Docker, stream the data-root (and optionally the
//! host's Docker configuration) into a zstd tar archive with a manifest as
//! its last member, and start Docker again, always, also on failure.
//!
//! The archive is written to `FILE.partial` and renamed only when complete,
//! so an interrupted backup never looks like a finished one. With an output
//! directory, the archive gets a timestamped name and `--keep N` prunes older
//! dockroot archives there.

pub mod error;
pub mod live;
pub mod snapshot;
pub mod stores;
pub mod target;

use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::{Instant, SystemTime};

use serde::Serialize;

use self::error::{BackupError, Result};
use self::snapshot::{self as snap, Capture, Choice, Request};
use self::stores::write_tree;
use crate::archive::layout::Tree;
use crate::archive::meta::{BackupMeta, META_FORMAT};
use crate::archive::{self, ArchiveError, WriterOptions};
use crate::docker::api::{DockerApi, Info};
use crate::docker::daemon_json::DaemonJson;
use crate::docker::engine::EngineMeta;
use crate::docker::snapshot::DockerState;
use crate::docker::{discover, facts};
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
    /// A live backup's phases (absent with `--stop-the-world`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub phases: Option<live::LivePhases>,
    /// Set when a live backup ran as one pass instead, and why.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub one_pass_reason: Option<&'static str>,
}

fn hostname() -> String {
    nix::unistd::gethostname().ok().and_then(|h| h.into_string().ok()).unwrap_or_else(|| "localhost".into())
}

/// The data-root: as given, or discovered the way dockerd would find it.
pub(crate) fn data_root(given: Option<&Path>, api: &DockerApi) -> Result<PathBuf> {
    if let Some(d) = given {
        return Ok(d.to_path_buf());
    }
    let opts = discover::DiscoverOptions { api: Some(api.clone()), ..Default::default() };
    Ok(discover::discover(&opts).map_err(BackupError::docker("discover the data-root"))?.data_root)
}

fn is_dir_output(p: &Path) -> bool {
    p.as_os_str().as_encoded_bytes().ends_with(b"/") || p.is_dir()
}

/// Dockroot archives in `dir`, oldest first (names sort by their UTC time).
pub(crate) fn archives_in(dir: &Path) -> Result<Vec<PathBuf>> {
    let mut v: Vec<PathBuf> = std::fs::read_dir(dir)
        .map_err(BackupError::io("list", dir))?
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
    let dr = data_root(opts.data_root.as_deref(), &opts.api)?;
    if !dr.is_dir() {
        return Err(BackupError::Refused(format!("data-root {} is not a directory", dr.display())));
    }
    let dr = std::fs::canonicalize(&dr).map_err(BackupError::io("resolve", &dr))?;
    let (output, prune) = if opts.output == Path::new("-") {
        (None, Vec::new())
    } else if is_dir_output(&opts.output) {
        let suffix = if opts.writer.level.is_some() { NAME_SUFFIX } else { PLAIN_SUFFIX };
        let name = format!("{NAME_PREFIX}{}-{}{suffix}", hostname(), atomic::utc_timestamp(SystemTime::now()));
        let existing = if opts.output.is_dir() { archives_in(&opts.output)? } else { Vec::new() };
        // The new archive counts as one of the kept.
        let prune = match opts.keep {
            Some(n) => existing.iter().rev().skip(n.saturating_sub(1)).cloned().collect(),
            None => Vec::new(),
        };
        (Some(opts.output.join(name)), prune)
    } else {
        if opts.keep.is_some() {
            return Err(BackupError::Refused("--keep needs a directory as output (-o DIR/)".into()));
        }
        (Some(opts.output.clone()), Vec::new())
    };
    let mut warnings = Vec::new();
    if output.is_some() {
        warnings.extend(target::check(&opts.output, is_dir_output(&opts.output), &dr)?);
    }
    if let Some(out) = &output {
        crate::sys::check_replaceable(out).map_err(BackupError::io("check the output", out))?;
        let abs = crate::plan::env::absolute(out);
        if abs.starts_with(&dr) {
            return Err(BackupError::Refused(format!(
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

/// Writes the whole archive to `out`; returns (entries, data bytes).
pub fn write_archive<W: Write + Send + 'static>(
    out: W,
    root: &Path,
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
    let tree = meta.containerd_tree.as_ref();
    let (ce, cb) = tree.map_or((0, 0), |t| (t.entries, t.bytes));
    progress.phase("backup", Some((meta.entries + ce, meta.bytes + cb)));
    // containerd's root comes first (the layout keeps the data-root's manifest last).
    let (mut entries, mut bytes) = (0, 0);
    if let Some(t) = tree {
        let c = write_tree(&mut w, Tree::Containerd, &t.root, progress)?;
        w.end_tree(Tree::Containerd, c.manifest, c.manifest_len)?;
        (entries, bytes) = (c.entries, c.bytes);
    }
    let d = write_tree(&mut w, Tree::Data, root, progress)?;
    progress.finish();
    let out = w.finish(d.manifest, d.manifest_len)?;
    Ok((out, entries + d.entries, bytes + d.bytes))
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
    let info = info.filter(|i| std::fs::canonicalize(&i.docker_root_dir).is_ok_and(|p| p == dr));
    let cfg_path = opts.host_root.join(crate::docker::DEFAULT_DAEMON_JSON.trim_start_matches('/'));
    let cfg = DaemonJson::load(&cfg_path).map_err(BackupError::docker("read daemon.json"))?;
    let facts = crate::service::engine::engine_facts(&opts.service, &cfg, dr, info.as_ref(), opts.timing);
    let containerd_root = stores::containerd_root(&facts, dr, opts.shared_store)?;
    let containerd = info.as_ref().and_then(|_| opts.api.components().ok()?.into_iter().find(|c| c.name == "containerd"));
    let meta = EngineMeta::new(&facts, containerd.map(|c| c.version));
    let containerd = containerd_root.as_ref().and_then(|_| ContainerdRecord::for_engine(&facts));
    Ok(EngineCheck { info, meta, containerd_root, containerd, namespaces: facts.containerd.namespaces })
}

/// Runs the backup: snapshot, stop, archive, start (always), prune.
pub fn backup(opts: &BackupOptions, progress: &dyn Progress) -> Result<BackupSummary> {
    let start = Instant::now();
    let plan = plan(opts)?;
    for w in &plan.warnings {
        progress.warn(w);
    }
    let dr = plan.data_root.clone();
    let EngineCheck { info, meta: engine_meta, containerd_root, namespaces, containerd } = engine_check(opts, &dr)?;
    let one_pass = opts.live.then(|| one_pass_reason(containerd_root.as_deref())).flatten();
    let live = opts.live && one_pass.is_none();
    let (docker, driver) = match info {
        Some(i) => {
            (Some(DockerState::capture(&opts.api).map_err(BackupError::docker("list images, containers and volumes"))?), Some(i.driver))
        }
        None => (None, None),
    };
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
        creates: plan.output.iter().map(|p| atomic::with_suffix(p, ".partial")).collect(),
    };
    let (capture, skipped) = capture(opts, &dr, driver.as_deref(), containerd_root.as_deref(), progress)?;
    let method = capture.as_ref().map(|c| c.method.name().to_string());
    // A snapshot is taken with Docker stopped; without one, the default is the two-phase backup.
    let live = live && capture.is_none();
    // meta.json of a tree read from `src` (the data-root, or its snapshot).
    let meta_of = |src: &Path, two_phase: bool| {
        // Counted before the archive, so meta.json (the first member) can carry them.
        let (entries, bytes) = crate::tree::estimate::estimate(src);
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
            docker,
            engine: Some(engine_meta),
            snapshot: method.clone(),
            containerd_tree: containerd_root.as_deref().map(|r| stores::describe(r, &namespaces)),
            two_phase,
        }
    };
    let taken = (method.clone(), skipped.clone());
    if live {
        // The hook for the two-phase backup: Docker is stopped inside it.
        let meta = meta_of(&dr, true);
        let input = live::LiveInput { root: &dr, meta: &meta, config: &config, wopts: &opts.writer };
        let (phases, downtime, archive_bytes) = live::backup_live(plan.output.as_deref(), input, window, progress)?;
        let (entries, bytes) = phases.tree;
        return finish(plan, start, (meta, entries, bytes, archive_bytes), downtime, Some(phases), None, taken);
    }
    // Reads `src` (the data-root, or its snapshot) and records `dr`.
    let archive = |src: &Path| {
        let meta = meta_of(src, false);
        let (entries, bytes, archive_bytes) = match &plan.output {
            None => {
                let out = std::io::BufWriter::with_capacity(1 << 20, std::io::stdout());
                let (mut out, e, b) = write_archive(out, src, &meta, &config, &opts.writer, progress)?;
                out.flush().map_err(BackupError::io("write", "stdout"))?;
                (e, b, 0)
            }
            Some(path) => {
                let ((e, b), len) =
                    write_file(path, |f| write_archive(f, src, &meta, &config, &opts.writer, progress).map(|(f, e, b)| (f, (e, b))))?;
                (e, b, len)
            }
        };
        Ok((meta, entries, bytes, archive_bytes))
    };
    // Docker starts again whatever happens; the downtime includes the stop.
    let (done, downtime) = match &capture {
        Some(cap) => snap::run(window, cap, progress, archive)?,
        None => crate::plan::core::window::with_docker_stopped(window, progress, || archive(&dr))?,
    };
    finish(plan, start, done, downtime, None, one_pass, taken)
}

/// Why a live backup runs as one pass (Docker and containerd stopped for
/// the whole archive): two-phase covers the data-root only, and a copy of
/// containerd's root needs containerd stopped throughout.
pub fn one_pass_reason(containerd_root: Option<&Path>) -> Option<&'static str> {
    containerd_root.map(|_| "containerd's root is archived too: one pass with the engine stopped (two-phase covers the data-root only)")
}

/// Prunes old archives (`--keep`) after a successful backup and sums it up.
fn finish(
    plan: BackupPlan,
    start: Instant,
    (meta, entries, bytes, archive_bytes): (BackupMeta, u64, u64, u64),
    downtime: f64,
    phases: Option<live::LivePhases>,
    one_pass_reason: Option<&'static str>,
    (snapshot, snapshot_skipped): (Option<String>, Option<String>),
) -> Result<BackupSummary> {
    let mut removed = Vec::new();
    for p in &plan.prune {
        std::fs::remove_file(p).map_err(BackupError::io("remove old archive", p))?;
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
        one_pass_reason,
    })
}

/// The snapshot `--snapshot` asks for, probed with Docker running: the
/// capture to make, or none and why `auto` took none. An explicit method
/// that cannot work is refused before Docker is stopped.
pub fn capture(
    opts: &BackupOptions,
    dr: &Path,
    driver: Option<&str>,
    containerd_root: Option<&Path>,
    progress: &dyn Progress,
) -> Result<(Option<Capture>, Option<String>)> {
    if opts.snapshot == Request::None {
        return Ok((None, None));
    }
    // The archive would read containerd's root live after the start: until
    // it is captured the same way, its backup keeps Docker stopped.
    if let Some(c) = containerd_root {
        let why = format!("containerd's root {} is a second tree, which snapshots do not capture yet", c.display());
        if opts.snapshot != Request::Auto {
            return Err(BackupError::Refused(format!("--snapshot: {why}; use --snapshot none")));
        }
        progress.log(&format!("no snapshot: {why}"));
        return Ok((None, Some(why)));
    }
    let path = snap::capture_path(dr);
    let facts = snap::probe(dr, &path, driver, &opts.service.clone().resolve());
    match snap::choose(opts.snapshot, &facts) {
        Ok(Choice::Use(method)) => Ok((Some(Capture { method, tree: dr.into(), path, threads: opts.threads }), None)),
        Ok(Choice::Without(why)) => {
            progress.log(&format!("no snapshot: {why}"));
            Ok((None, Some(why)))
        }
        Err(why) => Err(BackupError::Refused(format!("--snapshot: {why}; nothing was changed"))),
    }
}

/// Writes `path.partial` with `write`, fsyncs it and renames it to `path`;
/// returns what `write` returned and the archive's size.
fn write_file<T>(path: &Path, write: impl FnOnce(std::fs::File) -> Result<(std::fs::File, T)>) -> Result<(T, u64)> {
    let (f, partial) = open_partial(path)?;
    let r: Result<_> = write(f).and_then(|(f, v)| Ok((v, commit(f, &partial, path)?)));
    if r.is_err() {
        let _ = std::fs::remove_file(&partial);
    }
    r
}

/// Creates `path.partial` (mode 0600), where an archive is written before
/// [`commit`] gives it its name.
pub(super) fn open_partial(path: &Path) -> Result<(std::fs::File, PathBuf)> {
    if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
        std::fs::create_dir_all(parent).map_err(BackupError::io("create", parent))?;
    }
    let partial = atomic::with_suffix(path, ".partial");
    let f = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode_0600()
        .open(&partial)
        .map_err(BackupError::io("create", &partial))?;
    Ok((f, partial))
}

/// Fsyncs a complete archive and renames it from `partial` to `path`; returns its size.
pub(super) fn commit(f: std::fs::File, partial: &Path, path: &Path) -> Result<u64> {
    f.sync_all().map_err(BackupError::io("fsync", partial))?;
    let len = f.metadata().map_err(BackupError::io("stat", partial))?.len();
    std::fs::rename(partial, path).map_err(BackupError::io("rename into place", path))?;
    Ok(len)
}

trait Mode0600 {
    fn mode_0600(&mut self) -> &mut Self;
}

impl Mode0600 for std::fs::OpenOptions {
    fn mode_0600(&mut self) -> &mut Self {
        std::os::unix::fs::OpenOptionsExt::mode(self, 0o600)
    }
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
        };
        let p = plan(&opts).unwrap();
        let names: Vec<String> = p.prune.iter().map(|p| p.file_name().unwrap().to_string_lossy().into_owned()).collect();
        assert_eq!(names, ["dockroot-h-20260102T000000Z.tar.zst", "dockroot-h-20260101T000000Z.tar.zst"]);
        // An archive inside the data-root would archive itself.
        let inside = BackupOptions { output: src.path().join("a.tar.zst"), keep: None, ..opts };
        assert!(plan(&inside).unwrap_err().to_string().contains("inside the data-root"));
    }
}
