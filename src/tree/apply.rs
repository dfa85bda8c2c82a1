//! Applies an entry's metadata in the order that keeps every bit: owner first
//! (chown clears setuid/setgid and security.capability), then mode, then
//! xattrs, then times last (every other change moves them).

use std::ffi::CStr;
use std::os::fd::BorrowedFd;
use std::path::Path;

use crate::error::{Error, Result};
use crate::sys::{self, Kind, Meta, xattr::Xattrs};
use crate::util::display::display;

/// The metadata to apply.
pub(crate) struct Attrs<'a> {
    pub meta: &'a Meta,
    pub xattrs: &'a Xattrs,
}

/// The mode to create a regular file with when it then needs neither chown
/// nor chmod: the owner is already ours (the parent is a private 0700
/// directory while its children are written, so no setgid inheritance), the
/// umask strips nothing and there are no setuid/setgid/sticky bits (chown
/// would clear them). Two syscalls fewer per file on a typical data-root.
pub(crate) fn preset_mode(m: &Meta) -> Option<u32> {
    if m.kind != Kind::File {
        return None;
    }
    preset_perm(m.uid, m.gid, m.perm)
}

/// [`preset_mode`] of a regular file owned by `uid:gid` with mode `perm`.
pub(crate) fn preset_perm(uid: u32, gid: u32, perm: u32) -> Option<u32> {
    let (u, g, umask) = sys::creation_defaults();
    ((uid, gid) == (u, g) && perm & 0o7000 == 0 && perm & umask == 0).then_some(perm)
}

/// Whether `chown` would change nothing: the entry was created by this
/// run (`fresh`: not a delta, where it may be an older copy's) inside a
/// private directory, so it is ours, and ours is the owner it needs.
fn owned_as_created(m: &Meta, fresh: bool) -> bool {
    let (uid, gid, _) = sys::creation_defaults();
    fresh && (m.uid, m.gid) == (uid, gid)
}

fn xattr_err(root: &Path, rel: &[u8], (name, e): (Vec<u8>, std::io::Error)) -> Error {
    Error::Xattr { step: "set", name: display(&name), path: crate::error::show(root, rel), source: e }
}

/// Applies metadata to `name` in `dir` (any type but directories, which go
/// through [`apply_dir`]). `exact` (a delta) also removes xattrs the source
/// lacks; without it the entry is new, and a chown to ourselves is skipped.
pub(crate) fn apply_at(dir: BorrowedFd<'_>, name: &CStr, a: &Attrs, exact: bool, root: &Path, rel: &[u8]) -> Result<()> {
    let m = a.meta;
    if !owned_as_created(m, !exact) {
        sys::chown_at(dir, name, m.uid, m.gid).map_err(|e| Error::io("chown", root, rel, e))?;
    }
    if m.kind != Kind::Symlink {
        sys::chmod_at(dir, name, m.perm).map_err(|e| Error::io("chmod", root, rel, e))?;
    }
    if !a.xattrs.is_empty() || exact {
        sys::xattr::write_at(dir, name, a.xattrs, exact).map_err(|e| xattr_err(root, rel, e))?;
    }
    sys::set_times_at(dir, name, m.atime, m.mtime).map_err(|e| Error::io("set times", root, rel, e))
}

/// Applies metadata to an open regular file (cheaper than by name). `preset`:
/// it was created with [`preset_mode`], owner and mode are already right.
pub(crate) struct FileTarget<'a> {
    pub fd: BorrowedFd<'a>,
    pub dir: BorrowedFd<'a>,
    pub name: &'a CStr,
    pub preset: bool,
}

pub(crate) fn apply_file(t: &FileTarget, a: &Attrs, exact: bool, root: &Path, rel: &[u8]) -> Result<()> {
    let (m, f, dir, name) = (a.meta, t.fd, t.dir, t.name);
    if !t.preset {
        sys::fchown(f, m.uid, m.gid).map_err(|e| Error::io("chown", root, rel, e))?;
        sys::fchmod(f, m.perm).map_err(|e| Error::io("chmod", root, rel, e))?;
    }
    if !a.xattrs.is_empty() || exact {
        sys::xattr::write_at(dir, name, a.xattrs, exact).map_err(|e| xattr_err(root, rel, e))?;
    }
    sys::futimens(f, m.atime, m.mtime).map_err(|e| Error::io("set times", root, rel, e))
}

/// Applies metadata to a directory through its own fd.
pub(crate) fn apply_dir(d: BorrowedFd<'_>, a: &Attrs, exact: bool, root: &Path, rel: &[u8]) -> Result<()> {
    let m = a.meta;
    // The root may be a directory someone else made for the copy.
    if !owned_as_created(m, !exact && !rel.is_empty()) {
        sys::fchown(d, m.uid, m.gid).map_err(|e| Error::io("chown", root, rel, e))?;
    }
    sys::fchmod(d, m.perm).map_err(|e| Error::io("chmod", root, rel, e))?;
    if !a.xattrs.is_empty() || exact {
        sys::xattr::write_at(d, sys::DOT, a.xattrs, exact).map_err(|e| xattr_err(root, rel, e))?;
    }
    sys::futimens(d, m.atime, m.mtime).map_err(|e| Error::io("set times", root, rel, e))
}
