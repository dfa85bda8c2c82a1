//! `dockroot backup` without `--stop-the-world`: a live backup in two phases
//! (issue 10) over every tree of the backup (issue 20: containerd's root,
//! the bind sources, the data-root). Phase 1 archives the trees while Docker
//! runs; then the stop contract applies and phase 2 appends what changed
//! since phase 1 and the deletion list (see [`crate::archive::phase2`]);
//! the manifests, last, describe the stopped trees. Docker (and, with the
//! containerd image store, containerd) is down for phase 2 only.
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

use super::stream::{ResticTarget, Stream};
use super::target::{commit, open_partial, or_remove_partial, partial_path};
use crate::archive::phase2::PhaseStats;
use crate::archive::trees::{Phase1, phase1_trees};
use crate::archive::{ArchiveError, ArchiveWriter, TreeSource, WriterOptions};
use crate::plan::Result;
use crate::plan::backup::meta::BackupMeta;
use crate::plan::core::window::{Window, with_docker_stopped_after};
use crate::progress::Progress;

/// What each phase wrote: reported by `backup` (human, `--json`) and kept
/// in the journal.
#[derive(Debug, Clone, Serialize)]
pub struct LivePhases {
    pub phase1: PhaseStats,
    pub phase2: PhaseStats,
    /// The daemon answered its API when phase 1 had been read: phase 1 ran with Docker up.
    pub phase1_docker_answered: bool,
    /// Entries and file bytes of the stopped trees (their manifests').
    #[serde(skip)]
    pub tree: (u64, u64),
}

/// Everything a live backup writes, in order.
pub(crate) struct LiveInput<'a> {
    /// The trees in archive order, the data-root last.
    pub trees: &'a [TreeSource],
    pub meta: &'a BackupMeta,
    pub config: &'a [(Vec<u8>, std::path::PathBuf)],
    pub wopts: &'a WriterOptions,
}

/// Writes a two-phase archive to `output` (`None`: stdout) through
/// `FILE.partial`, stopping Docker (through `window`) for phase 2 only.
/// Returns the phases, the downtime and the archive's size.
pub(crate) fn backup_live(
    output: Option<&Path>,
    restic: Option<&ResticTarget>,
    input: LiveInput<'_>,
    window: Window<'_>,
    progress: &dyn Progress,
) -> Result<(LivePhases, f64, u64)> {
    let Some(path) = output else {
        let meta = input.meta;
        let close = |(out, p): (Stream, LivePhases)| out.close().map(|n| (p, n));
        let ((phases, len), downtime) = write_live(|| Stream::open(restic, meta), input, window, progress, close)?;
        return Ok((phases, downtime, len));
    };
    let partial = partial_path(path);
    // Opened inside the journaled phase 1 and renamed inside the journaled
    // commit: a rollback after a kill anywhere in between removes it.
    let commit = |(f, p): (std::fs::File, LivePhases)| Ok((p, commit(f, &partial, path)?));
    let r = write_live(|| Ok(open_partial(path)?.0), input, window, progress, commit).map_err(|e| e.naming_output(&partial));
    let ((phases, len), downtime) = or_remove_partial(path, r)?;
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
    let api = window.api.clone();
    let before = || {
        let meta_json = serde_json::to_vec_pretty(input.meta).map_err(|e| ArchiveError::Meta(e.to_string()))?;
        let mut w = ArchiveWriter::new(open()?, input.wopts, &meta_json)?;
        for (name, host) in input.config {
            w.add_config(name, host)?;
        }
        progress.phase("backup (phase 1, Docker running)", Some(input.meta.totals()));
        let mut first = true;
        let one = phase1_trees(&mut w, input.trees, &mut |b| {
            if std::mem::take(&mut first) {
                // Tests kill the backup here: phase 1 has begun writing the archive.
                crate::plan::core::hooks::crash_hook("phase 1 data");
            }
            progress.advance(1, b)
        })?;
        progress.finish();
        let answered = api.ping();
        if one.stats.raced > 0 {
            progress.warn(&format!("{} entries changed while phase 1 read them; phase 2 archives them again", one.stats.raced));
        }
        Ok((w, one, answered))
    };
    let work = |(w, one, answered): (ArchiveWriter<W>, Phase1, bool)| {
        let stats1 = one.stats.clone();
        let marker = serde_json::to_vec(&serde_json::json!({ "phase1": stats1 })).map_err(|e| ArchiveError::Meta(e.to_string()))?;
        progress.phase("backup (phase 2, Docker stopped)", None);
        let (out, two, counts) = one.finish(w, &marker, &mut |b| progress.advance(1, b))?;
        progress.finish();
        let t = counts.total();
        Ok((out, LivePhases { phase1: stats1, phase2: two, phase1_docker_answered: answered, tree: (t.entries, t.bytes) }))
    };
    let note = |(_, p): &(W, LivePhases)| serde_json::to_value(p).ok();
    with_docker_stopped_after(window, progress, before, work, note, commit)
}
