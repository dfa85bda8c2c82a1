//! Quick metadata-only measures of a tree: entries, logical bytes (for a
//! progress bar's total and ETA) and allocated bytes (for free-space checks,
//! hardlinked inodes counted once). Plain paths (walkdir) suffice here:
//! entries deeper than PATH_MAX are left out of these numbers only; the real
//! walks are fd-based and handle them. Stays on one filesystem.

use std::collections::HashSet;
use std::os::unix::fs::MetadataExt;
use std::path::Path;

#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Size {
    pub entries: u64,
    /// Logical size of the regular files.
    pub bytes: u64,
    /// Allocated blocks of everything, each hardlinked inode once.
    pub allocated: u64,
}

/// Measures `root`. With `strict`, the first unreadable entry is an error;
/// otherwise unreadable entries are skipped (a progress estimate).
pub fn measure(root: &Path, strict: bool) -> Result<Size, walkdir::Error> {
    let mut s = Size::default();
    let mut seen = HashSet::new();
    for e in walkdir::WalkDir::new(root).follow_links(false).same_file_system(true) {
        let m = match e.and_then(|e| e.metadata()) {
            Ok(m) => m,
            Err(e) if strict => return Err(e),
            Err(_) => continue,
        };
        s.entries += 1;
        if m.is_file() {
            s.bytes += m.len();
        }
        if m.nlink() <= 1 || m.is_dir() || seen.insert((m.dev(), m.ino())) {
            s.allocated += m.blocks() * 512;
        }
    }
    Ok(s)
}

/// (entries, logical bytes), best effort, for progress totals.
pub fn estimate(root: &Path) -> (u64, u64) {
    let s = measure(root, false).unwrap_or_default();
    (s.entries, s.bytes)
}
