//! Quick metadata-only measures of a tree: entries, logical bytes (for a
//! progress bar's total and ETA) and allocated bytes (for free-space checks,
//! hardlinked inodes counted once). Stays on one filesystem.
//!
//! fd-relative like the real walks, and for the same reason: a path-based
//! walker lists a directory by name, and a container that swaps the name for
//! a symlink to `/` after the walker's lstat (issue 13) would have it measure
//! the host, which could make a move refuse for want of space. Entries that
//! vanish or are swapped during the measure are left out, never followed.

use std::collections::HashSet;
use std::ffi::CString;
use std::os::fd::{AsFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

use crate::sys::{self, Kind, Meta};

#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Size {
    pub entries: u64,
    /// Logical size of the regular files.
    pub bytes: u64,
    /// Allocated blocks of everything, each hardlinked inode once.
    pub allocated: u64,
}

/// An entry that could not be measured.
#[derive(Debug, thiserror::Error)]
#[error("{}: {source}", path.display())]
pub(crate) struct MeasureError {
    path: PathBuf,
    #[source]
    source: std::io::Error,
}

impl MeasureError {
    pub(crate) fn path(&self) -> Option<&Path> {
        Some(&self.path)
    }
}

impl From<MeasureError> for std::io::Error {
    fn from(e: MeasureError) -> std::io::Error {
        e.source
    }
}

struct Tally {
    size: Size,
    linked: HashSet<(u64, u64)>,
}

impl Tally {
    fn add(&mut self, m: &Meta) {
        self.size.entries += 1;
        if m.kind == Kind::File {
            self.size.bytes += m.size;
        }
        if m.nlink <= 1 || m.kind == Kind::Dir || self.linked.insert((m.dev, m.ino)) {
            self.size.allocated += m.blocks * 512;
        }
    }
}

/// Measures `root`. With `strict`, the first unreadable entry is an error;
/// otherwise unreadable entries are skipped (a progress estimate). Entries
/// that vanish or are replaced while measured are skipped either way.
pub(crate) fn measure(root: &Path, strict: bool) -> Result<Size, MeasureError> {
    let err = |rel: &Path, source| MeasureError { path: root.join(rel), source };
    let root_fd = sys::open_dir_path(root).map_err(|e| err(Path::new(""), e))?;
    let root_meta = sys::stat::fstat(root_fd.as_fd()).map_err(|e| err(Path::new(""), e))?;
    let mut t = Tally { size: Size::default(), linked: HashSet::new() };
    t.add(&root_meta);
    let mut stack: Vec<(OwnedFd, PathBuf, std::vec::IntoIter<CString>)> = Vec::new();
    let names = sys::list_dir(root_fd.as_fd()).map_err(|e| err(Path::new(""), e))?;
    stack.push((root_fd, PathBuf::new(), names.into_iter()));
    while let Some((dir, rel, names)) = stack.last_mut() {
        let Some(name) = names.next() else {
            stack.pop();
            continue;
        };
        let child = rel.join(std::ffi::OsStr::from_bytes(name.as_bytes()));
        let skip = |e: std::io::Error| if strict && !sys::seen::is_race(&e) { Err(err(&child, e)) } else { Ok(()) };
        let m = match sys::stat::lstat_at(dir.as_fd(), &name) {
            Ok(m) => m,
            Err(e) => {
                skip(e)?;
                continue;
            }
        };
        t.add(&m);
        if m.kind != Kind::Dir || super::walk::crossing(m.dev != root_meta.dev, sys::stat::is_mount_root(dir.as_fd(), &name)) {
            continue;
        }
        let sub = sys::seen::open_dir_seen(dir.as_fd(), &name, &m).and_then(|fd| sys::list_dir(fd.as_fd()).map(|n| (fd, n)));
        match sub {
            Ok((fd, names)) => stack.push((fd, child, names.into_iter())),
            Err(e) => skip(e)?,
        }
    }
    Ok(t.size)
}

/// (entries, logical bytes), best effort, for progress totals.
pub fn estimate(root: &Path) -> (u64, u64) {
    let s = measure(root, false).unwrap_or_default();
    (s.entries, s.bytes)
}

/// (entries, logical bytes, bytes allocated on disk), best effort: what a
/// backup records, the allocated size being what a restore must find room
/// for (a sparse file's holes take none).
pub fn estimate_with_allocated(root: &Path) -> (u64, u64, u64) {
    let s = measure(root, false).unwrap_or_default();
    (s.entries, s.bytes, s.allocated)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_entries_bytes_and_links_once_without_following_symlinks() {
        let t = tempfile::tempdir().unwrap();
        let r = t.path();
        std::fs::create_dir(r.join("d")).unwrap();
        std::fs::write(r.join("d/a"), vec![1u8; 10000]).unwrap();
        std::fs::hard_link(r.join("d/a"), r.join("b")).unwrap();
        std::os::unix::fs::symlink("/", r.join("root")).unwrap();
        let s = measure(r, true).unwrap();
        // ., d, d/a, b, root: `/` is not walked.
        assert_eq!(s.entries, 5);
        assert_eq!(s.bytes, 20000);
        let one = std::fs::symlink_metadata(r.join("b")).unwrap();
        assert!(s.allocated >= std::os::unix::fs::MetadataExt::blocks(&one) * 512);
        assert!(measure(&r.join("missing"), true).is_err());
    }
}
