//! Walks a tree to write its manifest or to check it against one. This sits
//! above both `tree` (the walk) and `manifest` (the entry model and the
//! comparison), so neither of those depends on the other's upper half.

use std::path::Path;

use crate::error::{Error, Result};
use crate::manifest::compare::{Field, Report, compare, diff};
use crate::manifest::{Reader, Writer, order};
use crate::progress::Progress;
use crate::tree::scan::Scan;
use crate::tree::{WalkOptions, walk};

/// Checks the tree at `root` against the manifest at `manifest`.
pub fn verify_tree(root: &Path, manifest: &Path, threads: usize, progress: &dyn Progress) -> Result<Report> {
    verify_tree_since(root, manifest, None, threads, progress)
}

/// [`verify_tree`] of a restore's staging tree for the data-root or
/// containerd's root, walked as private (`tree::WalkOptions::private`) when
/// its root is closed to others. Whoever can reach such a tree, a sibling of
/// the live data-root, can already write the data-root itself; a bind
/// source's staging tree is not one of these (a container may mount its parent).
pub fn verify_staged(root: &Path, manifest: &Path, threads: usize, progress: &dyn Progress) -> Result<Report> {
    let opts = WalkOptions { root: root.to_path_buf(), threads, live: false, baseline: None, only: None, private: true };
    verify_walk(&opts, manifest, progress)
}

/// [`verify_tree`], reading only the content of files that changed since
/// `trusted`, an earlier manifest of this same tree whose hashes were read
/// from it (inode, ctime, size and mtime decide, see `tree::scan`). The
/// metadata of every entry is compared. `bytes` counts what was read.
pub fn verify_tree_since(root: &Path, manifest: &Path, trusted: Option<&Path>, threads: usize, progress: &dyn Progress) -> Result<Report> {
    let baseline = trusted.map(Path::to_path_buf);
    let opts = WalkOptions { root: root.to_path_buf(), threads, live: false, baseline, only: None, private: false };
    verify_walk(&opts, manifest, progress)
}

/// Walks `opts.root` and compares each entry with `manifest`.
fn verify_walk(opts: &WalkOptions, manifest: &Path, progress: &dyn Progress) -> Result<Report> {
    let root = &opts.root;
    let mut reader = Reader::open(manifest)?;
    let mut report = Report::default();
    let mut fatal: Option<Error> = None;
    let scan = Scan { root: root.to_path_buf(), live: false };
    progress.phase("verify", None);
    let stats = walk(opts, &scan, None, progress, |r| match r {
        Ok(o) => {
            let Some(got) = o.record else { return };
            if fatal.is_some() {
                return;
            }
            // Manifest entries before this path are missing from the tree.
            loop {
                match reader.peek() {
                    Ok(Some(w)) if order::cmp(&w.path, &got.path).is_lt() => {
                        let p = w.path.clone();
                        let _ = reader.next_record();
                        report.add(diff(&p, Field::Missing, String::new()));
                    }
                    Ok(_) => break,
                    Err(e) => {
                        fatal = Some(e);
                        return;
                    }
                }
            }
            match reader.seek_to(&got.path) {
                Ok(Some(want)) => compare(&want, &got).into_iter().for_each(|d| report.add(d)),
                Ok(None) => report.add(diff(&got.path, Field::Extra, String::new())),
                Err(e) => fatal = Some(e),
            }
        }
        Err(e) => report.errors.push(e.to_string()),
    })?;
    progress.finish();
    if let Some(e) = fatal {
        return Err(e);
    }
    while let Some(w) = reader.next_record()? {
        report.add(diff(&w.path, Field::Missing, String::new()));
    }
    report.entries = stats.entries;
    report.bytes = stats.bytes;
    Ok(report)
}

/// Summary of writing a manifest.
#[derive(Debug, Default, serde::Serialize)]
pub struct ScanSummary {
    pub entries: u64,
    pub bytes: u64,
    pub mount_points: Vec<String>,
    pub errors: Vec<String>,
}

/// Writes the manifest of the tree at `root` to `out` (`-` for stdout).
pub fn write_manifest(root: &Path, out: &Path, threads: usize, progress: &dyn Progress) -> Result<ScanSummary> {
    write_manifest_since(root, out, None, threads, progress)
}

/// [`write_manifest`], reading only files changed since `trusted` (see
/// [`verify_tree_since`]); `bytes` counts what was read.
pub fn write_manifest_since(
    root: &Path,
    out: &Path,
    trusted: Option<&Path>,
    threads: usize,
    progress: &dyn Progress,
) -> Result<ScanSummary> {
    let mut w = Writer::create(out)?;
    let mut summary = ScanSummary::default();
    let mut fatal = None;
    let baseline = trusted.map(Path::to_path_buf);
    let opts = WalkOptions { root: root.to_path_buf(), threads, live: false, baseline, only: None, private: false };
    let scan = Scan { root: root.to_path_buf(), live: false };
    progress.phase("manifest", None);
    let stats = walk(&opts, &scan, None, progress, |r| match r {
        Ok(o) => {
            if let (Some(rec), None) = (o.record, &fatal)
                && let Err(e) = w.push(&rec)
            {
                fatal = Some(e);
            }
        }
        Err(e) => summary.errors.push(e.to_string()),
    })?;
    progress.finish();
    if let Some(e) = fatal {
        return Err(e);
    }
    if summary.errors.is_empty() {
        w.finish()?;
    }
    summary.entries = stats.entries;
    summary.bytes = stats.bytes;
    summary.mount_points = stats.mount_points;
    Ok(summary)
}
