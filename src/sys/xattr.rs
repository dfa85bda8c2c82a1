//! Extended attributes of any entry type, read and written without following
//! symlinks and without opening device nodes or fifos.

use std::ffi::{CStr, OsStr, OsString};
use std::io;
use std::os::fd::BorrowedFd;
use std::os::unix::ffi::{OsStrExt, OsStringExt};

/// Name/value pairs, sorted by name.
pub(crate) type Xattrs = Vec<(Vec<u8>, Vec<u8>)>;

/// XFS shows root the POSIX ACLs a second time under these names. They are
/// aliases of `system.posix_acl_*`; copied to another filesystem they become
/// bogus xattrs, so they are never read.
pub(crate) fn is_alias(name: &[u8]) -> bool {
    name == b"trusted.SGI_ACL_FILE" || name == b"trusted.SGI_ACL_DEFAULT"
}

fn unsupported(e: &io::Error) -> bool {
    matches!(e.raw_os_error(), Some(libc::ENOTSUP))
}

/// Collects name/value pairs from a list call and a get call, skipping the
/// XFS aliases. A value removed between list and get is simply gone.
fn collect<I: Iterator<Item = OsString>>(list: io::Result<I>, get: impl Fn(&OsStr) -> io::Result<Option<Vec<u8>>>) -> io::Result<Xattrs> {
    let names = match list {
        Ok(n) => n,
        Err(e) if unsupported(&e) => return Ok(Vec::new()),
        Err(e) => return Err(e),
    };
    let mut out = Vec::new();
    for n in names {
        if is_alias(n.as_bytes()) {
            continue;
        }
        if let Some(v) = get(&n)? {
            out.push((n.into_vec(), v));
        }
    }
    out.sort();
    Ok(out)
}

/// Reads every xattr of the inode behind an `O_PATH` fd (any type, symlinks
/// included): through its /proc magic link, which leads to that inode only.
pub fn read_path_fd(fd: BorrowedFd<'_>) -> io::Result<Xattrs> {
    let magic = super::fs::fd_path(fd);
    collect(xattr::list_deref(&magic), |n| xattr::get_deref(&magic, n))
}

/// Reads every xattr of `name` in `dir` (any type, not following a
/// symlink), by name: only for private trees, where the name cannot be
/// pointed at another inode (see `tree::WalkOptions::private`).
pub fn read_at(dir: BorrowedFd<'_>, name: &CStr) -> io::Result<Xattrs> {
    let path = super::proc_path(dir, name);
    collect(xattr::list(&path), |n| xattr::get(&path, n))
}

/// Reads every xattr of a file or directory opened for I/O (cheaper than a /proc path).
pub fn read_fd(fd: BorrowedFd<'_>) -> io::Result<Xattrs> {
    use std::os::fd::AsRawFd;
    use xattr::FileExt;
    // SAFETY: the File is never dropped, so the borrowed fd is not closed.
    let f = std::mem::ManuallyDrop::new(unsafe { <std::fs::File as std::os::fd::FromRawFd>::from_raw_fd(fd.as_raw_fd()) });
    collect(f.list_xattr(), |n| f.get_xattr(n))
}

/// Makes the xattrs of `name` in `dir` exactly `want`: sets each value and,
/// when `exact`, removes names not in `want` (e.g. an inherited default ACL).
pub(crate) fn write_at(dir: BorrowedFd<'_>, name: &CStr, want: &Xattrs, exact: bool) -> Result<(), (Vec<u8>, io::Error)> {
    let path = super::proc_path(dir, name);
    for (k, v) in want {
        xattr::set(&path, OsStr::from_bytes(k), v).map_err(|e| (k.clone(), e))?;
    }
    if exact {
        let have = match xattr::list(&path) {
            Ok(h) => h.collect::<Vec<OsString>>(),
            Err(e) if unsupported(&e) => Vec::new(),
            Err(e) => return Err((Vec::new(), e)),
        };
        for n in have {
            let nb = n.clone().into_vec();
            if is_alias(&nb) || want.iter().any(|(k, _)| *k == nb) {
                continue;
            }
            match xattr::remove(&path, &n) {
                Ok(()) => {}
                Err(e) if e.raw_os_error() == Some(libc::ENODATA) => {}
                Err(e) => return Err((nb, e)),
            }
        }
    }
    Ok(())
}
