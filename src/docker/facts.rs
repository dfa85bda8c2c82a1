//! Facts about the engine and its data-root that change how a relocation must
//! be done: the engine version, userns-remap subtrees (`<uid>.<gid>/`), the
//! containerd image store (images then live outside the data-root and would be
//! silently left behind), mounts still active below the data-root, and the
//! size of the tree (to check free space at the destination).

use super::daemon_json::DaemonJson;
use super::error::{DockerError, Result};
use std::path::{Path, PathBuf};
use std::process::Command;

pub use super::mountinfo::mounts_below;

/// The engine version as printed by `dockerd --version`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EngineVersion {
    /// The version string, e.g. `20.10.24+dfsg1`.
    pub version: String,
    /// Major, minor, patch numbers parsed from it.
    pub numbers: (u32, u32, u32),
    /// The build id, e.g. `5d6db84`, if printed.
    pub build: Option<String>,
}

/// Parses `Docker version 20.10.24+dfsg1, build 5d6db84`.
pub fn parse_dockerd_version(text: &str) -> Option<EngineVersion> {
    let rest = text.trim().strip_prefix("Docker version ")?;
    let (version, build) = match rest.split_once(',') {
        Some((v, b)) => (v.trim(), b.trim().strip_prefix("build ").map(|s| s.trim().to_string())),
        None => (rest.trim(), None),
    };
    let core = version.split(['+', '-', '~']).next()?;
    let mut nums = core.split('.').map(|n| n.parse::<u32>().ok());
    let major = nums.next()??;
    let minor = nums.next().flatten().unwrap_or(0);
    let patch = nums.next().flatten().unwrap_or(0);
    Some(EngineVersion { version: version.to_string(), numbers: (major, minor, patch), build })
}

/// Runs `<dockerd> --version` and parses it.
pub fn engine_version(dockerd: &Path) -> Result<EngineVersion> {
    let command = format!("{} --version", dockerd.display());
    let out =
        Command::new(dockerd).arg("--version").output().map_err(|source| DockerError::Command { command: command.clone(), source })?;
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    parse_dockerd_version(&text).ok_or(DockerError::CommandOutput { command, output: text })
}

/// The `<uid>.<gid>` directories userns-remap creates in the data-root.
/// Each is a complete data-root of its own, owned by the remapped ids.
pub fn userns_dirs(data_root: &Path) -> Result<Vec<PathBuf>> {
    let rd = std::fs::read_dir(data_root).map_err(|source| DockerError::Read { path: data_root.into(), source })?;
    let mut dirs: Vec<PathBuf> = rd
        .flatten()
        .filter(|e| e.file_type().is_ok_and(|t| t.is_dir()))
        .filter(|e| is_uid_gid(&e.file_name().to_string_lossy()))
        .map(|e| e.path())
        .collect();
    dirs.sort();
    Ok(dirs)
}

fn is_uid_gid(name: &str) -> bool {
    let num = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit());
    name.split_once('.').is_some_and(|(u, g)| num(u) && num(g))
}

/// Where images live when the containerd image store is in use.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ContainerdStore {
    /// The directory holding containerd's content and snapshots.
    pub path: PathBuf,
    /// Why we think the containerd store is used.
    pub reason: String,
}

impl ContainerdStore {
    /// A warning for the user: these images are not inside the data-root.
    pub fn warning(&self) -> String {
        format!(
            "the containerd image store is in use ({}); images and snapshots live in {}, \
             which dockroot does not move or back up with the data-root",
            self.reason,
            self.path.display()
        )
    }
}

/// Detects the containerd image store: `features.containerd-snapshotter` in
/// daemon.json (images in `/var/lib/containerd`, outside the data-root) or a
/// `<data-root>/containerd/daemon` directory (managed containerd inside it).
///
/// `<data-root>/containerd/daemon` is not a sign of it: that is the state of
/// the containerd that dockerd starts itself, inside the data-root, and it
/// moves with it. Only the snapshotter feature puts images in containerd's
/// own root, outside the data-root.
pub fn containerd_store(_data_root: &Path, cfg: &DaemonJson) -> Option<ContainerdStore> {
    cfg.containerd_snapshotter().then(|| ContainerdStore {
        path: PathBuf::from("/var/lib/containerd"),
        reason: format!("features.containerd-snapshotter is true in {}", cfg.path().display()),
    })
}

/// Space used by a tree.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct TreeSize {
    /// Bytes allocated on disk (st_blocks × 512), hard links counted once.
    pub bytes: u64,
    /// Number of entries (files, dirs, links, ...), root included.
    pub entries: u64,
}

/// Measures `root` with lstat, never following symlinks nor crossing into
/// other filesystems (overlay mounts of running containers are skipped).
/// `bytes` is the allocated size, each hardlinked inode counted once.
pub fn tree_size(root: &Path) -> Result<TreeSize> {
    let s = crate::tree::estimate::measure(root, true)
        .map_err(|e| DockerError::Read { path: e.path().unwrap_or(root).to_path_buf(), source: std::io::Error::from(e) })?;
    Ok(TreeSize { entries: s.entries, bytes: s.allocated })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dockerd_version_forms() {
        let v = parse_dockerd_version("Docker version 20.10.24+dfsg1, build 5d6db84\n").unwrap();
        assert_eq!(v.version, "20.10.24+dfsg1");
        assert_eq!(v.numbers, (20, 10, 24));
        assert_eq!(v.build.as_deref(), Some("5d6db84"));
        let v = parse_dockerd_version("Docker version 27.3.1, build 41ca978").unwrap();
        assert_eq!(v.numbers, (27, 3, 1));
        assert_eq!(parse_dockerd_version("Docker version 25.0.0-rc.1").unwrap().numbers, (25, 0, 0));
        assert!(parse_dockerd_version("podman version 4").is_none());
    }

    #[test]
    fn finds_userns_dirs_and_containerd() {
        let d = tempfile::tempdir().unwrap();
        for n in ["100000.100000", "overlay2", "1.x", "containerd/daemon"] {
            std::fs::create_dir_all(d.path().join(n)).unwrap();
        }
        let dirs = userns_dirs(d.path()).unwrap();
        assert_eq!(dirs, vec![d.path().join("100000.100000")]);
        let cfg = DaemonJson::parse(Path::new("/d.json"), b"{}").unwrap();
        // dockerd's own containerd state lives inside the data-root: no warning.
        assert!(containerd_store(d.path(), &cfg).is_none());
        let cfg = DaemonJson::parse(Path::new("/d.json"), br#"{"features":{"containerd-snapshotter":true}}"#).unwrap();
        let other = tempfile::tempdir().unwrap();
        assert_eq!(containerd_store(other.path(), &cfg).unwrap().path, PathBuf::from("/var/lib/containerd"));
    }

    #[test]
    fn size_counts_hardlinks_once() {
        let d = tempfile::tempdir().unwrap();
        std::fs::write(d.path().join("a"), vec![1u8; 64 * 1024]).unwrap();
        std::fs::hard_link(d.path().join("a"), d.path().join("b")).unwrap();
        std::os::unix::fs::symlink("/", d.path().join("l")).unwrap();
        let s = tree_size(d.path()).unwrap();
        assert_eq!(s.entries, 4);
        use std::os::unix::fs::MetadataExt;
        let one = std::fs::metadata(d.path().join("a")).unwrap().blocks() * 512;
        let root = std::fs::metadata(d.path()).unwrap().blocks() * 512;
        assert!(s.bytes >= one + root && s.bytes < 2 * one + root, "{s:?}");
    }
}
