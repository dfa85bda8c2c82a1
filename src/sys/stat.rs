//! The metadata of one entry, as `fstatat(AT_SYMLINK_NOFOLLOW)` reports it.

use std::ffi::CStr;
use std::io;
use std::os::fd::{AsRawFd, BorrowedFd};

/// The type of a directory entry. Sockets are recreated as nodes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Kind {
    File,
    Dir,
    Symlink,
    Char,
    Block,
    Fifo,
    Socket,
}

impl Kind {
    pub(crate) fn from_mode(mode: u32) -> Option<Kind> {
        Some(match mode & libc::S_IFMT {
            libc::S_IFREG => Kind::File,
            libc::S_IFDIR => Kind::Dir,
            libc::S_IFLNK => Kind::Symlink,
            libc::S_IFCHR => Kind::Char,
            libc::S_IFBLK => Kind::Block,
            libc::S_IFIFO => Kind::Fifo,
            libc::S_IFSOCK => Kind::Socket,
            _ => return None,
        })
    }

    pub(crate) fn ifmt(self) -> u32 {
        match self {
            Kind::File => libc::S_IFREG,
            Kind::Dir => libc::S_IFDIR,
            Kind::Symlink => libc::S_IFLNK,
            Kind::Char => libc::S_IFCHR,
            Kind::Block => libc::S_IFBLK,
            Kind::Fifo => libc::S_IFIFO,
            Kind::Socket => libc::S_IFSOCK,
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Kind::File => "file",
            Kind::Dir => "dir",
            Kind::Symlink => "symlink",
            Kind::Char => "char",
            Kind::Block => "block",
            Kind::Fifo => "fifo",
            Kind::Socket => "socket",
        }
    }
}

/// Seconds and nanoseconds since the epoch; seconds may be negative.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, PartialOrd, Ord, Hash)]
pub struct Timespec {
    pub sec: i64,
    pub nsec: u32,
}

impl Timespec {
    pub(crate) fn to_libc(self) -> libc::timespec {
        libc::timespec { tv_sec: self.sec, tv_nsec: self.nsec as _ }
    }
}

impl std::fmt::Display for Timespec {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}.{:09}", self.sec, self.nsec)
    }
}

impl std::str::FromStr for Timespec {
    type Err = ();
    fn from_str(s: &str) -> Result<Self, ()> {
        let (sec, nsec) = s.split_once('.').ok_or(())?;
        if nsec.len() != 9 {
            return Err(());
        }
        Ok(Timespec { sec: sec.parse().map_err(|_| ())?, nsec: nsec.parse().map_err(|_| ())? })
    }
}

/// The fields of `struct stat` that dockroot cares about.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Meta {
    pub kind: Kind,
    /// Permission bits including setuid, setgid and sticky (07777).
    pub perm: u32,
    pub uid: u32,
    pub gid: u32,
    pub size: u64,
    pub atime: Timespec,
    pub mtime: Timespec,
    pub ctime: Timespec,
    pub dev: u64,
    pub ino: u64,
    pub rdev: u64,
    pub nlink: u64,
    /// Allocated 512-byte blocks.
    pub blocks: u64,
}

impl Meta {
    fn from_stat(st: &libc::stat) -> io::Result<Meta> {
        let kind = Kind::from_mode(st.st_mode)
            .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidData, format!("unknown file type {:o}", st.st_mode)))?;
        Ok(Meta {
            kind,
            perm: st.st_mode & 0o7777,
            uid: st.st_uid,
            gid: st.st_gid,
            size: st.st_size as u64,
            atime: Timespec { sec: st.st_atime, nsec: st.st_atime_nsec as u32 },
            mtime: Timespec { sec: st.st_mtime, nsec: st.st_mtime_nsec as u32 },
            ctime: Timespec { sec: st.st_ctime, nsec: st.st_ctime_nsec as u32 },
            dev: st.st_dev,
            ino: st.st_ino,
            rdev: st.st_rdev,
            nlink: st.st_nlink,
            blocks: st.st_blocks as u64,
        })
    }
}

/// `fstatat(dir, name, AT_SYMLINK_NOFOLLOW)`.
pub fn lstat_at(dir: BorrowedFd<'_>, name: &CStr) -> io::Result<Meta> {
    let mut st = std::mem::MaybeUninit::<libc::stat>::uninit();
    // SAFETY: valid fd, NUL-terminated name, and st is written by the kernel on success.
    let rc = unsafe { libc::fstatat(dir.as_raw_fd(), name.as_ptr(), st.as_mut_ptr(), libc::AT_SYMLINK_NOFOLLOW) };
    if rc != 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: the call succeeded, so the kernel filled st.
    let st = unsafe { st.assume_init() };
    Meta::from_stat(&st)
}

/// `fstat(fd)`.
pub(crate) fn fstat(fd: BorrowedFd<'_>) -> io::Result<Meta> {
    let mut st = std::mem::MaybeUninit::<libc::stat>::uninit();
    // SAFETY: as above.
    let rc = unsafe { libc::fstat(fd.as_raw_fd(), st.as_mut_ptr()) };
    if rc != 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: the call succeeded, so the kernel filled st.
    let st = unsafe { st.assume_init() };
    Meta::from_stat(&st)
}

/// Where an entry lives, as statx reports it: enough to tell whether a
/// directory is on the same mount as another without reading mountinfo.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct MountKey {
    pub kind: Option<Kind>,
    pub dev: u64,
    /// The mount ID (STATX_MNT_ID, Linux 5.8+); `None` on older kernels.
    pub mnt_id: Option<u64>,
    /// STATX_ATTR_MOUNT_ROOT, when the kernel reports it.
    pub mount_root: Option<bool>,
}

impl MountKey {
    /// Whether `self` is on another mount than `root`: by mount ID where the
    /// kernel gives one (this catches a bind mount of the same filesystem),
    /// else by device or the mount-root attribute.
    pub(crate) fn crosses_from(&self, root: &MountKey) -> bool {
        match (self.mnt_id, root.mnt_id) {
            (Some(a), Some(b)) => a != b,
            _ => self.dev != root.dev || self.mount_root == Some(true),
        }
    }
}

/// statx of `name` in `dir` (never following a symlink), or of `dir`
/// itself when `name` is empty.
pub(crate) fn mount_key(dir: BorrowedFd<'_>, name: &CStr) -> io::Result<MountKey> {
    let mut stx = std::mem::MaybeUninit::<libc::statx>::zeroed();
    let empty = if name.is_empty() { libc::AT_EMPTY_PATH } else { 0 };
    let mask = libc::STATX_TYPE | libc::STATX_INO | libc::STATX_MNT_ID;
    // SAFETY: valid fd and name; stx is a plain struct written by the kernel.
    let rc = unsafe { libc::statx(dir.as_raw_fd(), name.as_ptr(), libc::AT_SYMLINK_NOFOLLOW | empty, mask, stx.as_mut_ptr()) };
    if rc != 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: zero-initialised plain data, filled by the kernel.
    let stx = unsafe { stx.assume_init() };
    let root = libc::STATX_ATTR_MOUNT_ROOT as u64;
    Ok(MountKey {
        kind: Kind::from_mode(u32::from(stx.stx_mode)),
        dev: libc::makedev(stx.stx_dev_major, stx.stx_dev_minor),
        mnt_id: (stx.stx_mask & libc::STATX_MNT_ID != 0).then_some(stx.stx_mnt_id),
        mount_root: (stx.stx_attributes_mask & root != 0).then_some(stx.stx_attributes & root != 0),
    })
}

/// Whether `name` in `dir` is the root of a mount (statx STATX_ATTR_MOUNT_ROOT),
/// which also catches bind mounts of the same filesystem that `st_dev` misses;
/// `None` on kernels that do not report it (before 5.8).
pub(crate) fn is_mount_root(dir: BorrowedFd<'_>, name: &CStr) -> io::Result<Option<bool>> {
    let mut stx = std::mem::MaybeUninit::<libc::statx>::zeroed();
    // SAFETY: valid fd and name; stx is a plain struct written by the kernel.
    let rc = unsafe { libc::statx(dir.as_raw_fd(), name.as_ptr(), libc::AT_SYMLINK_NOFOLLOW, libc::STATX_BASIC_STATS, stx.as_mut_ptr()) };
    if rc != 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: zero-initialised plain data, filled by the kernel.
    let stx = unsafe { stx.assume_init() };
    let mask = libc::STATX_ATTR_MOUNT_ROOT as u64;
    Ok((stx.stx_attributes_mask & mask != 0).then_some(stx.stx_attributes & mask != 0))
}
