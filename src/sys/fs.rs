//! Thin, fd-relative wrappers over the filesystem system calls.

use std::ffi::{CStr, CString};
use std::fs::File;
use std::io;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, FromRawFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::Path;

use super::stat::{Kind, Timespec};

use super::check;

/// The path of an open fd in /proc: a "magic link" that resolves to that very
/// inode, whatever its names are now.
pub(crate) fn fd_path(fd: BorrowedFd<'_>) -> String {
    format!("/proc/self/fd/{}", fd.as_raw_fd())
}

pub(super) fn openat_raw(dir: BorrowedFd<'_>, name: &CStr, flags: libc::c_int, mode: libc::mode_t) -> io::Result<OwnedFd> {
    // SAFETY: valid fd and NUL-terminated name; on success we own the new fd.
    let fd = check(unsafe { libc::openat(dir.as_raw_fd(), name.as_ptr(), flags | libc::O_CLOEXEC, mode as libc::c_uint) })?;
    // SAFETY: openat succeeded, so fd is a new descriptor that we own.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

/// Opens a directory by path (the root of a walk). Follows symlinks in the
/// path itself, as a user naming a directory expects.
pub fn open_dir_path(path: &Path) -> io::Result<OwnedFd> {
    let c = CString::new(path.as_os_str().as_bytes()).map_err(|_| io::Error::from(io::ErrorKind::InvalidInput))?;
    // SAFETY: NUL-terminated path.
    let fd = check(unsafe { libc::open(c.as_ptr(), libc::O_RDONLY | libc::O_DIRECTORY | libc::O_CLOEXEC) })?;
    // SAFETY: open succeeded, so fd is a new descriptor that we own.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

/// Opens the subdirectory `name` of `dir` without following a symlink.
pub fn open_dir_at(dir: BorrowedFd<'_>, name: &CStr) -> io::Result<OwnedFd> {
    openat_raw(dir, name, libc::O_RDONLY | libc::O_DIRECTORY | libc::O_NOFOLLOW, 0)
}

/// Creates a new regular file (it must not exist) for writing.
pub fn create_file_at(dir: BorrowedFd<'_>, name: &CStr) -> io::Result<File> {
    create_file_mode_at(dir, name, 0o600)
}

/// As [`create_file_at`], with `mode` (the umask applies).
pub(crate) fn create_file_mode_at(dir: BorrowedFd<'_>, name: &CStr, mode: u32) -> io::Result<File> {
    Ok(File::from(openat_raw(dir, name, libc::O_WRONLY | libc::O_CREAT | libc::O_EXCL | libc::O_NOFOLLOW, mode)?))
}

/// What a file this process creates gets without chown/chmod: (euid, egid,
/// umask). Read once; the umask comes from /proc (umask(2) cannot read it
/// without setting it, which would race other threads).
pub(crate) fn creation_defaults() -> (u32, u32, u32) {
    static D: std::sync::OnceLock<(u32, u32, u32)> = std::sync::OnceLock::new();
    *D.get_or_init(|| {
        let umask = std::fs::read_to_string("/proc/self/status")
            .ok()
            .and_then(|s| s.lines().find_map(|l| l.strip_prefix("Umask:").and_then(|v| u32::from_str_radix(v.trim(), 8).ok())))
            // Unknown: assume everything is masked, so the mode is always set explicitly.
            .unwrap_or(0o777);
        (nix::unistd::geteuid().as_raw(), nix::unistd::getegid().as_raw(), umask)
    })
}

pub fn mkdir_at(dir: BorrowedFd<'_>, name: &CStr, mode: u32) -> io::Result<()> {
    // SAFETY: valid fd and name.
    check(unsafe { libc::mkdirat(dir.as_raw_fd(), name.as_ptr(), mode as libc::mode_t) }).map(drop)
}

/// Creates a device, fifo or socket node.
pub(crate) fn mknod_at(dir: BorrowedFd<'_>, name: &CStr, kind: Kind, rdev: u64) -> io::Result<()> {
    let mode = kind.ifmt() | 0o600;
    // SAFETY: valid fd and name.
    check(unsafe { libc::mknodat(dir.as_raw_fd(), name.as_ptr(), mode as libc::mode_t, rdev as libc::dev_t) }).map(drop)
}

pub(crate) fn symlink_at(target: &[u8], dir: BorrowedFd<'_>, name: &CStr) -> io::Result<()> {
    let t = super::cstr(target)?;
    // SAFETY: valid strings and fd.
    check(unsafe { libc::symlinkat(t.as_ptr(), dir.as_raw_fd(), name.as_ptr()) }).map(drop)
}

/// Reads a symlink's target as raw bytes (targets may be up to PATH_MAX).
pub fn readlink_at(dir: BorrowedFd<'_>, name: &CStr) -> io::Result<Vec<u8>> {
    let mut buf = vec![0u8; libc::PATH_MAX as usize + 1];
    // SAFETY: buf is writable for its length.
    let n = unsafe { libc::readlinkat(dir.as_raw_fd(), name.as_ptr(), buf.as_mut_ptr().cast(), buf.len()) };
    if n < 0 {
        return Err(io::Error::last_os_error());
    }
    buf.truncate(n as usize);
    Ok(buf)
}

/// Makes `new_dir/new_name` another name of `old_dir/old_name` (never follows symlinks).
pub(crate) fn link_at(old_dir: BorrowedFd<'_>, old_name: &CStr, new_dir: BorrowedFd<'_>, new_name: &CStr) -> io::Result<()> {
    // SAFETY: valid fds and names.
    check(unsafe { libc::linkat(old_dir.as_raw_fd(), old_name.as_ptr(), new_dir.as_raw_fd(), new_name.as_ptr(), 0) }).map(drop)
}

/// `fchownat(AT_SYMLINK_NOFOLLOW)`: numeric ids, never follows a symlink.
pub(crate) fn chown_at(dir: BorrowedFd<'_>, name: &CStr, uid: u32, gid: u32) -> io::Result<()> {
    // SAFETY: valid fd and name.
    check(unsafe { libc::fchownat(dir.as_raw_fd(), name.as_ptr(), uid, gid, libc::AT_SYMLINK_NOFOLLOW) }).map(drop)
}

/// chmod of a non-symlink entry, never following a symlink: a symlink in
/// its place is EOPNOTSUPP (symlink modes cannot be changed on Linux).
/// `fchmodat2(AT_SYMLINK_NOFOLLOW)` (Linux 6.6); on older kernels the name is
/// opened `O_PATH|O_NOFOLLOW`, checked, and chmod'ed through /proc, as
/// glibc's `fchmodat(AT_SYMLINK_NOFOLLOW)` does.
pub(crate) fn chmod_at(dir: BorrowedFd<'_>, name: &CStr, perm: u32) -> io::Result<()> {
    // SAFETY: valid fd and name; fchmodat2 takes (dirfd, path, mode, flags).
    let rc = unsafe { libc::syscall(libc::SYS_fchmodat2, dir.as_raw_fd(), name.as_ptr(), perm as libc::mode_t, libc::AT_SYMLINK_NOFOLLOW) };
    if rc == 0 {
        return Ok(());
    }
    let e = io::Error::last_os_error();
    if e.raw_os_error() != Some(libc::ENOSYS) {
        return Err(e);
    }
    chmod_through_proc(dir, name, perm)
}

/// [`chmod_at`] for kernels without fchmodat2 (before 6.6).
fn chmod_through_proc(dir: BorrowedFd<'_>, name: &CStr, perm: u32) -> io::Result<()> {
    let fd = openat_raw(dir, name, libc::O_PATH | libc::O_NOFOLLOW, 0)?;
    if super::stat::fstat(fd.as_fd())?.kind == Kind::Symlink {
        return Err(io::Error::from_raw_os_error(libc::EOPNOTSUPP));
    }
    let path = super::cstr(fd_path(fd.as_fd()).as_bytes())?;
    // SAFETY: NUL-terminated path; the magic link leads to the inode checked above.
    check(unsafe { libc::chmod(path.as_ptr(), perm as libc::mode_t) }).map(drop)
}

pub(crate) fn fchown(fd: BorrowedFd<'_>, uid: u32, gid: u32) -> io::Result<()> {
    // SAFETY: valid fd.
    check(unsafe { libc::fchown(fd.as_raw_fd(), uid, gid) }).map(drop)
}

pub fn fchmod(fd: BorrowedFd<'_>, perm: u32) -> io::Result<()> {
    // SAFETY: valid fd.
    check(unsafe { libc::fchmod(fd.as_raw_fd(), perm as libc::mode_t) }).map(drop)
}

/// Sets atime and mtime with nanoseconds, never following a symlink.
pub fn set_times_at(dir: BorrowedFd<'_>, name: &CStr, atime: Timespec, mtime: Timespec) -> io::Result<()> {
    let ts = [atime.to_libc(), mtime.to_libc()];
    // SAFETY: valid fd, name and a two-element array.
    check(unsafe { libc::utimensat(dir.as_raw_fd(), name.as_ptr(), ts.as_ptr(), libc::AT_SYMLINK_NOFOLLOW) }).map(drop)
}

pub(crate) fn futimens(fd: BorrowedFd<'_>, atime: Timespec, mtime: Timespec) -> io::Result<()> {
    let ts = [atime.to_libc(), mtime.to_libc()];
    // SAFETY: valid fd and a two-element array.
    check(unsafe { libc::futimens(fd.as_raw_fd(), ts.as_ptr()) }).map(drop)
}

/// Removes a non-directory entry.
pub(crate) fn unlink_at(dir: BorrowedFd<'_>, name: &CStr) -> io::Result<()> {
    // SAFETY: valid fd and name.
    check(unsafe { libc::unlinkat(dir.as_raw_fd(), name.as_ptr(), 0) }).map(drop)
}

pub(crate) fn rmdir_at(dir: BorrowedFd<'_>, name: &CStr) -> io::Result<()> {
    // SAFETY: valid fd and name.
    check(unsafe { libc::unlinkat(dir.as_raw_fd(), name.as_ptr(), libc::AT_REMOVEDIR) }).map(drop)
}

/// Lists the names in a directory (without `.` and `..`), sorted bytewise so
/// that walks, manifests and merges all see the same order.
pub fn list_dir(dir: BorrowedFd<'_>) -> io::Result<Vec<CString>> {
    let fd = openat_raw(dir, super::DOT, libc::O_RDONLY | libc::O_DIRECTORY, 0)?;
    let mut d = nix::dir::Dir::from_fd(fd).map_err(io::Error::from)?;
    let mut names = Vec::new();
    for e in d.iter() {
        let e = e.map_err(io::Error::from)?;
        let n = e.file_name();
        if n == c"." || n == c".." {
            continue;
        }
        names.push(n.to_owned());
    }
    names.sort_unstable_by(|a, b| a.as_bytes().cmp(b.as_bytes()));
    Ok(names)
}

/// Raises the soft open-files limit to the hard limit (a walk keeps one fd per
/// directory level plus the fds of the entries in flight) and returns the
/// soft limit now in force, so callers can size their windows below it.
pub fn raise_nofile_limit() -> u64 {
    let mut rl = libc::rlimit { rlim_cur: 0, rlim_max: 0 };
    // SAFETY: plain struct in and out.
    unsafe {
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut rl) != 0 {
            return 1024;
        }
        if rl.rlim_cur < rl.rlim_max {
            let want = libc::rlimit { rlim_cur: rl.rlim_max, rlim_max: rl.rlim_max };
            if libc::setrlimit(libc::RLIMIT_NOFILE, &want) == 0 {
                rl = want;
            }
        }
    }
    rl.rlim_cur
}

/// Path through /proc that names `name` inside the directory `dir` with a short
/// string, for the calls (l*xattr) that have no fd-relative form.
pub(crate) fn proc_path(dir: BorrowedFd<'_>, name: &CStr) -> std::path::PathBuf {
    let mut p = format!("/proc/self/fd/{}/", dir.as_raw_fd()).into_bytes();
    p.extend_from_slice(name.to_bytes());
    std::path::PathBuf::from(<std::ffi::OsString as std::os::unix::ffi::OsStringExt>::from_vec(p))
}

/// Refuses an output path that exists and is not a regular file. Outputs are
/// written under a temporary name and renamed over `path`; done to
/// `/dev/null` (a habit when timing a command), that rename replaced the
/// host's device node with a regular file.
pub(crate) fn check_replaceable(path: &Path) -> io::Result<()> {
    match std::fs::metadata(path) {
        Ok(m) if !m.is_file() => Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            "exists and is not a regular file; dockroot renames a finished output over its target, \
             which would replace it: write to standard output with `-o -` and redirect that instead",
        )),
        Ok(_) => Ok(()),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(e),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    #[test]
    fn chmod_never_follows_a_symlink_on_either_path() {
        let t = tempfile::tempdir().unwrap();
        let d = open_dir_path(t.path()).unwrap();
        std::fs::write(t.path().join("f"), b"x").unwrap();
        std::fs::set_permissions(t.path().join("f"), std::fs::Permissions::from_mode(0o600)).unwrap();
        std::os::unix::fs::symlink("f", t.path().join("l")).unwrap();
        let mode = || std::fs::metadata(t.path().join("f")).unwrap().permissions().mode() & 0o7777;
        for chmod in [chmod_at, chmod_through_proc] {
            chmod(d.as_fd(), c"f", 0o640).unwrap();
            assert_eq!(mode(), 0o640);
            let e = chmod(d.as_fd(), c"l", 0o777).unwrap_err();
            assert_eq!(e.raw_os_error(), Some(libc::EOPNOTSUPP), "{e}");
            assert_eq!(mode(), 0o640, "the symlink's target was changed");
            chmod(d.as_fd(), c"f", 0o600).unwrap();
        }
    }
}
