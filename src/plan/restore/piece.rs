//! One piece of an archive into a directory, verified: `dockroot extract`
//! (into a directory of the user's choice, touching no engine) and the
//! staging step of `restore --volume`. The hardened extractor writes only
//! below the directory ([`crate::archive::extract`]); the archive's manifest
//! is cut down to the piece as it streams out ([`crate::manifest::subtree`])
//! and the directory is then checked against that cut.

use std::io::BufWriter;
use std::os::fd::AsFd;
use std::path::{Path, PathBuf};

use serde::Serialize;

use crate::archive::pick::Pick;
use crate::archive::{self, ArchiveReader};
use crate::manifest::compare::Report;
use crate::manifest::subtree::Subtree;
use crate::plan::{PlanError, Result};
use crate::progress::Progress;

/// What a piece's extraction produced.
#[derive(Debug)]
pub struct Piece {
    /// Entries of the piece's manifest (its root included).
    pub entries: u64,
    /// The directory against the piece's manifest.
    pub report: Report,
}

/// Extracts `pick` into `dir` (an existing, empty directory, which takes
/// the metadata of the piece's root), cuts its manifest into `mpath` and
/// verifies `dir` against it. The caller decides what a difference means.
pub fn extract_verified(
    reader: &mut ArchiveReader,
    pick: &Pick,
    dir: &Path,
    mpath: &Path,
    threads: usize,
    progress: &dyn Progress,
) -> Result<Piece> {
    let fd = crate::sys::open_dir_path(dir).map_err(PlanError::file("open", dir))?;
    let f = std::fs::File::create(mpath).map_err(PlanError::file("create", mpath))?;
    let mut cut = Subtree::new(BufWriter::with_capacity(1 << 20, f), &pick.prefix);
    progress.phase("extract", None);
    archive::extract_piece(reader, pick, archive::Target { staging: fd.as_fd(), manifest: &mut cut })?;
    progress.finish();
    let entries = cut.finish().map_err(PlanError::file("write the piece's manifest", mpath))?;
    if entries == 0 {
        return Err(PlanError::refused(format!("the archive has no {}: `dockroot inspect ARCHIVE` lists its volumes", pick.describe())));
    }
    let report = crate::audit::verify_tree(dir, mpath, threads, progress)?;
    Ok(Piece { entries, report })
}

/// `dockroot extract`'s result.
#[derive(Debug, Serialize)]
pub struct ExtractSummary {
    pub archive: PathBuf,
    /// The piece, as members of the archive (`data/volumes/NAME/_data`).
    pub piece: String,
    pub dir: PathBuf,
    pub entries: u64,
    pub bytes: u64,
    /// Differences between `dir` and the piece's manifest (empty: verified).
    pub differences: Vec<String>,
    pub errors: Vec<String>,
}

impl ExtractSummary {
    pub fn ok(&self) -> bool {
        self.differences.is_empty() && self.errors.is_empty()
    }
}

/// `dockroot extract ARCHIVE --volume NAME | --path PREFIX -o DIR`: `dir`
/// must be absent (it is created, 0700 until the piece's root metadata is
/// applied) or an empty directory. Nothing else on the host is touched.
pub fn extract(source: &Path, pick: &Pick, dir: &Path, threads: usize, progress: &dyn Progress) -> Result<ExtractSummary> {
    let mut reader = archive::open(source)?;
    match std::fs::read_dir(dir).map(|mut d| d.next().is_none()) {
        Ok(false) => {
            return Err(PlanError::refused(format!("{} is not empty; give a new or empty directory", dir.display())));
        }
        Ok(true) => {}
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            use std::os::unix::fs::DirBuilderExt;
            std::fs::DirBuilder::new().mode(0o700).create(dir).map_err(PlanError::file("create", dir))?;
        }
        Err(e) => return Err(PlanError::file("open", dir)(e)),
    }
    // The cut manifest lives only for the check, outside `dir`.
    let m = tempfile::NamedTempFile::new().map_err(PlanError::file("create a temporary manifest in", std::env::temp_dir()))?;
    let p = extract_verified(&mut reader, pick, dir, m.path(), threads, progress)?;
    Ok(ExtractSummary {
        archive: source.into(),
        piece: pick.describe(),
        dir: dir.into(),
        entries: p.entries,
        bytes: p.report.bytes,
        differences: p.report.differences.iter().map(|d| d.to_string()).collect(),
        errors: p.report.errors,
    })
}
