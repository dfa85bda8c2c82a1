//! Snapshot backups (`backup --snapshot`): Docker is down only while the
//! stopped state is captured on the data-root's own filesystem, and the
//! archive is then read from that capture with Docker running again:
//!
//! - `btrfs`: the data-root is a btrfs subvolume; a read-only snapshot of it
//!   is one ioctl, whatever its size.
//! - `reflink`: the filesystem clones files (xfs `reflink=1`, btrfs); the
//!   copy engine recreates the tree with every file's data shared (FICLONE),
//!   so only metadata is written.
//!
//! The capture is a hidden sibling of the tree (`<parent>/.dockroot-snap-…`):
//! never inside the tree it captures, always on its filesystem (refused
//! otherwise). It is journaled before it is made, so `rollback` after a kill
//! deletes it (and starts Docker if the kill came before the start).
//!
//! Every tree of the backup (containerd's root, the bind sources, the
//! data-root) is captured the same way in the one stopped window.

use std::os::fd::AsFd;
use std::path::{Path, PathBuf};
use std::time::{Instant, SystemTime};

use serde::{Deserialize, Serialize};

use crate::copy::{CopyOptions, copy_tree};
use crate::docker::mountinfo;
use crate::plan::core::intent::{self, Intent};
use crate::plan::core::journal::{Outcome, StateDir};
use crate::plan::core::window::{self as downtime, Window};
use crate::plan::{PlanError, Result};
use crate::progress::Progress;
use crate::service::ServiceKind;
use crate::sys;
use crate::util::atomic;

/// What `--snapshot` asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Request {
    /// btrfs if the tree is a subvolume without nested ones, else reflink if
    /// the filesystem clones, else no snapshot.
    #[default]
    Auto,
    Btrfs,
    Reflink,
    /// Archive with Docker stopped (no snapshot).
    None,
}

/// How a stopped state is captured.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Method {
    Btrfs,
    Reflink,
}

impl Method {
    pub fn name(self) -> &'static str {
        match self {
            Method::Btrfs => "btrfs",
            Method::Reflink => "reflink",
        }
    }
}

/// What the filesystem offers for one tree (probed with Docker running).
#[derive(Debug, Clone, Default)]
pub(crate) struct Facts {
    /// The tree is the root of a btrfs subvolume.
    pub subvolume: bool,
    /// Why a snapshot of that subvolume would miss data (nested subvolumes).
    pub nested: Option<String>,
    /// A FICLONE succeeded on that filesystem.
    pub reflink: bool,
    /// Why the capture cannot be placed next to the tree (`None`: it can).
    pub placement: Option<String>,
    /// Why there is not enough free space for the capture.
    pub space: Option<String>,
    /// The service manager stops nothing (`--service none`).
    pub no_service: bool,
}

/// The decision: a method, or none with the reason `auto` gave up.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Choice {
    Use(Method),
    Without(String),
}

/// Chooses the method for `req` from `f`; an explicit method that cannot
/// work is refused with the reason (nothing was changed yet).
pub(crate) fn choose(req: Request, f: &Facts) -> std::result::Result<Choice, String> {
    let blocked = f.placement.as_ref().or(f.space.as_ref());
    let btrfs = || match (f.subvolume, &f.nested) {
        (false, _) => Err("the data-root is not the root of a btrfs subvolume".to_string()),
        (true, Some(n)) => Err(format!("{n}; a snapshot of the data-root would not contain them (use --snapshot reflink)")),
        (true, None) => Ok(Method::Btrfs),
    };
    let reflink =
        || if f.reflink { Ok(Method::Reflink) } else { Err("the data-root's filesystem cannot clone files (FICLONE)".to_string()) };
    match req {
        Request::None => Ok(Choice::Without("--snapshot none".into())),
        Request::Btrfs | Request::Reflink => {
            if let Some(b) = blocked {
                return Err(b.clone());
            }
            let m = if req == Request::Btrfs { btrfs() } else { reflink() };
            m.map(Choice::Use)
        }
        Request::Auto => {
            if f.no_service {
                return Ok(Choice::Without("--service none stops nothing, so a snapshot would shorten no downtime".into()));
            }
            if let Some(b) = blocked {
                return Ok(Choice::Without(b.clone()));
            }
            Ok(match (btrfs(), reflink()) {
                (Ok(m), _) | (_, Ok(m)) => Choice::Use(m),
                (Err(b), Err(r)) if f.subvolume => Choice::Without(format!("{b}, and {r}")),
                (_, Err(r)) => Choice::Without(r),
            })
        }
    }
}

/// Where the capture of `tree` goes: a hidden sibling with a timestamp.
pub(crate) fn capture_path(tree: &Path) -> PathBuf {
    let base = tree.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_else(|| "root".into());
    let ts = atomic::utc_timestamp(SystemTime::now());
    tree.with_file_name(format!(".dockroot-snap-{base}-{ts}"))
}

/// Why `snap` cannot hold a capture of `tree` (`None`: it can): it must be
/// outside the tree, absent, and on the same filesystem (same superblock in
/// mountinfo; btrfs subvolumes have their own st_dev but one superblock).
fn placement(tree: &Path, snap: &Path) -> Option<String> {
    if snap.starts_with(tree) {
        return Some(format!("the snapshot {} would be inside the data-root", snap.display()));
    }
    if snap.symlink_metadata().is_ok() {
        return Some(format!("{} already exists; remove it or run `dockroot rollback`", snap.display()));
    }
    let parent = snap.parent()?;
    let mounts = match mountinfo::read_self() {
        Ok(m) => m,
        Err(e) => return Some(format!("cannot read mountinfo: {e}")),
    };
    let sb = |p: &Path| mountinfo::containing(&mounts, p).map(|m| m.major_minor.clone());
    match (sb(tree), sb(parent)) {
        (Some(a), Some(b)) if a == b => None,
        _ => Some(format!(
            "{} is not on the data-root's filesystem (the data-root is a mount point), and a snapshot never goes into the data-root itself",
            parent.display()
        )),
    }
}

/// A nested btrfs subvolume below `tree` (the btrfs storage driver keeps
/// every layer in one): a snapshot of `tree` holds only an empty directory
/// in its place. Walks directories only.
fn nested_subvolume(tree: &Path) -> Option<PathBuf> {
    use std::os::unix::fs::MetadataExt;
    let root_dev = std::fs::symlink_metadata(tree).ok()?.dev();
    walkdir::WalkDir::new(tree)
        .min_depth(1)
        .into_iter()
        .filter_entry(|e| e.file_type().is_dir())
        .filter_map(|e| e.ok())
        .find(|e| e.metadata().is_ok_and(|m| m.dev() != root_dev && m.ino() == 256))
        .map(|e| e.path().to_path_buf())
}

/// Free space for the capture: a snapshot needs a little metadata; a clone
/// an inode and extent records per entry (counted generously as 1 KiB per
/// inode in use on the filesystem, an upper bound on the tree's entries).
fn space(tree: &Path, method: Method) -> Option<String> {
    const MIB: u64 = 1 << 20;
    let s = nix::sys::statvfs::statvfs(tree).ok()?;
    #[allow(clippy::unnecessary_cast)]
    let (bsize, bavail, blocks, bfree) = (s.fragment_size() as u64, s.blocks_available() as u64, s.blocks() as u64, s.blocks_free() as u64);
    #[allow(clippy::unnecessary_cast)]
    let (files, ffree) = (s.files() as u64, s.files_free() as u64);
    let free = bavail * bsize;
    let used_inodes = files.saturating_sub(ffree);
    let need = match method {
        Method::Btrfs => 16 * MIB,
        // btrfs reports no inode counts: 1/64 of the data in use instead.
        Method::Reflink if files == 0 => 64 * MIB + (blocks - bfree) * bsize / 64,
        Method::Reflink => 64 * MIB + used_inodes * 1024,
    };
    if free < need {
        return Some(format!(
            "{} has {} MiB free, a {} snapshot needs about {} MiB",
            tree.display(),
            free / MIB,
            method.name(),
            need / MIB
        ));
    }
    if method == Method::Reflink && files > 0 && ffree < used_inodes {
        return Some(format!("{} has {ffree} free inodes, a clone needs up to {used_inodes}", tree.display()));
    }
    None
}

/// Probes `tree` (with Docker running; changes nothing but an unnamed probe
/// file) for [`choose`]. `driver` is the storage driver the daemon reports.
pub(crate) fn probe(tree: &Path, snap: &Path, driver: Option<&str>, service: &ServiceKind) -> Facts {
    let fd = sys::open_dir_path(tree).ok();
    let subvolume = fd.as_ref().is_some_and(|fd| sys::btrfs::is_subvolume(fd.as_fd()).unwrap_or(false));
    let nested = if !subvolume {
        None
    } else if driver == Some("btrfs") {
        Some("the btrfs storage driver keeps every layer in a nested subvolume".to_string())
    } else {
        nested_subvolume(tree).map(|p| format!("{} is a nested btrfs subvolume", p.display()))
    };
    let reflink = snap.parent().is_some_and(|p| sys::reflink::probe(p).unwrap_or(false));
    let placement = placement(tree, snap);
    let method = if subvolume && nested.is_none() { Method::Btrfs } else { Method::Reflink };
    Facts { subvolume, nested, reflink, placement, space: space(tree, method), no_service: *service == ServiceKind::None }
}

/// A capture to make: `tree` captured at `path` by `method`.
#[derive(Debug, Clone)]
pub struct Capture {
    pub method: Method,
    pub tree: PathBuf,
    pub path: PathBuf,
    pub threads: usize,
}

impl Capture {
    /// What the journal records before the capture is made.
    pub(crate) fn intent(&self) -> Intent {
        match self.method {
            Method::Btrfs => Intent::Subvolume { path: self.path.clone() },
            Method::Reflink => Intent::make_tree(&self.path),
        }
    }

    /// Makes the capture (Docker is stopped).
    pub(crate) fn make(&self, progress: &dyn Progress) -> Result<()> {
        match self.method {
            Method::Btrfs => {
                let err = |e| PlanError::File { step: "snapshot", path: self.path.clone(), source: e };
                let src = sys::open_dir_path(&self.tree).map_err(err)?;
                let parent = self.path.parent().unwrap_or(Path::new("/"));
                let dir = sys::open_dir_path(parent).map_err(err)?;
                let name = sys::path_cstr(Path::new(self.path.file_name().unwrap_or_default())).map_err(err)?;
                sys::btrfs::snapshot_readonly(src.as_fd(), dir.as_fd(), &name).map_err(err)
            }
            Method::Reflink => {
                let opts = CopyOptions { clone: true, threads: self.threads, ..CopyOptions::default() };
                let s = copy_tree(&self.tree, &self.path, &opts, progress)?;
                if !s.ok() {
                    return Err(PlanError::refused(format!(
                        "cloning {} into {} failed for {} entries, first: {}",
                        self.tree.display(),
                        self.path.display(),
                        s.errors.len(),
                        s.errors[0]
                    )));
                }
                Ok(())
            }
        }
    }

    /// Deletes the capture (also a partial one).
    pub(crate) fn remove(&self) -> Result<()> {
        match self.method {
            Method::Btrfs => intent::remove_subvolume(&self.path)?,
            Method::Reflink => drop(intent::undo(&self.intent())?),
        }
        Ok(())
    }
}

/// Runs a snapshot backup of every tree in `caps`: journaled stop, the
/// captures, start (the downtime ends when the API answers), then `archive`
/// reads the captures (in the order of `caps`) with Docker running, and
/// the captures are deleted. Returns the archive's value and the downtime in seconds.
pub(crate) fn run<T>(
    w: Window,
    caps: &[Capture],
    progress: &dyn Progress,
    archive: impl FnOnce(&[PathBuf]) -> Result<T>,
) -> Result<(T, f64)> {
    let state = StateDir::new(w.state_dir);
    let (_lock, mut r, stopping) = downtime::journaled_stop(&w, &state, progress)?;
    r.j.snapshot = caps.first().map(|c| c.method.name().into());
    let made = r.step_with("snapshot", caps.iter().map(Capture::intent).collect(), |_| caps.iter().try_for_each(|c| c.make(progress)));
    let started = downtime::journaled_start(&mut r, &w, progress);
    let downtime = stopping.elapsed().as_secs_f64();
    r.j.downtime_seconds = Some(downtime);
    r.save()?;
    for c in caps {
        progress.log(&format!("{} snapshot {}: Docker down {downtime:.2}s", c.method.name(), c.path.display()));
    }
    // Every capture is removed, also after one fails; the first error is kept.
    let remove_all = || {
        let mut first = Ok(());
        for c in caps {
            let r = c.remove();
            if first.is_ok() {
                first = r;
            }
        }
        first
    };
    let failed = match (made, started) {
        (Ok(()), Ok(())) => None,
        (Err(e), Ok(())) => {
            r.j.outcome = Outcome::RolledBack;
            Some(e.abandoned_after_signal())
        }
        // A failed start keeps the journal unfinished, so `rollback` tries again.
        (Err(e), Err(_)) | (Ok(()), Err(e)) => Some(e),
    };
    if let Some(e) = failed {
        // Docker is left as the start step left it.
        remove_all()?;
        r.save()?;
        return Err(e);
    }
    let creates = w.creates.iter().map(|p| Intent::make_tree(p)).collect();
    let reading = Instant::now();
    let paths: Vec<PathBuf> = caps.iter().map(|c| c.path.clone()).collect();
    let result = r.step_with("archive", creates, |_| archive(&paths));
    progress.log(&format!("archive from the snapshot: {:.2}s with Docker running", reading.elapsed().as_secs_f64()));
    let removed = r.step("release", |_| remove_all());
    r.j.outcome = if result.is_ok() && removed.is_ok() { Outcome::Done } else { Outcome::RolledBack };
    r.save()?;
    // Docker runs: a signal's backup ends as undone (exit 3).
    let v = result.map_err(PlanError::abandoned_after_signal)?;
    removed?;
    Ok((v, downtime))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn facts() -> Facts {
        Facts::default()
    }

    #[test]
    fn auto_prefers_btrfs_then_reflink_then_none() {
        let sub = Facts { subvolume: true, reflink: true, ..facts() };
        assert_eq!(choose(Request::Auto, &sub), Ok(Choice::Use(Method::Btrfs)));
        let nested = Facts { nested: Some("x is a nested btrfs subvolume".into()), ..sub.clone() };
        assert_eq!(choose(Request::Auto, &nested), Ok(Choice::Use(Method::Reflink)), "the btrfs driver's layers: reflink instead");
        let xfs = Facts { reflink: true, ..facts() };
        assert_eq!(choose(Request::Auto, &xfs), Ok(Choice::Use(Method::Reflink)));
        let ext4 = facts();
        assert!(matches!(choose(Request::Auto, &ext4), Ok(Choice::Without(r)) if r.contains("cannot clone")));
        let none_svc = Facts { no_service: true, ..xfs.clone() };
        assert!(matches!(choose(Request::Auto, &none_svc), Ok(Choice::Without(_))));
        let mount_point = Facts { placement: Some("not on the data-root's filesystem".into()), ..sub };
        assert!(matches!(choose(Request::Auto, &mount_point), Ok(Choice::Without(r)) if r.contains("filesystem")));
    }

    #[test]
    fn explicit_methods_are_refused_with_the_reason() {
        let nested = Facts { subvolume: true, reflink: true, nested: Some("the btrfs storage driver keeps every layer".into()), ..facts() };
        let e = choose(Request::Btrfs, &nested).unwrap_err();
        assert!(e.contains("storage driver") && e.contains("--snapshot reflink"), "{e}");
        assert_eq!(choose(Request::Reflink, &nested), Ok(Choice::Use(Method::Reflink)));
        assert!(choose(Request::Btrfs, &Facts { reflink: true, ..facts() }).unwrap_err().contains("not the root of a btrfs subvolume"));
        assert!(choose(Request::Reflink, &facts()).unwrap_err().contains("FICLONE"));
        let full = Facts { reflink: true, space: Some("1 MiB free".into()), ..facts() };
        assert!(choose(Request::Reflink, &full).unwrap_err().contains("free"));
        assert!(matches!(choose(Request::None, &full), Ok(Choice::Without(_))));
    }

    #[test]
    fn the_capture_is_a_hidden_sibling_never_inside_the_tree() {
        let d = tempfile::tempdir().unwrap();
        let tree = d.path().join("docker");
        std::fs::create_dir(&tree).unwrap();
        let snap = capture_path(&tree);
        assert_eq!(snap.parent(), Some(d.path()));
        assert!(snap.file_name().unwrap().to_string_lossy().starts_with(".dockroot-snap-docker-"));
        assert_eq!(placement(&tree, &snap), None);
        assert!(placement(&tree, &tree.join("x")).unwrap().contains("inside"));
        std::fs::create_dir(&snap).unwrap();
        assert!(placement(&tree, &snap).unwrap().contains("already exists"));
    }

    #[test]
    fn a_reflink_capture_is_removed_by_its_undo() {
        let d = tempfile::tempdir().unwrap();
        let cap = Capture { method: Method::Reflink, tree: d.path().join("t"), path: d.path().join(".snap"), threads: 1 };
        std::fs::create_dir_all(cap.path.join("a/b")).unwrap();
        std::fs::write(cap.path.join("a/b/f"), b"x").unwrap();
        cap.remove().unwrap();
        assert!(!cap.path.exists());
        cap.remove().unwrap();
    }
}
