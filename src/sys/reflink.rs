//! FICLONE (ioctl_ficlone(2)): a file whose data extents are shared with
//! another on the same filesystem, copy-on-write. Only metadata is written,
//! so a whole tree clones in the time of a metadata walk, and holes stay
//! holes. xfs (`reflink=1`) and btrfs support it; ext4 does not.

use std::fs::File;
use std::io::{self, Write};
use std::os::fd::{AsRawFd, BorrowedFd, FromRawFd, OwnedFd};
use std::path::Path;

use super::check;

/// Makes `dst` (empty, open for writing) share all of `src`'s data.
pub(crate) fn clone_file(dst: BorrowedFd<'_>, src: BorrowedFd<'_>) -> io::Result<()> {
    // SAFETY: FICLONE takes the source fd as its integer argument and touches no user memory.
    check(unsafe { libc::ioctl(dst.as_raw_fd(), libc::FICLONE, src.as_raw_fd()) }).map(|_| ())
}

/// Errors that mean "this filesystem (or this pair of files) cannot clone".
pub(crate) fn unsupported(e: &io::Error) -> bool {
    matches!(e.raw_os_error(), Some(libc::EOPNOTSUPP | libc::EXDEV | libc::EINVAL | libc::ENOTTY | libc::ENOSYS))
}

/// An unnamed file in `dir` (O_TMPFILE): it vanishes on close, so a probe
/// killed half-way leaves nothing behind.
fn tmpfile_in(dir: &Path) -> io::Result<File> {
    let c = super::path_cstr(dir)?;
    let flags = libc::O_TMPFILE | libc::O_RDWR | libc::O_CLOEXEC;
    // SAFETY: NUL-terminated path; on success we own the new fd.
    let fd = check(unsafe { libc::open(c.as_ptr() as *const libc::c_char, flags, 0o600 as libc::c_uint) })?;
    // SAFETY: open succeeded, so fd is a new descriptor that we own.
    Ok(File::from(unsafe { OwnedFd::from_raw_fd(fd) }))
}

/// Whether the filesystem holding the directory `dir` can clone files:
/// clones one block between two unnamed files there. `Ok(false)` when the
/// filesystem says it cannot; other errors (permissions, no space) are errors.
pub(crate) fn probe(dir: &Path) -> io::Result<bool> {
    let mut a = tmpfile_in(dir)?;
    a.write_all(&[0x5a; 4096])?;
    let b = tmpfile_in(dir)?;
    match clone_file(std::os::fd::AsFd::as_fd(&b), std::os::fd::AsFd::as_fd(&a)) {
        Ok(()) => Ok(true),
        Err(e) if unsupported(&e) => Ok(false),
        Err(e) => Err(e),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn probe_answers_on_the_test_filesystem() {
        // /var/tmp may or may not clone; the probe must answer, not fail.
        let d = tempfile::tempdir_in("/var/tmp").unwrap();
        probe(d.path()).unwrap();
        assert_eq!(std::fs::read_dir(d.path()).unwrap().count(), 0, "the probe leaves no file");
    }
}
