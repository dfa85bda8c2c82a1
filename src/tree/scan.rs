//! Reads entries into manifest records without changing anything: the visitor
//! behind `dockroot manifest` and `dockroot verify`.

use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use super::links::LinkRole;
use super::node::Item;
use super::pool::Pool;
use super::split::hash_content;
use super::walk::{Entered, Outcome, Visitor};
use crate::error::{Error, Result};
use crate::manifest::{Body, Record};
use crate::sys::{self, Kind, Meta};

/// Where an entry's xattrs are read from: never its name, which a writer can
/// point at another inode between the walker's stat and the read.
#[derive(Clone, Copy)]
pub(crate) enum Opened<'a> {
    /// A regular file or directory open for I/O.
    Io(BorrowedFd<'a>),
    /// An `O_PATH` handle checked by `sys::seen::open_seen` (any type).
    Path(BorrowedFd<'a>),
    /// Its name in its directory, in a private tree (`WalkOptions::private`).
    Name(&'a Item),
}

/// Builds the record of an entry from its stat, its xattrs (read through
/// `open`) and `body`.
pub(crate) fn record_with(item: &Item, meta: &Meta, body: Body, root: &Path, open: Opened<'_>) -> Result<Record> {
    let xattrs = match open {
        Opened::Io(fd) => sys::xattr::read_fd(fd),
        Opened::Path(fd) => sys::xattr::read_path_fd(fd),
        Opened::Name(item) => sys::xattr::read_at(item.parent.src.as_fd(), &item.name),
    };
    let xattrs = xattrs.map_err(|e| match e.raw_os_error() {
        Some(libc::ENOENT) => Error::source("read xattrs of", root, &item.rel, e),
        _ => Error::Xattr { step: "read", name: "*".into(), path: crate::error::show(root, &item.rel), source: e },
    })?;
    Ok(Record { path: item.rel.clone(), body, perm: meta.perm, uid: meta.uid, gid: meta.gid, mtime: meta.mtime, xattrs })
}

/// A source entry opened without I/O (`O_PATH`): the walker's handle, or
/// one opened now and checked to be the entry the walker saw.
pub enum Handle<'a> {
    Walker(BorrowedFd<'a>),
    Checked(OwnedFd),
}

impl AsFd for Handle<'_> {
    fn as_fd(&self) -> BorrowedFd<'_> {
        match self {
            Handle::Walker(fd) => *fd,
            Handle::Checked(fd) => fd.as_fd(),
        }
    }
}

/// Opens a source entry the walker saw, without I/O (`O_PATH`): a swap
/// since the walker's stat is a race (`Changed`), not another entry's data.
pub fn open_seen<'a>(item: &'a Item, root: &Path) -> Result<Handle<'a>> {
    if let Some(h) = &item.handle {
        return Ok(Handle::Walker(h.as_fd()));
    }
    sys::seen::open_seen(item.parent.src.as_fd(), &item.name, &item.meta)
        .map(|(fd, _)| Handle::Checked(fd))
        .map_err(|e| Error::source("open", root, &item.rel, e))
}

/// The record of a non-file, non-directory entry: its body (a symlink's
/// target) and xattrs are read through one checked `O_PATH` handle, or in a
/// private tree by name.
pub(crate) fn special_record(item: &Item, root: &Path) -> Result<Record> {
    let fd = if item.private { None } else { Some(open_seen(item, root)?) };
    let link = || match &fd {
        // "": the symlink the handle names (readlinkat(2), since Linux 2.6.39).
        Some(fd) => sys::readlink_at(fd.as_fd(), c""),
        None => sys::readlink_at(item.parent.src.as_fd(), &item.name),
    };
    let body = match item.meta.kind {
        Kind::Symlink => Body::Symlink { target: link().map_err(|e| Error::source("read link", root, &item.rel, e))? },
        Kind::Char => Body::Char { rdev: item.meta.rdev },
        Kind::Block => Body::Block { rdev: item.meta.rdev },
        Kind::Fifo => Body::Fifo,
        Kind::Socket => Body::Socket,
        Kind::Dir | Kind::File => unreachable!("directories are entered and files are read"),
    };
    let open = fd.as_ref().map_or(Opened::Name(item), |fd| Opened::Path(fd.as_fd()));
    record_with(item, &item.meta, body, root, open)
}

/// Opens a regular file the walker saw for reading (see `sys::seen`).
pub(crate) fn open_file(item: &Item, root: &Path) -> Result<(std::fs::File, Meta)> {
    let dir = item.parent.src.as_fd();
    let r = match &item.handle {
        Some(h) => sys::seen::reopen_file(h.as_fd(), &item.meta).map(|f| (f, item.meta)),
        None if item.private => sys::seen::open_private_file(dir, &item.name, &item.meta),
        None => sys::seen::open_file_seen(dir, &item.name, &item.meta),
    };
    r.map_err(|e| Error::source("open", root, &item.rel, e))
}

/// Compares the stat before and after a read: a change means the content read
/// may be a mix of old and new.
pub(crate) fn changed_during_read(before: &Meta, after: &Meta) -> bool {
    before.ctime != after.ctime || before.size != after.size || before.mtime != after.mtime || before.ino != after.ino
}

/// A content read that failed while the file was being rewritten (it shrank
/// while it was read, say) is that change, not a read fault: `Changed` when
/// the open file's stat now differs from `before`, else `fault`.
pub(crate) fn changed_or(f: std::os::fd::BorrowedFd<'_>, before: &Meta, root: &Path, rel: &[u8], fault: Error) -> Error {
    match sys::stat::fstat(f) {
        Ok(after) if changed_during_read(before, &after) => Error::Changed { path: crate::error::show(root, rel), what: "changed" },
        _ => fault,
    }
}

/// The content hash a baseline record proves for `m`: the same inode,
/// ctime, size and mtime. ctime cannot be set from user space, so any write
/// since the baseline was taken moves it (the delta rule, see `copy::delta`).
pub(crate) fn unchanged_since(b: &Record, m: &Meta) -> Option<[u8; 32]> {
    match b.body {
        Body::File { size, blake3, ino, ctime } if ino == m.ino && ctime == m.ctime && size == m.size && b.mtime == m.mtime => Some(blake3),
        _ => None,
    }
}

/// Reads entries into records. When the walk merges a baseline manifest of
/// this same tree, a file the baseline proves unchanged keeps the baseline's
/// hash and is not read: only its metadata is compared (move's verify during
/// the downtime, after the content was verified with Docker running).
pub(crate) struct Scan {
    pub root: PathBuf,
    pub live: bool,
}

impl Scan {
    /// Turns a failure into a race when the tree is live and the entry vanished.
    fn race(&self, r: Result<Outcome>) -> Result<Outcome> {
        match r {
            Err(e) if self.live && e.is_race() => Ok(Outcome { raced: true, ..Outcome::default() }),
            r => r,
        }
    }

    fn hash_file(&self, item: &Item, pool: &Pool) -> Result<Outcome> {
        let root = &self.root;
        if let Some(hash) = item.baseline.as_ref().and_then(|b| unchanged_since(b, &item.meta)) {
            let fd = open_seen(item, root)?;
            let body = Body::File { size: item.meta.size, blake3: hash, ino: item.meta.ino, ctime: item.meta.ctime };
            let record = record_with(item, &item.meta, body, root, Opened::Path(fd.as_fd()))?;
            return Ok(Outcome { record: Some(record), ..Outcome::default() });
        }
        let f = Arc::new(open_file(item, root)?.0);
        // The walker's stat was taken before this read, as in copy: a write
        // during the read moves ctime past it.
        let before = item.meta;
        let hash = hash_content(pool, f.clone(), before.size, before.blocks)
            .map_err(|e| changed_or(f.as_fd(), &before, root, &item.rel, Error::io("read", root, &item.rel, e)))?;
        // Nothing else writes a private tree: no second stat to catch a writer.
        let raced = !item.private && {
            let after = sys::stat::fstat(f.as_fd()).map_err(|e| Error::io("stat", root, &item.rel, e))?;
            changed_during_read(&before, &after)
        };
        if raced && !self.live {
            return Err(Error::Changed { path: crate::error::show(root, &item.rel), what: "changed" });
        }
        let body = Body::File { size: before.size, blake3: hash, ino: before.ino, ctime: before.ctime };
        let record = record_with(item, &before, body, root, Opened::Io(f.as_fd()))?;
        Ok(Outcome { record: Some(record), bytes: before.size, raced, ..Outcome::default() })
    }
}

impl Visitor for Scan {
    fn enter_dir(&self, item: &Item, src: BorrowedFd<'_>) -> Result<Entered> {
        let rec = record_with(item, &item.meta, Body::Dir, &self.root, Opened::Io(src))?;
        Ok(Entered { outcome: Outcome { record: Some(rec), ..Outcome::default() }, ..Entered::default() })
    }

    fn entry(&self, item: &Item, pool: &Pool) -> Result<Outcome> {
        let r = match (&item.meta.kind, &item.link) {
            (Kind::File, Some(LinkRole::Member { head_rel, .. })) => {
                Ok(Outcome { record: Some(Record::hardlink(item.rel.clone(), head_rel.clone())), ..Outcome::default() })
            }
            (Kind::File, _) => self.hash_file(item, pool),
            _ => special_record(item, &self.root).map(|record| Outcome { record: Some(record), ..Outcome::default() }),
        };
        self.race(r)
    }
}
