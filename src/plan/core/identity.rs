//! Observed means identified, not named (issue 17). Between dockroot's
//! steps others act on the same names: the user deletes the kept old tree,
//! a supervisor starts dockerd, which creates an empty data-root, config
//! management restarts Docker on the old tree. So every intent records the
//! identity (dev:ino) of what it acts on, undo acts only on objects whose
//! identity it finds, and a tree it cannot identify is moved aside and
//! kept, never deleted.

use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::time::SystemTime;

use serde::{Deserialize, Serialize};

use crate::util::atomic;

/// A file or directory's identity: device and inode, as `lstat` reports them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct FileId {
    pub dev: u64,
    pub ino: u64,
}

impl FileId {
    /// The identity of what is at `path` now (never following a last symlink).
    pub(crate) fn of(path: &Path) -> Option<FileId> {
        path.symlink_metadata().ok().map(|m| FileId { dev: m.dev(), ino: m.ino() })
    }

    /// The identity of the directory `path` shows, following symlinks and
    /// mounts: what a process that opens `path` (dockerd) works in.
    pub(crate) fn shown_at(path: &Path) -> Option<FileId> {
        path.metadata().ok().map(|m| FileId { dev: m.dev(), ino: m.ino() })
    }
}

impl std::fmt::Display for FileId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}:{}", self.dev, self.ino)
    }
}

/// Infix of a tree `rollback` found where it did not expect one and kept:
/// `<path>.dockroot-aside-<UTC time>`.
pub(crate) const ASIDE_INFIX: &str = ".dockroot-aside-";

/// `<path>.dockroot-aside-<UTC time>`, a name that does not exist yet.
pub(crate) fn aside_name(path: &Path) -> PathBuf {
    free_name(path, ASIDE_INFIX)
}

/// `<path><infix><UTC time>` (with `.N` appended if taken), a name that does not exist yet.
pub(crate) fn free_name(path: &Path, infix: &str) -> PathBuf {
    let stamp = atomic::utc_timestamp(SystemTime::now());
    let mut p = atomic::with_suffix(path, &format!("{infix}{stamp}"));
    let mut n = 1;
    while p.symlink_metadata().is_ok() {
        p = atomic::with_suffix(path, &format!("{infix}{stamp}.{n}"));
        n += 1;
    }
    p
}

/// "3 days", "2 hours", "5 minutes", "40 seconds": how long ago, in words.
pub(crate) fn ago(secs: u64) -> String {
    let (n, unit) = match secs {
        s if s >= 2 * 86_400 => (s / 86_400, "days"),
        s if s >= 2 * 3_600 => (s / 3_600, "hours"),
        s if s >= 2 * 60 => (s / 60, "minutes"),
        s => (s, "seconds"),
    };
    format!("{n} {unit}")
}

/// Seconds since the epoch now.
pub(crate) fn unix_now() -> u64 {
    SystemTime::now().duration_since(SystemTime::UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn identity_follows_the_object_not_the_name() {
        let d = tempfile::tempdir().unwrap();
        let (a, b) = (d.path().join("a"), d.path().join("b"));
        std::fs::create_dir(&a).unwrap();
        let id = FileId::of(&a).unwrap();
        std::fs::rename(&a, &b).unwrap();
        std::fs::create_dir(&a).unwrap();
        assert_eq!(FileId::of(&b), Some(id));
        assert_ne!(FileId::of(&a), Some(id));
        let aside = aside_name(&a);
        assert!(aside.to_string_lossy().contains(".dockroot-aside-") && !aside.exists());
        assert_eq!(
            (ago(40), ago(600), ago(3 * 3600), ago(3 * 86_400)),
            ("40 seconds".into(), "10 minutes".into(), "3 hours".into(), "3 days".into())
        );
    }
}
