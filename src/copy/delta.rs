//! Delta decisions: which destination entries of an earlier copy can stay.
//!
//! A file is kept only when nothing can have changed it: the baseline manifest
//! (written by the earlier copy) shows the same inode, ctime, size and mtime.
//! ctime cannot be set from user space, so a rewrite that restores size and
//! mtime still moves it. Without a baseline, or with --checksum, the content
//! of both sides is compared in full.

use std::ffi::CString;
use std::os::fd::{AsFd, BorrowedFd};
use std::sync::Arc;

use crate::manifest::Body;
use crate::sys::xattr::Xattrs;
use crate::sys::{self, Kind, Meta};
use crate::tree::Item;
use crate::tree::pool::Pool;
use crate::tree::scan::unchanged_since;
use crate::tree::split::hash_content;

pub(crate) enum Decision {
    /// The destination file already holds this content.
    Keep([u8; 32]),
    Rewrite,
}

/// Decides for a regular file whose destination is also a regular file.
/// `item` is the source entry, `dst` the stat of its namesake in `dst_dir`.
pub(crate) fn decide(pool: &Pool, item: &Item, checksum: bool, dst_dir: BorrowedFd<'_>, dst: &Meta) -> std::io::Result<Decision> {
    let (baseline, src, name) = (item.baseline.as_ref(), &item.meta, &item.name);
    if dst.size != src.size {
        return Ok(Decision::Rewrite);
    }
    if !checksum {
        if let Some(h) = baseline.and_then(|b| unchanged_since(b, src)) {
            return Ok(Decision::Keep(h));
        }
        if baseline.is_some() || dst.mtime != src.mtime {
            return Ok(Decision::Rewrite);
        }
    }
    // No baseline, or --checksum: compare the content itself.
    // Both sides through the checked open: the source may have been swapped
    // since the walker's stat, and the destination since `dst` was taken.
    let s = Arc::new(sys::seen::open_file_seen(item.parent.src.as_fd(), name, src)?.0);
    let d = Arc::new(sys::seen::open_file_seen(dst_dir, name, dst)?.0);
    let hs = hash_content(pool, s, src.size, src.blocks)?;
    let hd = hash_content(pool, d, dst.size, dst.blocks)?;
    Ok(if hs == hd { Decision::Keep(hs) } else { Decision::Rewrite })
}

/// Whether the kept destination file `name` (stat `dst`) already has the
/// source's owner, mode, times and xattrs. Then nothing is written to it, so
/// its ctime stays: move's verify with Docker stopped trusts a target file
/// whose inode and ctime did not move since it was read back.
pub(crate) fn same_attrs(dir: BorrowedFd<'_>, name: &CString, dst: &Meta, src: &Meta, xattrs: &Xattrs) -> bool {
    same_stat(dst, src) && sys::seen::open_seen(dir, name, dst).is_ok_and(|(fd, _)| same_xattrs(fd.as_fd(), xattrs))
}

/// [`same_attrs`] for a directory open as `fd`.
pub(crate) fn same_dir_attrs(fd: BorrowedFd<'_>, src: &Meta, xattrs: &Xattrs) -> bool {
    sys::stat::fstat(fd).is_ok_and(|dst| same_stat(&dst, src)) && same_xattrs(fd, xattrs)
}

/// Whether the destination's non-file, non-directory entry `name` already is
/// `body` with the source's attributes: then it is left as it is.
pub(crate) fn same_special(dir: BorrowedFd<'_>, name: &CString, src: &Meta, body: &Body, xattrs: &Xattrs) -> bool {
    let Ok(Some(dst)) = dst_meta(dir, name) else { return false };
    if dst.kind != src.kind || !same_stat(&dst, src) {
        return false;
    }
    let Ok((fd, _)) = sys::seen::open_seen(dir, name, &dst) else { return false };
    let same_body = match body {
        // "": the symlink the handle names (readlinkat(2)).
        Body::Symlink { target } => sys::readlink_at(fd.as_fd(), c"").is_ok_and(|t| &t == target),
        Body::Char { rdev } | Body::Block { rdev } => dst.rdev == *rdev,
        Body::Fifo | Body::Socket => true,
        _ => false,
    };
    same_body && same_xattrs(fd.as_fd(), xattrs)
}

/// Owner, mode and mtime; atime too for regular files only, which are read
/// with O_NOATIME: reading a directory or a symlink (ours included) moves
/// its atime, which no manifest records.
fn same_stat(dst: &Meta, src: &Meta) -> bool {
    let atime = src.kind != Kind::File || dst.atime == src.atime;
    atime && (dst.uid, dst.gid, dst.perm, dst.mtime) == (src.uid, src.gid, src.perm, src.mtime)
}

fn same_xattrs(fd: BorrowedFd<'_>, xattrs: &Xattrs) -> bool {
    sys::xattr::read_path_fd(fd).is_ok_and(|x| &x == xattrs)
}

/// Removes whatever `name` is in `dir` (delta mode clears the way for a new entry).
pub(crate) fn clear(dir: BorrowedFd<'_>, name: &CString, existing: &Meta) -> std::io::Result<()> {
    if existing.kind == Kind::Dir { sys::remove_tree_at(dir, name) } else { sys::unlink_at(dir, name) }
}

/// The destination entry's stat, or `None` when it does not exist.
pub(crate) fn dst_meta(dir: BorrowedFd<'_>, name: &CString) -> std::io::Result<Option<Meta>> {
    match sys::stat::lstat_at(dir, name) {
        Ok(m) => Ok(Some(m)),
        Err(e) if e.raw_os_error() == Some(libc::ENOENT) => Ok(None),
        Err(e) => Err(e),
    }
}

/// Removes the destination names that the source directory no longer has.
pub(crate) fn prune(dst: BorrowedFd<'_>, src_names: &[CString]) -> Result<(), (CString, std::io::Error)> {
    let have = sys::list_dir(dst.as_fd()).map_err(|e| (CString::default(), e))?;
    let mut want = src_names.iter().peekable();
    for n in have {
        while want.peek().is_some_and(|w| w.as_bytes() < n.as_bytes()) {
            want.next();
        }
        if want.peek().is_some_and(|w| w.as_bytes() == n.as_bytes()) {
            continue;
        }
        sys::remove_tree_at(dst, &n).map_err(|e| (n.clone(), e))?;
    }
    Ok(())
}
