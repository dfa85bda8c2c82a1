//! What the target filesystem can hold, found by trying: Docker's layers need
//! whiteouts (0:0 character devices), `trusted.overlay.opaque` and
//! `security.capability` xattrs, and a readdir that reports file types
//! (overlay2 refuses d_type-less filesystems such as xfs with ftype=0).
//! Everything is done in a temporary directory that is removed afterwards.

use std::path::{Path, PathBuf};

use serde::Serialize;

/// The outcome of probing a target filesystem.
#[derive(Debug, Clone, Default, Serialize)]
pub struct ProbeResult {
    pub fs_type: String,
    pub free_bytes: u64,
    pub mknod_whiteout: bool,
    pub xattr_opaque: bool,
    pub xattr_capability: bool,
    pub d_type: bool,
    /// Human-readable reasons the target cannot hold a data-root.
    pub problems: Vec<String>,
}

impl ProbeResult {
    pub fn ok(&self) -> bool {
        self.problems.is_empty()
    }
}

/// Names a filesystem from statfs' `f_type`.
pub(crate) fn fs_type_name(magic: i64) -> String {
    match magic {
        0xEF53 => "ext4".into(),
        0x5846_5342 => "xfs".into(),
        0x9123_683E => "btrfs".into(),
        0x0102_1994 => "tmpfs".into(),
        0x794C_7630 => "overlay".into(),
        0x2FC1_2FC1 => "zfs".into(),
        0x6969 => "nfs".into(),
        0xF2F5_2010 => "f2fs".into(),
        0x6573_5546 => "fuse".into(),
        0x5346_544E => "ntfs".into(),
        0x4d44 => "vfat".into(),
        m => format!("unknown (0x{m:x})"),
    }
}

/// statfs of `path`: (fs type name, free bytes for root).
pub(crate) fn statfs(path: &Path) -> std::io::Result<(String, u64)> {
    let (f_type, free) = crate::sys::process::statfs(path)?;
    Ok((fs_type_name(f_type), free))
}

/// The nearest existing ancestor of `path` (the target itself may not exist yet).
pub(crate) fn existing_ancestor(path: &Path) -> PathBuf {
    let mut p = path.to_path_buf();
    while !p.exists() {
        if !p.pop() {
            return PathBuf::from("/");
        }
    }
    p
}

/// Probes the filesystem holding `path` (or its nearest existing ancestor).
pub(crate) fn probe(path: &Path) -> ProbeResult {
    let base = existing_ancestor(path);
    let mut r = ProbeResult::default();
    match statfs(&base) {
        Ok((t, free)) => (r.fs_type, r.free_bytes) = (t, free),
        Err(e) => r.problems.push(format!("statfs {}: {e}", base.display())),
    }
    let dir = base.join(format!(".dockroot-probe-{}", std::process::id()));
    if let Err(e) = std::fs::create_dir(&dir) {
        r.problems.push(format!("cannot create probe directory {}: {e}", dir.display()));
        return r;
    }
    run_probes(&dir, &mut r);
    if let Err(e) = std::fs::remove_dir_all(&dir) {
        r.problems.push(format!("cannot remove probe directory {}: {e}", dir.display()));
    }
    r
}

fn run_probes(dir: &Path, r: &mut ProbeResult) {
    let wh = dir.join("whiteout");
    r.mknod_whiteout =
        nix::sys::stat::mknod(&wh, nix::sys::stat::SFlag::S_IFCHR, nix::sys::stat::Mode::from_bits_truncate(0o600), 0).is_ok();
    if !r.mknod_whiteout {
        let e = std::io::Error::last_os_error();
        r.problems.push(format!("cannot create a 0:0 character device (overlay whiteout) in {}: {e}", dir.display()));
    }
    let sub = dir.join("sub");
    let _ = std::fs::create_dir(&sub);
    r.xattr_opaque = xattr::set(&sub, "trusted.overlay.opaque", b"y").is_ok();
    if !r.xattr_opaque {
        r.problems.push(format!("cannot set trusted.overlay.opaque on {}: trusted xattrs unsupported", sub.display()));
    }
    let file = dir.join("file");
    let _ = std::fs::write(&file, b"");
    // A VFS_CAP_REVISION_2 value granting cap_net_raw (bit 13), effective.
    let cap: [u8; 20] = [1, 0, 0, 2, 0, 0x20, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0];
    r.xattr_capability = xattr::set(&file, "security.capability", &cap).is_ok();
    if !r.xattr_capability {
        r.problems.push(format!("cannot set security.capability on {}: file capabilities unsupported", file.display()));
    }
    r.d_type = d_type_works(dir);
    if !r.d_type {
        r.problems.push(format!(
            "readdir on {} reports no file types (d_type): overlay2 cannot use it (for xfs: mkfs.xfs -n ftype=1)",
            dir.display()
        ));
    }
}

/// Whether readdir reports `sub` as DT_DIR (not DT_UNKNOWN).
fn d_type_works(dir: &Path) -> bool {
    let Ok(mut d) = nix::dir::Dir::open(dir, nix::fcntl::OFlag::O_RDONLY | nix::fcntl::OFlag::O_DIRECTORY, nix::sys::stat::Mode::empty())
    else {
        return false;
    };
    d.iter().flatten().any(|e| e.file_name().to_bytes() == b"sub" && e.file_type() == Some(nix::dir::Type::Directory))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn probe_a_temp_dir() {
        let d = tempfile::tempdir().unwrap();
        let r = probe(&d.path().join("not/yet"));
        assert!(r.d_type, "{r:?}");
        assert!(!r.fs_type.is_empty());
        assert_eq!(std::fs::read_dir(d.path()).unwrap().count(), 0);
        assert_eq!(fs_type_name(0x58465342), "xfs");
    }
}
