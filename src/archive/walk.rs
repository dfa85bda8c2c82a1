//! The archive's view of the engine walk: a visitor that stats, reads xattrs
//! and opens files on the walk's workers, and hands each entry (its record,
//! stat and open file) to the writer in walk order. The walk is the same as
//! `copy`'s: sorted names, fd-relative (deeper than PATH_MAX), hardlink
//! groups by (dev, ino), and mount points below the root recorded as empty
//! directories, not descended into.

use std::ffi::CString;
use std::os::fd::{AsFd, BorrowedFd};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use crate::error::Result;
use crate::manifest::{Body, Record};
use crate::sys::{self, Kind};
use crate::tree::content::{AHEAD_BUDGET, Ahead, read_ahead};
use crate::tree::links::LinkRole;
use crate::tree::pool::Pool;
use crate::tree::queue::Window;
use crate::tree::scan::{Opened, open_file, record_with, special_record};
use crate::tree::{Entered, Item, Outcome, Visitor, WalkOptions, WalkStats};

use super::ArchiveEntry;
use super::layout::Tree;

pub struct Source {
    pub root: PathBuf,
    /// Docker runs (phase 1 of a live backup): an entry that vanishes or is
    /// swapped while it is read is a race, counted and left to phase 2.
    pub live: bool,
    /// Bytes of small files the workers may hold read ahead of the writer
    /// (see `tree::content::read_ahead`); `None`: the writer reads every file.
    ahead: Option<Arc<Window>>,
}

impl Source {
    pub(crate) fn new(root: &Path, live: bool) -> Source {
        Source { root: root.to_path_buf(), live, ahead: Some(Arc::new(Window::new(AHEAD_BUDGET))) }
    }

    /// Without read-ahead: the writer reads every file itself, on its one thread.
    #[cfg(test)]
    pub(crate) fn serial(root: &Path, live: bool) -> Source {
        Source { ahead: None, ..Source::new(root, live) }
    }
}

impl Visitor for Source {
    fn enter_dir(&self, item: &Item, src: BorrowedFd<'_>) -> Result<Entered> {
        let record = record_with(item, &item.meta, Body::Dir, &self.root, Opened::Io(src))?;
        let subvolume = self.subvolume(item, src)?;
        Ok(Entered {
            outcome: Outcome { record: Some(record), source: Some((item.meta, None)), subvolume, ..Outcome::default() },
            ..Entered::default()
        })
    }

    fn entry(&self, item: &Item, _pool: &Pool) -> Result<Outcome> {
        match self.read(item) {
            Err(e) if self.live && e.is_race() => Ok(Outcome { raced: true, ..Outcome::default() }),
            r => r,
        }
    }
}

impl Source {
    /// The btrfs subvolume whose root is the directory `item` (never the
    /// tree's root: a restore puts the tree where the user says).
    pub(crate) fn subvolume(&self, item: &Item, dir: BorrowedFd<'_>) -> Result<Option<sys::btrfs::Subvolume>> {
        if item.rel.is_empty() {
            return Ok(None);
        }
        sys::btrfs::subvolume(dir, item.meta.ino).map_err(|e| crate::error::Error::source("inspect subvolume", &self.root, &item.rel, e))
    }

    fn read(&self, item: &Item) -> Result<Outcome> {
        let root = &self.root;
        let (record, source) = match (&item.meta.kind, &item.link) {
            (Kind::File, Some(LinkRole::Member { head_rel, .. })) => {
                (Record::hardlink(item.rel.clone(), head_rel.clone()), (item.meta, None))
            }
            (Kind::File, _) => {
                // The walker's inode, checked (see `sys::seen`); `now` is its
                // stat at open time, to which the content read later belongs.
                let (f, now) = open_file(item, root)?;
                let body = Body::File { size: now.size, blake3: [0; 32], ino: now.ino, ctime: now.ctime };
                (record_with(item, &now, body, root, Opened::Io(f.as_fd()))?, (now, Some(f)))
            }
            _ => (special_record(item, root)?, (item.meta, None)),
        };
        let bytes = if source.1.is_some() { source.0.size } else { 0 };
        let ahead = match (&source.1, &self.ahead) {
            (Some(f), Some(budget)) => read_ahead(f, source.0.size, source.0.blocks, budget),
            _ => None,
        };
        Ok(Outcome { record: Some(record), bytes, source: Some(source), ahead, ..Outcome::default() })
    }
}

/// Walks `root` and calls `visit` for the root (empty `rel_path`) and every
/// entry below it, in walk order (parents first, names sorted bytewise). The
/// first error (of the walk or of `visit`) ends it. Returns the mount points
/// found below the root, archived as empty directories. `visit` gets the
/// entry's manifest record (a file's size and hash are filled in once the
/// writer has read it) and the writer's input.
pub fn walk(root: &Path, visit: &mut dyn FnMut(Record, ArchiveEntry) -> super::error::Result<()>) -> super::error::Result<Vec<String>> {
    Ok(walk_live(&TreeSource::dir(Tree::Data, root), false, visit)?.mount_points)
}

/// A tree to archive: where it is read, and which tree of the archive it becomes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TreeSource {
    pub tree: Tree,
    /// The directory walked (for a regular-file bind source, its parent).
    pub root: PathBuf,
    /// A regular-file bind source: its name below `root`, the one entry walked.
    pub only: Option<CString>,
}

impl TreeSource {
    pub fn dir(tree: Tree, root: &Path) -> TreeSource {
        TreeSource { tree, root: root.to_path_buf(), only: None }
    }

    /// A regular file, archived as its parent directory holding it alone.
    pub fn file(tree: Tree, path: &Path) -> TreeSource {
        let root = path.parent().unwrap_or(Path::new("/")).to_path_buf();
        let only = path.file_name().and_then(|n| CString::new(n.as_encoded_bytes()).ok());
        TreeSource { tree, root, only }
    }

    /// The same tree read from another place (a snapshot of it).
    pub fn at(&self, root: &Path) -> TreeSource {
        TreeSource { root: root.to_path_buf(), ..self.clone() }
    }

    pub(crate) fn walk_options(&self, live: bool, baseline: Option<&Path>) -> WalkOptions {
        WalkOptions {
            root: self.root.clone(),
            threads: crate::tree::default_threads(),
            live,
            baseline: baseline.map(Path::to_path_buf),
            only: self.only.clone(),
            private: false,
        }
    }
}

/// [`walk`], optionally `live` (Docker runs): entries that vanish or change
/// while they are read are counted in the stats' `raced`, not errors.
pub(crate) fn walk_live(
    src: &TreeSource,
    live: bool,
    visit: &mut dyn FnMut(Record, ArchiveEntry) -> super::error::Result<()>,
) -> super::error::Result<WalkStats> {
    let opts = src.walk_options(live, None);
    let source = Source::new(&src.root, live);
    walk_outcomes(&opts, &source, &mut |o| match (o.record, o.source) {
        (Some(rec), Some(source)) => {
            let e = entry(&rec, source, o.subvolume, o.ahead);
            visit(rec, e)
        }
        _ => Ok(()),
    })
}

/// Runs `visitor` over the tree and hands every outcome to `visit` in walk
/// order; the first error ends the walk.
pub(crate) fn walk_outcomes<V: Visitor>(
    opts: &WalkOptions,
    visitor: &V,
    visit: &mut dyn FnMut(Outcome) -> super::error::Result<()>,
) -> super::error::Result<WalkStats> {
    let mut fatal = None;
    let stats = crate::tree::walk(opts, visitor, None, &crate::progress::Silent, |r| {
        if fatal.is_some() {
            return;
        }
        if let Err(e) = r.map_err(super::ArchiveError::from).and_then(&mut *visit) {
            fatal = Some(e);
        }
    })?;
    match fatal {
        Some(e) => Err(e),
        None => Ok(stats),
    }
}

/// The writer's input for one walked entry.
pub(crate) fn entry(
    record: &Record,
    (meta, data): (sys::Meta, Option<std::fs::File>),
    subvolume: Option<sys::btrfs::Subvolume>,
    ahead: Option<Ahead>,
) -> ArchiveEntry {
    let (link_target, hardlink_to) = match &record.body {
        Body::Symlink { target } => (Some(target.clone()), None),
        Body::Hardlink { target } => (None, Some(target.clone())),
        _ => (None, None),
    };
    ArchiveEntry { rel_path: record.path.clone(), meta, xattrs: record.xattrs.clone(), link_target, hardlink_to, data, subvolume, ahead }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::archive::{ArchiveWriter, WriterOptions};

    /// The tar stream of `root` (no compression, a fixed run time).
    fn stream(source: &Source) -> Vec<u8> {
        let opts = WriterOptions { level: None, threads: 0 };
        let mut w = ArchiveWriter::new_at(Vec::new(), &opts, b"{}", 1_700_000_000).unwrap();
        let opts = WalkOptions {
            root: source.root.clone(),
            threads: crate::tree::default_threads(),
            live: source.live,
            baseline: None,
            only: None,
            private: false,
        };
        walk_outcomes(&opts, source, &mut |o| match (o.record, o.source) {
            (Some(rec), Some(src)) => w.add_entry(entry(&rec, src, o.subvolume, o.ahead)).map(drop),
            _ => Ok(()),
        })
        .unwrap();
        w.finish(tempfile::tempfile().unwrap(), 0).unwrap()
    }

    /// restic finds last night's unchanged parts only in a stable stream:
    /// reading ahead on the workers writes the very bytes the writer wrote
    /// alone, on the fidelity tree (every entry type, holes, xattrs,
    /// hardlinks, non-UTF-8 and deep names).
    #[test]
    fn read_ahead_writes_the_same_stream_as_the_serial_writer() {
        if !nix::unistd::geteuid().is_root() {
            eprintln!("skipped: the fidelity tree needs root");
            return;
        }
        let t = tempfile::Builder::new().prefix("dockroot-ahead-").tempdir_in("/var/tmp").unwrap();
        let root = t.path().join("fid");
        let tool = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/tools/mkfidelity.py");
        let made = std::process::Command::new("python3").arg(tool).arg(&root).output().unwrap();
        assert!(made.status.success(), "{}", String::from_utf8_lossy(&made.stderr));
        // Small files too, more than the budget holds at once.
        for i in 0..300u32 {
            std::fs::write(root.join(format!("files/s{i:03}")), vec![i as u8; 100_000 + i as usize]).unwrap();
        }
        let serial = stream(&Source::serial(&root, false));
        let ahead = stream(&Source::new(&root, false));
        assert!(serial.len() > 30_000_000, "{}", serial.len());
        assert!(serial == ahead, "the streams differ ({} and {} bytes)", serial.len(), ahead.len());
    }
}
