//! The copy engine: makes DST an exact replica of SRC and writes SRC's
//! manifest in the same pass. With `delete`, DST may hold an earlier copy and
//! only what changed is rewritten (the relocation's final sync).

mod delta;
pub mod file;
mod visitor;

use std::os::fd::AsFd;
use std::path::{Path, PathBuf};

use crate::error::{Error, Result};
use crate::manifest::Writer;
use crate::progress::Progress;
use crate::sys;
use crate::tree::{WalkOptions, WalkStats, walk};

pub use visitor::CopyVisitor;

#[derive(Debug, Clone, Default)]
pub struct CopyOptions {
    /// DST may hold an earlier copy: update it and remove what SRC lacks.
    pub delete: bool,
    /// Compare content in full to decide what changed (delta mode).
    pub checksum: bool,
    /// SRC may change during the copy: count races instead of failing.
    pub live: bool,
    /// Turn aligned zero blocks into holes.
    pub sparsify: bool,
    /// Share each file's data with FICLONE instead of copying it (same
    /// filesystem only; metadata is written as usual). Nothing is read, so
    /// there is no content hash and no manifest.
    pub clone: bool,
    /// The manifest of the previous copy into DST (delta change detection).
    pub baseline: Option<PathBuf>,
    /// Where to write SRC's manifest.
    pub manifest: Option<PathBuf>,
    pub threads: usize,
}

#[derive(Debug, Default, serde::Serialize)]
pub struct CopySummary {
    #[serde(flatten)]
    pub stats: WalkStats,
    pub errors: Vec<String>,
}

impl CopySummary {
    pub fn ok(&self) -> bool {
        self.errors.is_empty()
    }
}

/// Opens (creating if absent) the destination root and checks it may be used.
fn open_dst(dst: &Path, delete: bool) -> Result<std::os::fd::OwnedFd> {
    let refuse = |msg: &str| Error::Refused { path: dst.display().to_string(), msg: msg.to_string() };
    match std::fs::symlink_metadata(dst) {
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            std::fs::create_dir(dst).map_err(|e| Error::io("create", dst, b"", e))?;
        }
        Err(e) => return Err(Error::io("stat", dst, b"", e)),
        Ok(m) if !m.is_dir() => {
            return Err(refuse("the destination exists and is not a directory"));
        }
        Ok(_) => {}
    }
    let fd = sys::open_dir_path(dst).map_err(|e| Error::io("open", dst, b"", e))?;
    if !delete && !sys::list_dir(fd.as_fd()).map_err(|e| Error::io("list", dst, b"", e))?.is_empty() {
        return Err(refuse("the destination is not empty; choose an empty directory, or pass --delete to update an earlier copy"));
    }
    Ok(fd)
}

fn check_disjoint(src: &Path, dst: &Path) -> Result<()> {
    let (s, d) = (std::fs::canonicalize(src), std::fs::canonicalize(dst));
    if let (Ok(s), Ok(d)) = (s, d)
        && (d.starts_with(&s) || s.starts_with(&d))
    {
        return Err(Error::Refused {
            path: dst.display().to_string(),
            msg: format!("the destination and the source {} overlap; choose a directory outside the source", s.display()),
        });
    }
    Ok(())
}

/// Copies `src` to `dst`. Per-entry errors are collected in the summary; an
/// error is returned only when the copy cannot start or the manifest cannot be
/// written.
pub fn copy_tree(src: &Path, dst: &Path, opts: &CopyOptions, progress: &dyn Progress) -> Result<CopySummary> {
    sys::open_dir_path(src).map_err(|e| Error::io("open source", src, b"", e))?;
    check_disjoint(src, dst)?;
    if opts.clone && (opts.manifest.is_some() || opts.delete || opts.sparsify) {
        return Err(Error::Refused {
            path: dst.display().to_string(),
            msg: "a clone reads no data: it cannot write a manifest, update an earlier copy or sparsify".into(),
        });
    }
    let dst_fd = open_dst(dst, opts.delete)?;
    check_disjoint(src, dst)?;
    let mut writer = opts.manifest.as_deref().map(Writer::create).transpose()?;
    let visitor = CopyVisitor::new(src, dst, opts);
    let wopts = WalkOptions {
        root: src.to_path_buf(),
        threads: opts.threads.max(1),
        live: opts.live,
        baseline: opts.baseline.clone(),
        only: None,
        private: false,
    };
    let mut summary = CopySummary::default();
    let mut fatal = None;
    progress.phase("copy", None);
    summary.stats = walk(&wopts, &visitor, Some(dst_fd), progress, |r| match r {
        Ok(o) => {
            if let (Some(w), Some(rec), None) = (writer.as_mut(), o.record, &fatal)
                && let Err(e) = w.push(&rec)
            {
                fatal = Some(e);
            }
        }
        Err(e) => summary.errors.push(e.to_string()),
    })?;
    progress.finish();
    if visitor.flattened() > 0 {
        progress.warn(&format!(
            "{}: {} btrfs subvolume(s) of the source became plain directories (the destination is not btrfs; the btrfs storage driver cannot use them)",
            dst.display(),
            visitor.flattened()
        ));
    }
    for m in &summary.stats.mount_points {
        progress.warn(&format!("{m}: a mount point; its contents were not copied (dockroot stays on one filesystem)"));
    }
    let st = &summary.stats;
    progress.log(&format!(
        "copy: {} mount points skipped, {} entries changed or vanished during the copy{}",
        st.mount_points.len(),
        st.raced,
        if opts.delete { format!(", {} rewritten", st.rewritten) } else { String::new() }
    ));
    if let Some(e) = fatal {
        return Err(e);
    }
    if let Some(w) = writer {
        // A manifest of a copy with errors would claim entries that are not there.
        if summary.errors.is_empty() {
            w.finish()?;
        }
    }
    Ok(summary)
}
