//! Move's passes while Docker runs, so that the downtime grows with what
//! changed rather than with the data-root's size (issue 10).
//!
//! 1. A live copy writes the source manifest `S0` (what was read: inode,
//!    ctime, size, mtime, BLAKE3).
//! 2. The target is read back and its own manifest `T0` written (its inodes,
//!    its hashes); `T0` must match `S0`. Entries only on the target are
//!    sources that vanished during the copy (races): the next pass settles
//!    them. Any other difference ends the move before the stop.
//! 3. Delta passes (`--delete`, baseline `S(k-1)`) rewrite what changed and
//!    write `S(k)`; the target's manifest `T(k)` re-reads only the files the
//!    pass rewrote (baseline `T(k-1)`) and must match `S(k)`. Passes repeat
//!    while the number of rewritten entries shrinks, up to [`MAX_DELTA_PASSES`],
//!    as live migration does with dirty pages.
//!
//! After the stop the sync uses `S(last)` as its baseline, and the verify uses
//! `T(last)`: a target file whose inode, ctime, size and mtime are those of
//! `T(last)` was read back and hashed with Docker running and nothing wrote
//! it since, so only its metadata is compared again.

use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

use serde::Serialize;

use crate::audit::write_manifest_since;
use crate::copy::{CopyOptions, copy_tree};
use crate::manifest::Reader;
use crate::manifest::compare::{Field, compare_manifests};
use crate::plan::core::error::{PlanError, Result};
use crate::progress::Progress;

/// Delta passes after the first copy, at most (each walks the whole source).
pub(crate) const MAX_DELTA_PASSES: usize = 4;

/// What the passes before the stop did.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Passes {
    /// Entries in the data-root at the last pass.
    pub entries: u64,
    /// Entries written by each pass (the first pass writes all of them).
    pub written: Vec<u64>,
    /// Entries that changed or vanished while a pass read them.
    pub raced: u64,
    /// Bytes read back from the target by the verifies before the stop.
    pub verified_bytes: u64,
    /// The last pass's source manifest (the sync's baseline) and the target's
    /// manifest read back from it (the verify's trusted baseline).
    #[serde(skip)]
    pub source_manifest: PathBuf,
    #[serde(skip)]
    pub target_manifest: PathBuf,
}

/// Runs the passes from `src` into `dst`, keeping manifests in `work`.
pub(crate) fn run(src: &Path, dst: &Path, work: &Path, threads: usize, progress: &dyn Progress) -> Result<Passes> {
    let mut p = Passes::default();
    let (mut prev_s, mut prev_t): (Option<PathBuf>, Option<PathBuf>) = (None, None);
    for k in 0..=MAX_DELTA_PASSES {
        let (s, t) = (work.join(format!("precopy-{k}.manifest")), work.join(format!("target-{k}.manifest")));
        let opts = CopyOptions {
            delete: k > 0,
            checksum: false,
            live: true,
            sparsify: false,
            clone: false,
            baseline: prev_s.clone(),
            manifest: Some(s.clone()),
            threads,
        };
        progress.log(&format!("precopy: pass {}", k + 1));
        let sum = copy_tree(src, dst, &opts, progress).map_err(PlanError::engine("precopy"))?;
        if !sum.ok() {
            return Err(PlanError::CopyErrors { step: "precopy", target: dst.into(), errors: sum.errors });
        }
        let written = if k == 0 { sum.stats.entries } else { sum.stats.rewritten };
        p.entries = sum.stats.entries;
        p.raced += sum.stats.raced;
        p.verified_bytes += read_back(dst, &s, &t, prev_t.as_deref(), threads, progress)?;
        for old in [prev_s.replace(s), prev_t.replace(t)].into_iter().flatten() {
            let _ = std::fs::remove_file(old);
        }
        let shrinking = p.written.last().is_none_or(|&last| written < last);
        p.written.push(written);
        if written == 0 || !shrinking {
            break;
        }
    }
    p.source_manifest = prev_s.unwrap_or_default();
    p.target_manifest = prev_t.unwrap_or_default();
    Ok(p)
}

/// Writes the target's manifest `t` (reading only what changed since
/// `trusted`) and checks it against the source manifest `s`. Returns the
/// bytes read.
fn read_back(dst: &Path, s: &Path, t: &Path, trusted: Option<&Path>, threads: usize, progress: &dyn Progress) -> Result<u64> {
    // From the disk, not from the pages the copy left in the cache.
    crate::plan::core::intent::flush("precopy", dst)?;
    drop_cached(dst);
    let scan = write_manifest_since(dst, t, trusted, threads, progress).map_err(PlanError::engine("precopy"))?;
    if let Some(e) = scan.errors.first() {
        return Err(PlanError::PrecopyMismatch { target: dst.into(), count: scan.errors.len(), first: e.clone() });
    }
    let open = |m: &Path| Reader::open(m).map_err(PlanError::engine("precopy"));
    let rep = compare_manifests(&mut open(s)?, &mut open(t)?).map_err(PlanError::engine("precopy"))?;
    // Only on the target: the source entry vanished during the pass, and the
    // next pass (or the sync) removes it.
    let real: Vec<_> = rep.differences.iter().filter(|d| d.field != Field::Extra).collect();
    if let Some(first) = real.first() {
        return Err(PlanError::PrecopyMismatch { target: dst.into(), count: real.len(), first: first.to_string() });
    }
    Ok(scan.bytes)
}

/// Asks the kernel to drop the cached pages of the regular files below
/// `dir` (written back already: `flush` ran). The target is dockroot's own
/// copy, which nothing else writes; symlinks are not followed and only
/// regular files are opened. Best effort: a file it cannot open is read from
/// the cache.
fn drop_cached(dir: &Path) {
    let Ok(rd) = std::fs::read_dir(dir) else { return };
    for e in rd.flatten() {
        let Ok(ft) = e.file_type() else { continue };
        if ft.is_dir() {
            drop_cached(&e.path());
        } else if ft.is_file()
            && let Ok(f) = std::fs::File::options().read(true).custom_flags(libc::O_NOFOLLOW | libc::O_NONBLOCK).open(e.path())
        {
            let _ = nix::fcntl::posix_fadvise(&f, 0, 0, nix::fcntl::PosixFadviseAdvice::POSIX_FADV_DONTNEED);
        }
    }
}
