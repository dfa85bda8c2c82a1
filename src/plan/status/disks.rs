//! The mounted disks, for `status`: a user whose root disk is full needs to
//! see which filesystems could take the data-root, and how much room each has.

use std::path::{Path, PathBuf};

use serde::Serialize;

use crate::docker::mountinfo::{self, MountEntry};

/// One mounted filesystem.
#[derive(Debug, Clone, Serialize)]
pub struct Disk {
    pub mount_point: PathBuf,
    pub fs_type: String,
    /// Space available to unprivileged users (`df`'s "Avail"): what is left
    /// before the filesystem eats into the root reserve.
    pub available_bytes: u64,
    pub total_bytes: u64,
    /// This filesystem holds the data-root.
    pub data_root: bool,
}

/// Filesystem types that cannot take a data-root that must survive a reboot,
/// or that only show another filesystem again. sysinfo already leaves out
/// proc, sysfs, tmpfs and a few more; overlay (container layers), nsfs and
/// the like it lists.
const PSEUDO: &[&str] = &[
    "autofs",
    "binfmt_misc",
    "bpf",
    "cgroup",
    "cgroup2",
    "configfs",
    "debugfs",
    "devpts",
    "devtmpfs",
    "efivarfs",
    "fuse.lxcfs",
    "fuse.portal",
    "fusectl",
    "hugetlbfs",
    "mqueue",
    "nsfs",
    "overlay",
    "proc",
    "pstore",
    "ramfs",
    "securityfs",
    "squashfs",
    "sysfs",
    "tmpfs",
    "tracefs",
];

/// The mounted disks, sorted by mount point, with the one holding
/// `data_root` marked. Pseudo and read-only filesystems, and mounts below
/// the data-root (a volume, container layers), are left out, except the
/// filesystem of the data-root itself, which is always listed.
pub(crate) fn list(mounts: &[MountEntry], data_root: &Path) -> Vec<Disk> {
    let root = std::fs::canonicalize(data_root).unwrap_or_else(|_| data_root.to_path_buf());
    let home = mountinfo::containing(mounts, &root);
    let mut out: Vec<Disk> = Vec::new();
    // Only an unsupported platform fails here (not Linux); the data-root's
    // own filesystem is then still listed, below.
    let found = sysinfo::Disks::new_with_refreshed_list().ok();
    for d in found.iter().flat_map(|d| d.iter()) {
        let mp = d.mount_point();
        let fs_type = d.file_system().to_string_lossy().into_owned();
        let holds = home.is_some_and(|h| h.mount_point == mp);
        if !holds && (PSEUDO.contains(&fs_type.as_str()) || d.is_read_only() || mp.starts_with(&root)) {
            continue;
        }
        // A filesystem mounted over another hides it: keep the later one.
        out.retain(|x| x.mount_point != mp);
        out.push(Disk {
            mount_point: mp.to_path_buf(),
            fs_type,
            available_bytes: d.available_space(),
            total_bytes: d.total_space(),
            data_root: holds,
        });
    }
    // sysinfo skips tmpfs and everything under /run; a data-root there (a
    // test host, a container) is still shown.
    if let Some(h) = home
        && !out.iter().any(|d| d.data_root)
        && let Ok(s) = nix::sys::statvfs::statvfs(&h.mount_point)
    {
        out.push(Disk {
            mount_point: h.mount_point.clone(),
            fs_type: h.fstype.clone(),
            available_bytes: s.blocks_available() * s.fragment_size(),
            total_bytes: s.blocks() * s.fragment_size(),
            data_root: true,
        });
    }
    out.sort_by(|a, b| a.mount_point.cmp(&b.mount_point));
    out
}
