//! The one tree deleter. Every recursive deletion in dockroot (a staging
//! tree, a finalized old data-root, a partial copy, an entry a delta sync or
//! an extraction replaces) goes through here, so one rule holds everywhere:
//! **no deletion crosses a mount.** A directory whose mount ID differs from
//! the tree's (statx `STATX_MNT_ID`, which also tells a bind mount of the
//! same filesystem apart; device and `STATX_ATTR_MOUNT_ROOT` on kernels
//! before 5.8) is never descended into: the deletion fails on it and names
//! it. A container's overlay, a tmpfs or a disk someone mounted inside an
//! old tree therefore stops `finalize` instead of being emptied (issue 17).
//!
//! Everything is fd-relative, so trees deeper than PATH_MAX can go, and each
//! directory is checked again through the fd it is opened with, so a mount
//! that appears between the check and the open is caught too.

use std::ffi::{CStr, OsStr};
use std::io;
use std::os::fd::{AsFd, BorrowedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

use super::fs::{list_dir, open_dir_at, open_dir_path, rmdir_at, unlink_at};
use super::stat::{Kind, MountKey, mount_key};

/// The deletion reached a directory on another mount and stopped there.
#[derive(Debug, thiserror::Error)]
#[error(
    "{} is a mount point inside the tree being deleted; dockroot never deletes across a mount: unmount it (or move what is mounted there out of the tree) and try again",
    path.display()
)]
pub struct CrossesMount {
    /// The mount point, relative to the directory the deletion started in.
    pub path: PathBuf,
}

fn crosses(rel: &Path) -> io::Error {
    io::Error::other(CrossesMount { path: rel.into() })
}

/// Removes `name` in `dir`, recursively if it is a directory. The tree is
/// `dir`'s mount: `name` itself, or any directory below it, on another mount
/// fails with [`CrossesMount`] before anything in it is touched.
pub(crate) fn remove_tree_at(dir: BorrowedFd<'_>, name: &CStr) -> io::Result<()> {
    let root = mount_key(dir, c"")?;
    let mut rel = PathBuf::from(os(name));
    remove_in(dir, name, &root, &mut rel)
}

/// Removes the tree at `path` (nothing when it does not exist). `path`
/// itself must be on its parent's mount.
pub(crate) fn remove_tree(path: &Path) -> io::Result<()> {
    let (Some(parent), Some(name)) = (path.parent(), path.file_name()) else {
        return Err(io::Error::new(io::ErrorKind::InvalidInput, "refusing to delete a path without a parent"));
    };
    let dir = open_dir_path(if parent.as_os_str().is_empty() { Path::new(".") } else { parent })?;
    let name = super::path_cstr(Path::new(name))?;
    match remove_tree_at(dir.as_fd(), &name) {
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
        Err(e) if e.get_ref().is_some_and(|i| i.is::<CrossesMount>()) => Err(crosses(&path_of(path, &e))),
        r => r,
    }
}

/// Removes everything inside the directory `path`, which stays (it may be a
/// mount point itself: the tree is its own mount).
pub(crate) fn clear_dir(path: &Path) -> io::Result<()> {
    let dir = match open_dir_path(path) {
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(()),
        r => r?,
    };
    let root = mount_key(dir.as_fd(), c"")?;
    for child in list_dir(dir.as_fd())? {
        let mut rel = path.join(os(&child));
        remove_in(dir.as_fd(), &child, &root, &mut rel)?;
    }
    Ok(())
}

/// The absolute mount point named by a [`CrossesMount`] relative to `path`'s parent.
fn path_of(path: &Path, e: &io::Error) -> PathBuf {
    let rel = e.get_ref().and_then(|i| i.downcast_ref::<CrossesMount>()).map(|c| c.path.clone()).unwrap_or_default();
    path.parent().map(|p| p.join(&rel)).unwrap_or(rel)
}

fn remove_in(dir: BorrowedFd<'_>, name: &CStr, root: &MountKey, rel: &mut PathBuf) -> io::Result<()> {
    let key = mount_key(dir, name)?;
    if key.kind != Some(Kind::Dir) {
        return unlink_at(dir, name);
    }
    if key.crosses_from(root) {
        return Err(crosses(rel));
    }
    let sub = open_dir_at(dir, name)?;
    // Checked again on the fd: a mount made since the statx is not entered.
    if mount_key(sub.as_fd(), c"")?.crosses_from(root) {
        return Err(crosses(rel));
    }
    // A read-only btrfs subvolume (the btrfs storage driver's layers) is
    // made writable first; an empty subvolume then goes with rmdir (4.18+).
    let ino = super::stat::lstat_at(dir, name)?.ino;
    if super::btrfs::subvolume(sub.as_fd(), ino)?.is_some_and(|s| s.read_only) {
        super::btrfs::set_read_only(sub.as_fd(), false)?;
    }
    for child in list_dir(sub.as_fd())? {
        rel.push(os(&child));
        let r = remove_in(sub.as_fd(), &child, root, rel);
        rel.pop();
        r?;
    }
    rmdir_at(dir, name)
}

/// A C name as an `OsStr`.
fn os(name: &CStr) -> &OsStr {
    OsStr::from_bytes(name.to_bytes())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(dev: u64, mnt_id: Option<u64>, mount_root: Option<bool>) -> MountKey {
        MountKey { kind: Some(Kind::Dir), dev, mnt_id, mount_root }
    }

    #[test]
    fn a_mount_is_told_by_its_id_else_by_device_or_the_root_attribute() {
        let root = key(1, Some(10), Some(false));
        assert!(!key(1, Some(10), Some(false)).crosses_from(&root));
        // A bind mount of the same filesystem: same device, another mount.
        assert!(key(1, Some(11), Some(true)).crosses_from(&root));
        let old = key(1, None, None);
        assert!(!key(1, None, None).crosses_from(&old));
        assert!(key(2, None, None).crosses_from(&old));
        assert!(key(1, None, Some(true)).crosses_from(&old));
    }

    #[test]
    fn removes_a_deep_tree_and_empties_a_directory() {
        let d = tempfile::tempdir().unwrap();
        let t = d.path().join("t");
        let mut p = t.clone();
        for i in 0..30 {
            p = p.join(format!("level-{i:02}-{}", "x".repeat(100)));
        }
        std::fs::create_dir_all(&p).unwrap();
        std::fs::write(t.join("f"), "x").unwrap();
        std::os::unix::fs::symlink("/etc", t.join("l")).unwrap();
        clear_dir(&t).unwrap();
        assert_eq!(std::fs::read_dir(&t).unwrap().count(), 0);
        std::fs::create_dir(t.join("sub")).unwrap();
        remove_tree(&t).unwrap();
        assert!(!t.exists() && Path::new("/etc/hostname").exists());
        remove_tree(&t).unwrap(); // absent: nothing to do
    }

    /// A real tmpfs and a real bind mount of the same filesystem inside a
    /// tree: the deletion fails on each, naming it, and what is mounted there
    /// is untouched. Needs root (mount).
    #[test]
    fn deletion_stops_at_a_tmpfs_and_at_a_bind_mount_of_the_same_filesystem() {
        assert!(nix::unistd::geteuid().is_root(), "this test mounts a tmpfs: run it as root");
        use nix::mount::{MsFlags, mount, umount};
        let d = tempfile::tempdir().unwrap();
        let t = d.path().join("tree");
        let (tmp, bind, src) = (t.join("a/tmpfs"), t.join("b/bind"), d.path().join("src"));
        for p in [&tmp, &bind, &src] {
            std::fs::create_dir_all(p).unwrap();
        }
        std::fs::write(t.join("a/file"), "x").unwrap();
        std::fs::write(src.join("precious"), "keep").unwrap();
        mount(Some("tmpfs"), &tmp, Some("tmpfs"), MsFlags::empty(), None::<&str>).unwrap();
        std::fs::write(tmp.join("precious"), "keep").unwrap();
        mount(Some(&src), &bind, None::<&str>, MsFlags::MS_BIND, None::<&str>).unwrap();
        let e = remove_tree(&t).unwrap_err();
        let msg = e.to_string();
        assert!(msg.contains("mount point") && msg.contains(&tmp.display().to_string()), "{msg}");
        assert_eq!(std::fs::read_to_string(tmp.join("precious")).unwrap(), "keep");
        umount(&tmp).unwrap();
        let e = clear_dir(&t).unwrap_err().to_string();
        assert!(e.contains(&bind.display().to_string()), "{e}");
        assert_eq!(std::fs::read_to_string(src.join("precious")).unwrap(), "keep");
        // The tree root itself on another mount: refused too.
        let e = remove_tree(&bind).unwrap_err().to_string();
        assert!(e.contains("mount point"), "{e}");
        umount(&bind).unwrap();
        remove_tree(&t).unwrap();
        assert!(!t.exists() && src.join("precious").exists());
    }

    /// One deleter: outside this file, no code (tests aside) deletes a tree
    /// with `remove_dir_all` or a deleter of its own.
    #[test]
    fn every_tree_deletion_goes_through_this_module() {
        let mut bad = Vec::new();
        let mut stack = vec![Path::new(env!("CARGO_MANIFEST_DIR")).join("src")];
        while let Some(dir) = stack.pop() {
            for e in std::fs::read_dir(&dir).unwrap() {
                let p = e.unwrap().path();
                if p.is_dir() {
                    stack.push(p);
                } else if p.extension().is_some_and(|x| x == "rs") && !p.ends_with("sys/remove.rs") {
                    let text = std::fs::read_to_string(&p).unwrap();
                    let code = text.split("#[cfg(test)]").next().unwrap_or("");
                    for (n, line) in code.lines().enumerate() {
                        if line.contains("remove_dir_all") || line.contains("fn remove_tree") {
                            bad.push(format!("{}:{}: {}", p.display(), n + 1, line.trim()));
                        }
                    }
                }
            }
        }
        assert!(bad.is_empty(), "delete trees with sys::remove (it stops at mounts):\n{}", bad.join("\n"));
    }
}
