//! btrfs subvolumes: detection, creation, the read-only flag, read-only
//! snapshots and their deletion through the kernel's ioctls (linux/btrfs.h),
//! so no btrfs-progs is needed. A snapshot is atomic and takes about a
//! transaction commit, whatever the size of the subvolume.
//!
//! The btrfs storage driver keeps every layer in a subvolume and snapshots
//! it for the next layer: a copy or restore must recreate a subvolume as a
//! subvolume ([`Subvolume`], [`create`]), or the driver cannot snapshot it.

use std::ffi::CStr;
use std::io;
use std::os::fd::{AsRawFd, BorrowedFd};

use super::check;

/// statfs' `f_type` of btrfs.
pub(crate) const SUPER_MAGIC: i64 = 0x9123_683E;
/// The inode number of every subvolume's root directory.
const SUBVOL_ROOT_INO: u64 = 256;
/// `BTRFS_SUBVOL_RDONLY`: the snapshot is created read-only.
const SUBVOL_RDONLY: u64 = 1 << 1;
/// `BTRFS_PATH_NAME_MAX` + 1: the name field of `btrfs_ioctl_vol_args`.
const VOL_NAME_LEN: usize = 4088;
/// `BTRFS_SUBVOL_NAME_MAX` + 1: the name field of `btrfs_ioctl_vol_args_v2`.
const VOL_NAME_LEN_V2: usize = 4040;

/// `struct btrfs_ioctl_vol_args`.
#[repr(C)]
struct VolArgs {
    fd: i64,
    name: [u8; VOL_NAME_LEN],
}

/// `struct btrfs_ioctl_vol_args_v2` (the qgroup and size union left zero).
#[repr(C)]
struct VolArgsV2 {
    fd: i64,
    transid: u64,
    flags: u64,
    unused: [u64; 4],
    name: [u8; VOL_NAME_LEN_V2],
}

const IOC_SUBVOL_CREATE: libc::Ioctl = nix::request_code_write!(0x94, 14, std::mem::size_of::<VolArgs>()) as libc::Ioctl;
const IOC_SUBVOL_GETFLAGS: libc::Ioctl = nix::request_code_read!(0x94, 25, std::mem::size_of::<u64>()) as libc::Ioctl;
const IOC_SUBVOL_SETFLAGS: libc::Ioctl = nix::request_code_write!(0x94, 26, std::mem::size_of::<u64>()) as libc::Ioctl;
const IOC_SNAP_DESTROY: libc::Ioctl = nix::request_code_write!(0x94, 15, std::mem::size_of::<VolArgs>()) as libc::Ioctl;
const IOC_SNAP_CREATE_V2: libc::Ioctl = nix::request_code_write!(0x94, 23, std::mem::size_of::<VolArgsV2>()) as libc::Ioctl;

fn copy_name(dst: &mut [u8], name: &CStr) -> io::Result<()> {
    let b = name.to_bytes();
    if b.len() >= dst.len() || b.contains(&b'/') || b.is_empty() {
        return Err(io::Error::new(io::ErrorKind::InvalidInput, "not a valid subvolume name"));
    }
    dst[..b.len()].copy_from_slice(b);
    Ok(())
}

/// Whether `fd` is on btrfs.
pub(crate) fn is_btrfs(fd: BorrowedFd<'_>) -> io::Result<bool> {
    let s = nix::sys::statfs::fstatfs(fd).map_err(io::Error::from)?;
    #[allow(clippy::unnecessary_cast)]
    Ok(s.filesystem_type().0 as i64 == SUPER_MAGIC)
}

/// Whether the directory `fd` is the root of a btrfs subvolume.
pub(crate) fn is_subvolume(fd: BorrowedFd<'_>) -> io::Result<bool> {
    Ok(is_btrfs(fd)? && super::stat::fstat(fd)?.ino == SUBVOL_ROOT_INO)
}

/// A directory that is the root of a btrfs subvolume, as copies and
/// archives carry it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Subvolume {
    /// `BTRFS_SUBVOL_RDONLY`: set on the copy only after its contents are written.
    pub read_only: bool,
}

/// The subvolume whose root is the directory `fd` (stat'ed as `ino`), or
/// None for any other directory. Only inode 256 can be a subvolume root, so
/// other directories cost no syscall.
pub(crate) fn subvolume(fd: BorrowedFd<'_>, ino: u64) -> io::Result<Option<Subvolume>> {
    if ino != SUBVOL_ROOT_INO || !is_btrfs(fd)? {
        return Ok(None);
    }
    Ok(Some(Subvolume { read_only: read_only(fd)? }))
}

/// Whether the subvolume whose root is `fd` is read-only.
pub(crate) fn read_only(fd: BorrowedFd<'_>) -> io::Result<bool> {
    let mut flags: u64 = 0;
    // SAFETY: the kernel writes one u64.
    check(unsafe { libc::ioctl(fd.as_raw_fd(), IOC_SUBVOL_GETFLAGS, &mut flags as *mut u64) })?;
    Ok(flags & SUBVOL_RDONLY != 0)
}

/// Sets or clears the read-only flag of the subvolume whose root is `fd`
/// (other flags kept). A read-only subvolume refuses every change below it,
/// its root's own metadata included.
pub(crate) fn set_read_only(fd: BorrowedFd<'_>, on: bool) -> io::Result<()> {
    let mut flags: u64 = 0;
    // SAFETY: the kernel writes one u64.
    check(unsafe { libc::ioctl(fd.as_raw_fd(), IOC_SUBVOL_GETFLAGS, &mut flags as *mut u64) })?;
    let want = if on { flags | SUBVOL_RDONLY } else { flags & !SUBVOL_RDONLY };
    if want == flags {
        return Ok(());
    }
    // SAFETY: the kernel reads one u64.
    check(unsafe { libc::ioctl(fd.as_raw_fd(), IOC_SUBVOL_SETFLAGS, &want as *const u64) }).map(|_| ())
}

/// Creates `name` in the directory `parent` as an empty subvolume (root-owned,
/// mode 0755, like `btrfs subvolume create`; the caller applies the metadata).
pub(crate) fn create(parent: BorrowedFd<'_>, name: &CStr) -> io::Result<()> {
    let mut args = VolArgs { fd: 0, name: [0; VOL_NAME_LEN] };
    copy_name(&mut args.name, name)?;
    // SAFETY: the kernel reads a btrfs_ioctl_vol_args of exactly this layout and size.
    check(unsafe { libc::ioctl(parent.as_raw_fd(), IOC_SUBVOL_CREATE, &mut args as *mut VolArgs) }).map(|_| ())
}

/// Creates `name` in the directory `dst_dir` as a read-only snapshot of the
/// subvolume whose root is `src`. Both must be on the same btrfs filesystem.
pub(crate) fn snapshot_readonly(src: BorrowedFd<'_>, dst_dir: BorrowedFd<'_>, name: &CStr) -> io::Result<()> {
    let mut args = VolArgsV2 { fd: src.as_raw_fd() as i64, transid: 0, flags: SUBVOL_RDONLY, unused: [0; 4], name: [0; VOL_NAME_LEN_V2] };
    copy_name(&mut args.name, name)?;
    // SAFETY: the kernel reads a btrfs_ioctl_vol_args_v2 of exactly this layout and size.
    check(unsafe { libc::ioctl(dst_dir.as_raw_fd(), IOC_SNAP_CREATE_V2, &mut args as *mut VolArgsV2) }).map(|_| ())
}

/// Deletes the subvolume `name` in the directory `parent` (read-only ones too).
pub(crate) fn destroy(parent: BorrowedFd<'_>, name: &CStr) -> io::Result<()> {
    let mut args = VolArgs { fd: 0, name: [0; VOL_NAME_LEN] };
    copy_name(&mut args.name, name)?;
    // SAFETY: the kernel reads a btrfs_ioctl_vol_args of exactly this layout and size.
    check(unsafe { libc::ioctl(parent.as_raw_fd(), IOC_SNAP_DESTROY, &mut args as *mut VolArgs) }).map(|_| ())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn argument_structs_have_the_kernel_size() {
        // Both are 4096 bytes in linux/btrfs.h; the ioctl numbers encode it.
        assert_eq!(std::mem::size_of::<VolArgs>(), 4096);
        assert_eq!(std::mem::size_of::<VolArgsV2>(), 4096);
        assert_eq!(IOC_SNAP_CREATE_V2, 0x5000_9417);
        assert_eq!(IOC_SNAP_DESTROY, 0x5000_940f);
        assert_eq!(IOC_SUBVOL_CREATE, 0x5000_940e);
        assert_eq!(IOC_SUBVOL_GETFLAGS, 0x8008_9419);
        assert_eq!(IOC_SUBVOL_SETFLAGS, 0x4008_941a);
    }

    #[test]
    fn names_with_a_slash_are_refused() {
        let mut b = [0u8; 8];
        assert!(copy_name(&mut b, c"a/b").is_err());
        assert!(copy_name(&mut b, c"toolongname").is_err());
        copy_name(&mut b, c"ok").unwrap();
    }
}
