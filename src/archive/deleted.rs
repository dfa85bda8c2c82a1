//! The deletion list of a two-phase archive ([`super::layout::DELETED`]):
//! names with their tree's prefix (`data/…`, `binds/0/…`), each ended by a
//! NUL byte, that phase 1 archived and the stopped trees no longer have.
//!
//! The names are untrusted like member names: each is split into safe
//! components ([`super::records::components`]), and removed through
//! directory fds opened with O_NOFOLLOW, so a symlink on the way is never
//! followed. As `rm -rf` does, a name that is already gone (or whose parent
//! is not a directory) is skipped. The parent directory keeps its mtime: it
//! was set from the archive, and the removal would move it.

use std::ffi::CString;
use std::io::Read;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};

use super::error::{ArchiveError, Result};
use super::layout::Tree;
use super::read::{Member, TarReader};
use super::records::components;
use super::show;
use crate::sys::{self, stat};

/// Longest name in the list (PATH_MAX is 4096; deeper paths are legal below
/// the data-root, so allow much more, but bound the buffer).
const MAX_NAME: usize = 1 << 16;

/// Reads the list member `m` and calls `f` with each name's tree and its
/// path below the tree's prefix (never the root: a tree is not deleted).
pub(crate) fn for_each<R: Read>(
    m: &Member,
    tar: &mut TarReader<R>,
    buf: &mut [u8],
    mut f: impl FnMut(Tree, &[u8]) -> Result<()>,
) -> Result<u64> {
    let (mut partial, mut count) = (Vec::new(), 0u64);
    loop {
        let n = tar.read_data(buf)?;
        if n == 0 {
            break;
        }
        for (i, piece) in buf[..n].split(|&b| b == 0).enumerate() {
            if i > 0 {
                let name = std::mem::take(&mut partial);
                let (tree, rel) = Tree::of_member(&name)
                    .filter(|(_, rel)| !rel.is_empty())
                    .ok_or_else(|| m.rejected(format!("deleted name `{}` outside the archive's trees", show(&name))))?;
                f(tree, rel)?;
                count += 1;
            }
            partial.extend_from_slice(piece);
            if partial.len() > MAX_NAME {
                return Err(m.malformed("a deleted name longer than 64 KiB"));
            }
        }
    }
    if !partial.is_empty() {
        return Err(m.malformed("the deletion list does not end with a NUL byte"));
    }
    Ok(count)
}

/// Applies the list member `m`, each name below its tree's staging
/// directory (`staging`; None: the tree is not extracted, its names are
/// skipped); returns the count of names.
pub(crate) fn apply<'a, R: Read>(
    m: &Member,
    tar: &mut TarReader<R>,
    staging: &mut dyn FnMut(Tree) -> Result<Option<BorrowedFd<'a>>>,
    buf: &mut [u8],
) -> Result<u64> {
    for_each(m, tar, buf, |tree, rel| {
        let comps = components(m, rel)?;
        match staging(tree)? {
            Some(fd) => remove(m, fd, &comps),
            None => Ok(()),
        }
    })
}

fn failed(m: &Member, rel: &[Vec<u8>], step: &'static str) -> impl FnOnce(std::io::Error) -> ArchiveError {
    let path = format!("{} (deleted name `{}`)", show(&m.path), show(&rel.join(&b'/')));
    move |source| ArchiveError::Staging { path, step, source }
}

fn gone(e: &std::io::Error) -> bool {
    matches!(e.raw_os_error(), Some(libc::ENOENT) | Some(libc::ENOTDIR) | Some(libc::ELOOP))
}

pub(crate) fn remove(m: &Member, staging: BorrowedFd<'_>, comps: &[Vec<u8>]) -> Result<()> {
    let (last, parents) = comps.split_last().expect("components are never empty");
    let cname = |c: &[u8]| CString::new(c).map_err(|_| m.rejected("NUL byte in a deleted name"));
    let mut fd: Option<OwnedFd> = None;
    for c in parents {
        let base = fd.as_ref().map(|f| f.as_fd()).unwrap_or(staging);
        match sys::open_dir_at(base, &cname(c)?) {
            Ok(f) => fd = Some(f),
            Err(e) if gone(&e) => return Ok(()),
            Err(e) => return Err(failed(m, comps, "open the parent of")(e)),
        }
    }
    let dir = fd.as_ref().map(|f| f.as_fd()).unwrap_or(staging);
    let before = stat::fstat(dir).map_err(failed(m, comps, "stat the parent of"))?;
    match sys::remove_tree_at(dir, &cname(last)?) {
        Ok(()) => {}
        Err(e) if gone(&e) => return Ok(()),
        Err(e) => return Err(failed(m, comps, "remove")(e)),
    }
    sys::futimens(dir, before.mtime, before.mtime).map_err(failed(m, comps, "set times of the parent of"))
}
