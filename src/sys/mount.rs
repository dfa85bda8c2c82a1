//! Bind mounts and the identity of what a path shows, for replacing the bind
//! mount at a data-root.

use std::os::unix::fs::MetadataExt;
use std::path::Path;

use nix::mount::{MntFlags, MsFlags};

/// Bind-mounts the directory `source` on `target`.
pub(crate) fn bind(source: &Path, target: &Path) -> std::io::Result<()> {
    nix::mount::mount(Some(source), target, None::<&str>, MsFlags::MS_BIND, None::<&str>).map_err(std::io::Error::from)
}

/// Unmounts the top mount at `target`.
pub(crate) fn unmount(target: &Path) -> std::io::Result<()> {
    nix::mount::umount2(target, MntFlags::empty()).map_err(std::io::Error::from)
}

/// Whether `a` and `b` are the same directory (device and inode): a bind
/// mount's target shows its source's inode.
pub(crate) fn same_dir(a: &Path, b: &Path) -> std::io::Result<bool> {
    let (x, y) = (std::fs::metadata(a)?, std::fs::metadata(b)?);
    Ok(x.dev() == y.dev() && x.ino() == y.ino())
}
