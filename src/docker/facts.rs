//! Facts about the engine and its data-root that change how a relocation must
//! be done: the engine version, userns-remap subtrees (`<uid>.<gid>/`), trees
//! set aside by an earlier move or restore, mounts still active below the
//! data-root, and the size of the tree (to check free space at the
//! destination). The image store is `super::engine`'s.

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
pub(crate) fn parse_dockerd_version(text: &str) -> Option<EngineVersion> {
    let rest = text.trim().strip_prefix("Docker version ")?;
    let (version, build) = match rest.split_once(',') {
        Some((v, b)) => (v.trim(), b.trim().strip_prefix("build ").map(|s| s.trim().to_string())),
        None => (rest.trim(), None),
    };
    parse_version(version, build)
}

/// Parses a bare version such as `/info`'s `ServerVersion` (`28.5.2+dfsg4`).
pub(crate) fn parse_version(version: &str, build: Option<String>) -> Option<EngineVersion> {
    let core = version.split(['+', '-', '~']).next()?;
    let mut nums = core.split('.').map(|n| n.parse::<u32>().ok());
    let major = nums.next()??;
    let minor = nums.next().flatten().unwrap_or(0);
    let patch = nums.next().flatten().unwrap_or(0);
    Some(EngineVersion { version: version.to_string(), numbers: (major, minor, patch), build })
}

/// How the installed engine relates to the one that wrote a data-root.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum EngineChange {
    /// Same major.minor.patch (packaging suffixes such as `+dfsg1` ignored).
    Same,
    /// The installed engine is newer: Docker upgrades the data in place.
    Upgrade,
    /// The installed engine is older: Docker does not support that.
    Downgrade,
    /// One of the versions could not be parsed.
    Unknown,
}

/// Compares the engine that wrote the data (`archive`) with `installed`.
pub(crate) fn compare_engines(archive: &str, installed: &str) -> EngineChange {
    match (parse_version(archive, None), parse_version(installed, None)) {
        (Some(a), Some(i)) => match i.numbers.cmp(&a.numbers) {
            std::cmp::Ordering::Equal => EngineChange::Same,
            std::cmp::Ordering::Greater => EngineChange::Upgrade,
            std::cmp::Ordering::Less => EngineChange::Downgrade,
        },
        _ => EngineChange::Unknown,
    }
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

pub(crate) fn is_uid_gid(name: &str) -> bool {
    let num = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit());
    name.split_once('.').is_some_and(|(u, g)| num(u) && num(g))
}

/// Infix of a tree a move or restore set aside: `<data-root>.dockroot-old-<UTC time>`.
pub(crate) const OLD_INFIX: &str = ".dockroot-old-";

/// `<data-root>.dockroot-old-*` siblings: trees a move or restore set aside.
pub(crate) fn old_trees(data_root: &Path) -> Vec<PathBuf> {
    let (Some(parent), Some(name)) = (data_root.parent(), data_root.file_name()) else { return Vec::new() };
    let prefix = format!("{}{OLD_INFIX}", name.to_string_lossy());
    let mut v: Vec<PathBuf> = std::fs::read_dir(parent)
        .into_iter()
        .flatten()
        .flatten()
        .filter(|e| e.file_name().to_string_lossy().starts_with(&prefix))
        .map(|e| e.path())
        .collect();
    v.sort();
    v
}

/// Whether a data-root tree holds Docker objects: containers, or a graph
/// driver's image database (`image/<driver>/imagedb/content/sha256/*`).
pub(crate) fn holds_images(tree: &Path) -> bool {
    let non_empty = |p: &Path| std::fs::read_dir(p).is_ok_and(|mut r| r.next().is_some());
    let Ok(drivers) = std::fs::read_dir(tree.join("image")) else { return non_empty(&tree.join("containers")) };
    non_empty(&tree.join("containers")) || drivers.flatten().any(|d| non_empty(&d.path().join("imagedb/content/sha256")))
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
    fn engine_changes() {
        assert_eq!(compare_engines("20.10.24+dfsg1", "20.10.24+dfsg2"), EngineChange::Same);
        assert_eq!(compare_engines("20.10.24+dfsg1", "28.5.2+dfsg4"), EngineChange::Upgrade);
        assert_eq!(compare_engines("28.5.2+dfsg4", "20.10.24+dfsg1"), EngineChange::Downgrade);
        assert_eq!(compare_engines("26.1.5", "26.1.10"), EngineChange::Upgrade);
        assert_eq!(compare_engines("unknown", "26.1.5"), EngineChange::Unknown);
    }

    #[test]
    fn finds_userns_dirs_and_old_trees() {
        let d = tempfile::tempdir().unwrap();
        for n in ["100000.100000", "overlay2", "1.x", "containerd/daemon"] {
            std::fs::create_dir_all(d.path().join(n)).unwrap();
        }
        let dirs = userns_dirs(d.path()).unwrap();
        assert_eq!(dirs, vec![d.path().join("100000.100000")]);
        let dr = d.path().join("docker");
        let old = d.path().join("docker.dockroot-old-20260101T000000Z");
        for p in [dr.join("image/overlay2/imagedb/content/sha256"), old.join("image/overlay2/imagedb/content/sha256")] {
            std::fs::create_dir_all(p).unwrap();
        }
        assert_eq!(old_trees(&dr), vec![old.clone()]);
        assert!(!holds_images(&old));
        std::fs::write(old.join("image/overlay2/imagedb/content/sha256/abc"), "{}").unwrap();
        assert!(holds_images(&old) && !holds_images(&dr));
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
