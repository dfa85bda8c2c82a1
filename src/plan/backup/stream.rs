//! The archive as a stream rather than a file: stdout (`-o -`), or a
//! restic repository (`--restic REPO`), where the stream goes into
//! `restic backup --stdin` and comes back out of `restic dump`.
//!
//! A restic snapshot counts only once it is complete and read back: the
//! upload is closed after the archive's last member, then the snapshot is
//! dumped and verified against its own manifest, and only then does
//! retention (`--keep-*`, `restic forget --prune`) run. A stream that fails
//! anywhere before that leaves no snapshot (see [`crate::archive::restic`]).

use std::io::{BufWriter, Stdout, Write};
use std::sync::{Arc, Mutex};

use serde::Serialize;

use crate::archive::restic::{Keep, PARTIAL_TAG, Restic, TAG, Upload};
use crate::archive::{self, ArchiveError};
use crate::docker::engine::ImageStore;
use crate::plan::backup::meta::BackupMeta;
use crate::plan::{PlanError, Result};
use crate::progress::Progress;

/// `--restic REPO` with its retention.
#[derive(Debug, Clone)]
pub struct ResticTarget {
    pub restic: Restic,
    pub keep: Keep,
    /// The snapshot the upload saved (set when the stream is closed).
    saved: Arc<Mutex<Option<String>>>,
}

impl ResticTarget {
    pub fn new(restic: Restic, keep: Keep) -> ResticTarget {
        ResticTarget { restic, keep, saved: Arc::default() }
    }
}

/// What the restic side of a backup did (`--json`: `restic`).
#[derive(Debug, Clone, Serialize)]
pub struct ResticReport {
    pub snapshot: String,
    /// The name of the archive inside the snapshot.
    pub file: String,
    pub tags: Vec<String>,
    /// Entries of the data-root's manifest, read back from the repository.
    pub verified_entries: u64,
    /// Snapshots `--keep-*` removed.
    pub forgotten: Vec<String>,
}

/// The archive's name in the snapshot: `dockroot-<host>-<store>.tar`.
pub(crate) fn file_name(meta: &BackupMeta) -> String {
    format!("dockroot-{}-{}.tar", meta.hostname, store(meta))
}

fn store(meta: &BackupMeta) -> String {
    match meta.engine.as_ref().map(|e| e.image_store) {
        Some(ImageStore::Containerd) => "containerd".into(),
        _ => meta.storage_driver.clone().unwrap_or_else(|| "data-root".into()),
    }
}

/// The snapshot's tags: dockroot's, the host, the engine version and the image store.
pub(crate) fn tags(meta: &BackupMeta) -> Vec<String> {
    let mut t = vec![TAG.to_string(), format!("host={}", meta.hostname), format!("store={}", store(meta))];
    if let Some(v) = &meta.engine_version {
        t.push(format!("engine={v}"));
    }
    // restic separates tags with commas.
    t.into_iter().map(|s| s.replace(',', "_")).collect()
}

/// Where a streamed archive goes, and how many bytes went there.
pub(crate) struct Stream {
    to: To,
    written: u64,
}

enum To {
    Stdout(BufWriter<Stdout>),
    Restic(BufWriter<Upload>, Arc<Mutex<Option<String>>>),
}

impl Stream {
    /// Stdout, or a new upload into the repository of `target`.
    pub(crate) fn open(target: Option<&ResticTarget>, meta: &BackupMeta) -> Result<Stream> {
        let to = match target {
            None => To::Stdout(BufWriter::with_capacity(1 << 20, std::io::stdout())),
            Some(t) => {
                let up = t.restic.upload(&file_name(meta), &meta.hostname).map_err(ArchiveError::from)?;
                To::Restic(BufWriter::with_capacity(1 << 20, up), t.saved.clone())
            }
        };
        Ok(Stream { to, written: 0 })
    }

    /// Ends a complete archive: flushes stdout, or closes restic's stdin
    /// and waits for the snapshot it saved. Returns the archive's size.
    pub(crate) fn close(self) -> Result<u64> {
        match self.to {
            To::Stdout(mut w) => w.flush().map_err(PlanError::file("write", "stdout"))?,
            To::Restic(w, saved) => {
                let up = w.into_inner().map_err(|e| PlanError::file("write", "restic's stdin")(e.into_error()))?;
                let id = up.finish().map_err(ArchiveError::from)?;
                if let Ok(mut s) = saved.lock() {
                    *s = Some(id);
                }
            }
        }
        Ok(self.written)
    }
}

impl Write for Stream {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let n = match &mut self.to {
            To::Stdout(w) => w.write(buf)?,
            To::Restic(w, _) => w.write(buf)?,
        };
        self.written += n as u64;
        Ok(n)
    }

    fn flush(&mut self) -> std::io::Result<()> {
        match &mut self.to {
            To::Stdout(w) => w.flush(),
            To::Restic(w, _) => w.flush(),
        }
    }
}

/// After a complete upload: reads the snapshot back and verifies it, gives
/// it dockroot's tags, then applies `--keep-*`. A snapshot that fails its
/// read-back is forgotten.
pub(crate) fn after_upload(t: &ResticTarget, meta: &BackupMeta, progress: &dyn Progress) -> Result<ResticReport> {
    let id = t.saved.lock().ok().and_then(|s| s.clone()).ok_or_else(|| PlanError::refused("the restic upload saved no snapshot"))?;
    let snap = t.restic.resolve_tagged(&id, None, PARTIAL_TAG).map_err(ArchiveError::from)?;
    progress.phase("read back the restic snapshot", Some((meta.entries, meta.bytes)));
    let verified = t.restic.dump(&snap).map_err(ArchiveError::from).and_then(|d| archive::verify(archive::open_reader(d)?));
    progress.finish();
    let report = match verified {
        Ok(r) if r.ok() => r,
        Ok(r) => {
            let _ = t.restic.forget_ids(std::slice::from_ref(&snap.id));
            return Err(PlanError::refused(format!(
                "restic snapshot {} differs from its own manifest when read back ({} differences); it was forgotten. Run `restic check --read-data` on the repository",
                snap.short_id,
                r.report.differences.len() as u64 + r.report.more
            )));
        }
        Err(e) => {
            let _ = t.restic.forget_ids(std::slice::from_ref(&snap.id));
            return Err(PlanError::refused(format!(
                "restic snapshot {} could not be read back and verified ({e}); it was forgotten. Run `restic check` on the repository",
                snap.short_id
            )));
        }
    };
    // Only now is it one of dockroot's snapshots: `latest` and retention see it.
    let snap = t.restic.finalize(&snap, &tags(meta)).map_err(ArchiveError::from)?;
    let forgotten = if t.keep.any() {
        progress.log(&format!("restic forget --prune {:?} on host {}", t.keep, meta.hostname));
        t.restic.forget_policy(&t.keep, &meta.hostname).map_err(ArchiveError::from)?
    } else {
        Vec::new()
    };
    Ok(ResticReport { snapshot: snap.id, file: file_name(meta), tags: tags(meta), verified_entries: report.entries, forgotten })
}
