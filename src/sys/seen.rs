//! Opening exactly the entry the walker stat'ed, and nothing else.
//!
//! Between the walker's `lstat` and a later open, whoever can write the tree
//! (a container, as root inside its layers and volumes) can swap the name for
//! a device node, a fifo or a symlink (issue 13: `renameat2(RENAME_EXCHANGE)`
//! of a file with `/dev/kmsg` copied the host's kernel log). So a source entry
//! is first opened with `O_PATH|O_NOFOLLOW`, which opens nothing for I/O and
//! never follows a symlink, then `fstat`ed: only when it is the walker's inode
//! (same dev, ino and type) is it reopened for reading, through its
//! `/proc/self/fd/N` magic link, which names that inode and no other. A device node is
//! never opened for I/O, and a swap is a [`Replaced`] error, which the callers
//! count as a race.

use std::ffi::CStr;
use std::fs::File;
use std::io;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, FromRawFd, OwnedFd};

use super::check;
use super::stat::{Kind, Meta, fstat};

/// The name now refers to another inode, or another type, than the walker saw.
#[derive(Debug)]
pub(crate) struct Replaced {
    pub saw: Kind,
    pub found: Kind,
}

impl std::fmt::Display for Replaced {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if self.saw == self.found {
            write!(f, "replaced by another {} while it was read", self.found.name())
        } else {
            write!(f, "replaced by a {} while it was read (it was a {})", self.found.name(), self.saw.name())
        }
    }
}

impl std::error::Error for Replaced {}

/// Whether a source-side error means the tree changed under the reader: the
/// entry vanished (ENOENT), a directory on its path did (ENOTDIR), a symlink
/// took its place (ELOOP), or it was [`Replaced`].
pub(crate) fn is_race(e: &io::Error) -> bool {
    matches!(e.raw_os_error(), Some(libc::ENOENT) | Some(libc::ENOTDIR) | Some(libc::ELOOP)) || replaced(e)
}

/// Whether `e` is a [`Replaced`] error.
fn replaced(e: &io::Error) -> bool {
    e.get_ref().is_some_and(|x| x.is::<Replaced>())
}

/// Requires `now` to be the entry the walker saw.
fn same(seen: &Meta, now: &Meta) -> io::Result<()> {
    if (now.kind, now.dev, now.ino) == (seen.kind, seen.dev, seen.ino) {
        Ok(())
    } else {
        Err(io::Error::other(Replaced { saw: seen.kind, found: now.kind }))
    }
}

/// Opens `name` in `dir` with `O_PATH|O_NOFOLLOW` (no I/O, no side effect on
/// any file type) and stats the handle. The walker stats entries this way:
/// the stat then describes the very inode the handle names, so a later
/// [`reopen_file`] or [`reopen_dir`] of the handle needs no second stat to
/// check it (issue 11: one stat per entry).
pub(crate) fn open_entry(dir: BorrowedFd<'_>, name: &CStr) -> io::Result<(OwnedFd, Meta)> {
    // SAFETY: valid fd and NUL-terminated name.
    let fd = check(unsafe { libc::openat(dir.as_raw_fd(), name.as_ptr(), libc::O_PATH | libc::O_NOFOLLOW | libc::O_CLOEXEC) })?;
    // SAFETY: openat succeeded, so fd is a new descriptor that we own.
    let fd = unsafe { OwnedFd::from_raw_fd(fd) };
    let now = fstat(fd.as_fd())?;
    Ok((fd, now))
}

/// [`open_entry`], checked to be `seen`. Returns the handle and its current stat.
pub fn open_seen(dir: BorrowedFd<'_>, name: &CStr, seen: &Meta) -> io::Result<(OwnedFd, Meta)> {
    let (fd, now) = open_entry(dir, name)?;
    same(seen, &now)?;
    Ok((fd, now))
}

/// Opens for reading the regular file `name` in `dir` that the walker saw as
/// `seen`; anything else (a device, fifo, symlink or another file put in its
/// place) is a [`Replaced`] error and is never opened for I/O. Returns the
/// file and its stat at open time. Does not touch atime where permitted.
pub fn open_file_seen(dir: BorrowedFd<'_>, name: &CStr, seen: &Meta) -> io::Result<(File, Meta)> {
    let (path_fd, now) = open_seen(dir, name, seen)?;
    Ok((reopen_file(path_fd.as_fd(), &now)?, now))
}

/// Opens for reading the regular file `name` in `dir`, which the walker
/// lstat'ed as `seen`, in a private tree (see `tree::WalkOptions::private`):
/// directly, one open instead of an `O_PATH` handle and its reopen. A
/// container that could reach such a tree could already write the data-root
/// (docs/safety.md), and only root can make the device node whose open has
/// effects; `O_NOFOLLOW|O_NONBLOCK` still keep a symlink or fifo from being
/// followed or waited on, and a swap is still [`Replaced`].
pub(crate) fn open_private_file(dir: BorrowedFd<'_>, name: &CStr, seen: &Meta) -> io::Result<(File, Meta)> {
    if seen.kind != Kind::File {
        return Err(io::Error::other(Replaced { saw: Kind::File, found: seen.kind }));
    }
    let fd = without_atime(|flags| super::fs::openat_raw(dir, name, flags | libc::O_NOFOLLOW, 0))?;
    let now = fstat(fd.as_fd())?;
    same(seen, &now)?;
    Ok((File::from(fd), now))
}

/// Opens for reading the inode behind the `O_PATH` handle `path_fd`, whose
/// stat is `now` (from [`open_entry`] or [`open_seen`]); anything but a
/// regular file is a [`Replaced`] error and is never opened for I/O. Does
/// not touch atime where permitted.
pub(crate) fn reopen_file(path_fd: BorrowedFd<'_>, now: &Meta) -> io::Result<File> {
    if now.kind != Kind::File {
        return Err(io::Error::other(Replaced { saw: Kind::File, found: now.kind }));
    }
    Ok(File::from(without_atime(|flags| reopen(path_fd, flags | libc::O_CLOEXEC))?))
}

/// Opens a regular file for reading with `open(flags)`: no controlling
/// tty, no wait on a mandatory lock (`O_NONBLOCK`), and atime untouched
/// where permitted. O_NOATIME fails with EPERM on files we do not own
/// without CAP_FOWNER; then it is opened without it.
fn without_atime(open: impl Fn(libc::c_int) -> io::Result<OwnedFd>) -> io::Result<OwnedFd> {
    let flags = libc::O_RDONLY | libc::O_NOCTTY | libc::O_NONBLOCK;
    match open(flags | libc::O_NOATIME) {
        Err(e) if e.raw_os_error() == Some(libc::EPERM) => open(flags),
        r => r,
    }
}

/// Opens the directory behind the `O_PATH` handle `path_fd` for listing.
pub(crate) fn reopen_dir(path_fd: BorrowedFd<'_>) -> io::Result<OwnedFd> {
    reopen(path_fd, libc::O_RDONLY | libc::O_DIRECTORY | libc::O_CLOEXEC)
}

/// Opens `path_fd`'s inode again through its /proc magic link. No
/// O_NOFOLLOW: the magic link must be followed, and it leads only to that inode.
fn reopen(path_fd: BorrowedFd<'_>, flags: libc::c_int) -> io::Result<OwnedFd> {
    let n = super::cstr(path_fd.as_raw_fd().to_string().as_bytes())?;
    let fd_dir = proc_fd_dir()?;
    // SAFETY: valid fd and NUL-terminated name.
    let fd = check(unsafe { libc::openat(fd_dir.as_raw_fd(), n.as_ptr(), flags) })?;
    // SAFETY: openat succeeded, so fd is a new descriptor that we own.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

/// This process's /proc/PID/fd, opened once: reopening fd N as
/// `openat(dir, "N")` looks up one name, not the four of
/// `/proc/self/fd/N` (a measurable cost per file on trees of small files).
/// The fd table is shared by all threads, so one directory serves them all.
fn proc_fd_dir() -> io::Result<BorrowedFd<'static>> {
    static DIR: std::sync::OnceLock<Result<OwnedFd, i32>> = std::sync::OnceLock::new();
    let r = DIR.get_or_init(|| {
        // SAFETY: NUL-terminated path.
        let fd = unsafe { libc::open(c"/proc/self/fd".as_ptr(), libc::O_RDONLY | libc::O_DIRECTORY | libc::O_CLOEXEC) };
        if fd < 0 {
            return Err(io::Error::last_os_error().raw_os_error().unwrap_or(libc::EIO));
        }
        // SAFETY: open succeeded, so fd is a new descriptor, owned by the static.
        Ok(unsafe { OwnedFd::from_raw_fd(fd) })
    });
    match r {
        Ok(fd) => Ok(fd.as_fd()),
        Err(e) => Err(io::Error::from_raw_os_error(*e)),
    }
}

/// Opens the subdirectory `name` of `dir` (never following a symlink) and
/// checks that it is the directory the walker saw as `seen`.
pub(crate) fn open_dir_seen(dir: BorrowedFd<'_>, name: &CStr, seen: &Meta) -> io::Result<OwnedFd> {
    let fd = super::fs::open_dir_at(dir, name)?;
    same(seen, &fstat(fd.as_fd())?)?;
    Ok(fd)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sys::stat::lstat_at;
    use std::io::Read;

    fn dir() -> (tempfile::TempDir, OwnedFd) {
        let t = tempfile::tempdir().unwrap();
        let fd = crate::sys::open_dir_path(t.path()).unwrap();
        (t, fd)
    }

    #[test]
    fn reads_the_file_the_walker_saw() {
        let (t, d) = dir();
        std::fs::write(t.path().join("f"), b"content").unwrap();
        let seen = lstat_at(d.as_fd(), c"f").unwrap();
        let (mut f, now) = open_file_seen(d.as_fd(), c"f", &seen).unwrap();
        assert_eq!(now.ino, seen.ino);
        let mut s = String::new();
        f.read_to_string(&mut s).unwrap();
        assert_eq!(s, "content");
    }

    #[test]
    fn a_swapped_name_is_replaced_not_read() {
        let (t, d) = dir();
        std::fs::write(t.path().join("f"), b"old").unwrap();
        let seen = lstat_at(d.as_fd(), c"f").unwrap();
        // Another file, then a symlink, then a fifo under the same name.
        // (g is made while f still exists, so it cannot reuse f's inode number.)
        std::fs::write(t.path().join("g"), b"new").unwrap();
        std::fs::rename(t.path().join("g"), t.path().join("f")).unwrap();
        let e = open_file_seen(d.as_fd(), c"f", &seen).unwrap_err();
        assert!(replaced(&e) && is_race(&e), "{e}");
        std::fs::remove_file(t.path().join("f")).unwrap();
        std::os::unix::fs::symlink("/dev/zero", t.path().join("f")).unwrap();
        let e = open_file_seen(d.as_fd(), c"f", &seen).unwrap_err();
        assert!(replaced(&e), "{e}");
        assert!(e.to_string().contains("replaced by a symlink"), "{e}");
        std::fs::remove_file(t.path().join("f")).unwrap();
        nix::unistd::mkfifo(&t.path().join("f"), nix::sys::stat::Mode::from_bits_truncate(0o600)).unwrap();
        // A fifo opened for reading would block forever; O_PATH does not.
        assert!(replaced(&open_file_seen(d.as_fd(), c"f", &seen).unwrap_err()));
        std::fs::remove_file(t.path().join("f")).unwrap();
        assert!(is_race(&open_file_seen(d.as_fd(), c"f", &seen).unwrap_err()));
    }

    #[test]
    fn a_walker_handle_reopens_only_its_own_regular_file() {
        let (t, d) = dir();
        std::fs::write(t.path().join("f"), b"old").unwrap();
        std::fs::create_dir(t.path().join("a")).unwrap();
        let (h, now) = open_entry(d.as_fd(), c"f").unwrap();
        // The name now holds another file: the handle still reads its own.
        std::fs::write(t.path().join("g"), b"new").unwrap();
        std::fs::rename(t.path().join("g"), t.path().join("f")).unwrap();
        let mut s = String::new();
        reopen_file(h.as_fd(), &now).unwrap().read_to_string(&mut s).unwrap();
        assert_eq!(s, "old");
        // A device node's handle is never opened for I/O; a directory's is listed.
        nix::sys::stat::mknod(
            &t.path().join("c"),
            nix::sys::stat::SFlag::S_IFCHR,
            nix::sys::stat::Mode::from_bits_truncate(0o600),
            nix::sys::stat::makedev(1, 3),
        )
        .unwrap();
        let (c, cm) = open_entry(d.as_fd(), c"c").unwrap();
        assert!(replaced(&reopen_file(c.as_fd(), &cm).unwrap_err()));
        let (a, _) = open_entry(d.as_fd(), c"a").unwrap();
        assert!(crate::sys::list_dir(reopen_dir(a.as_fd()).unwrap().as_fd()).unwrap().is_empty());
    }

    #[test]
    fn directories_and_symlinks_are_checked_too() {
        let (t, d) = dir();
        std::fs::create_dir(t.path().join("a")).unwrap();
        std::os::unix::fs::symlink("target", t.path().join("l")).unwrap();
        let (da, dl) = (lstat_at(d.as_fd(), c"a").unwrap(), lstat_at(d.as_fd(), c"l").unwrap());
        open_dir_seen(d.as_fd(), c"a", &da).unwrap();
        let (l, _) = open_seen(d.as_fd(), c"l", &dl).unwrap();
        assert_eq!(crate::sys::readlink_at(l.as_fd(), c"").unwrap(), b"target");
        // Swap them: the directory name now holds the symlink and vice versa.
        std::fs::rename(t.path().join("a"), t.path().join("x")).unwrap();
        std::fs::rename(t.path().join("l"), t.path().join("a")).unwrap();
        std::fs::rename(t.path().join("x"), t.path().join("l")).unwrap();
        assert!(is_race(&open_dir_seen(d.as_fd(), c"a", &da).unwrap_err()));
        assert!(replaced(&open_seen(d.as_fd(), c"l", &dl).unwrap_err()));
        // A fifo in a directory's place: O_DIRECTORY refuses it before the
        // open (opening a fifo for reading would block here for ever).
        nix::unistd::mkfifo(&t.path().join("p"), nix::sys::stat::Mode::from_bits_truncate(0o600)).unwrap();
        assert_eq!(open_dir_seen(d.as_fd(), c"p", &da).unwrap_err().raw_os_error(), Some(libc::ENOTDIR));
    }
}
