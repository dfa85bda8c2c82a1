//! A quick metadata-only count of a tree (entries, logical bytes), used only to
//! give a progress bar its total and ETA. It uses plain paths (walkdir), so
//! entries deeper than PATH_MAX are left out of the estimate; the real walk
//! is fd-based and handles them.

use std::path::Path;

pub fn estimate(root: &Path) -> (u64, u64) {
    let (mut entries, mut bytes) = (0u64, 0u64);
    for e in walkdir::WalkDir::new(root).follow_links(false).same_file_system(true).into_iter().flatten() {
        entries += 1;
        if e.file_type().is_file() {
            bytes += e.metadata().map(|m| m.len()).unwrap_or(0);
        }
    }
    (entries, bytes)
}
