//! `dockroot backup` without `--stop-the-world`: a live backup in two phases
//! (issue 10). Phase 1 archives the data-root while Docker runs; then the
//! stop contract applies and phase 2 appends what changed since phase 1 and
//! the deletion list (see [`crate::archive::phase2`]); the manifest, last,
//! describes the stopped tree. Docker is down for phase 2 only.
//!
//! The journal is opened before phase 1 (step `phase 1`, which creates
//! `FILE.partial`) and closed after the archive's rename (step `commit`,
//! after Docker's start, so the manifest member, the end of the zstd frame
//! and the fsync are not downtime). A kill in phase 1
//! leaves the partial file and Docker running, one in phase 2 Docker
//! stopped; `rollback` starts Docker if needed and removes the partial file.

use std::io::Write;
use std::path::Path;

use serde::Serialize;

use super::error::{BackupError, Result};
use super::{commit, open_partial};
use crate::archive::meta::BackupMeta;
use crate::archive::phase2::{PhaseStats, phase1, phase2};
use crate::archive::records::Spool;
use crate::archive::{ArchiveError, ArchiveWriter, WriterOptions};
use crate::plan::core::window::{Window, with_docker_stopped_after};
use crate::progress::Progress;
use crate::util::atomic;

/// What each phase wrote: reported by `backup` (human, `--json`) and kept
/// in the journal.
#[derive(Debug, Clone, Serialize)]
pub struct LivePhases {
    pub phase1: PhaseStats,
    pub phase2: PhaseStats,
    /// Entries and file bytes of the stopped tree (the manifest's).
    #[serde(skip)]
    pub tree: (u64, u64),
}

/// Everything a live backup writes, in order.
pub(crate) struct LiveInput<'a> {
    pub root: &'a Path,
    pub meta: &'a BackupMeta,
    pub config: &'a [(Vec<u8>, std::path::PathBuf)],
    pub wopts: &'a WriterOptions,
}

/// Writes a two-phase archive to `output` (`None`: stdout) through
/// `FILE.partial`, stopping Docker (through `window`) for phase 2 only.
/// Returns the phases, the downtime and the archive's size.
pub(crate) fn backup_live(
    output: Option<&Path>,
    input: LiveInput<'_>,
    window: Window<'_>,
    progress: &dyn Progress,
) -> Result<(LivePhases, f64, u64)> {
    let Some(path) = output else {
        let stdout = || Ok(std::io::BufWriter::with_capacity(1 << 20, std::io::stdout()));
        let flush = |(mut out, p): (std::io::BufWriter<std::io::Stdout>, LivePhases)| {
            out.flush().map_err(BackupError::io("write", "stdout"))?;
            Ok((p, 0))
        };
        let ((phases, _), downtime) = write_live(stdout, input, window, progress, flush)?;
        return Ok((phases, downtime, 0));
    };
    let partial = atomic::with_suffix(path, ".partial");
    // Opened inside the journaled phase 1 and renamed inside the journaled
    // commit: a rollback after a kill anywhere in between removes it.
    let commit = |(f, p): (std::fs::File, LivePhases)| Ok((p, commit(f, &partial, path)?));
    let r = write_live(|| Ok(open_partial(path)?.0), input, window, progress, commit);
    if r.is_err() {
        let _ = std::fs::remove_file(&partial);
    }
    let ((phases, len), downtime) = r?;
    Ok((phases, downtime, len))
}

/// Phase 1 into the output `open` makes, then phase 2 with Docker stopped.
fn write_live<W: Write + Send + 'static, U>(
    open: impl FnOnce() -> Result<W>,
    input: LiveInput<'_>,
    window: Window<'_>,
    progress: &dyn Progress,
    commit: impl FnOnce((W, LivePhases)) -> Result<U>,
) -> Result<(U, f64)> {
    let before = || {
        let meta_json = serde_json::to_vec_pretty(input.meta).map_err(|e| ArchiveError::Meta(e.to_string()))?;
        let mut w = ArchiveWriter::new(open()?, input.wopts, &meta_json)?;
        for (name, host) in input.config {
            w.add_config(name, host)?;
        }
        progress.phase("backup (phase 1, Docker running)", Some((input.meta.entries, input.meta.bytes)));
        let mut first = true;
        let (one, baseline) = phase1(&mut w, input.root, &mut |b| {
            if std::mem::take(&mut first) {
                // Tests kill the backup here: phase 1 has begun writing the archive.
                crate::plan::core::hooks::crash_hook("phase 1 data");
            }
            progress.advance(1, b)
        })?;
        progress.finish();
        if one.raced > 0 {
            progress.warn(&format!("{} entries changed while phase 1 read them; phase 2 archives them again", one.raced));
        }
        Ok((w, one, baseline))
    };
    let work = |(mut w, one, baseline): (ArchiveWriter<W>, PhaseStats, tempfile::TempPath)| {
        let marker = serde_json::to_vec(&serde_json::json!({ "phase1": one })).map_err(|e| ArchiveError::Meta(e.to_string()))?;
        w.begin_phase2(&marker)?;
        let mut manifest = Spool::new()?;
        progress.phase("backup (phase 2, Docker stopped)", None);
        let (two, entries, bytes) = phase2(&mut w, input.root, &baseline, &mut manifest, &mut |b| progress.advance(1, b))?;
        progress.finish();
        Ok((w, manifest, LivePhases { phase1: one, phase2: two, tree: (entries, bytes) }))
    };
    let note = |(_, _, p): &(ArchiveWriter<W>, Spool, LivePhases)| serde_json::to_value(p).ok();
    // The manifest (spooled during phase 2, some 220 bytes an entry) and the
    // end of the zstd frame are written once Docker runs again: nothing in
    // them reads the tree.
    let finish = |(w, manifest, p): (ArchiveWriter<W>, Spool, LivePhases)| {
        let (manifest, len) = manifest.into_file()?;
        commit((w.finish(manifest, len)?, p))
    };
    with_docker_stopped_after(window, progress, before, work, note, finish)
}
