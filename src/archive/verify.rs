//! [`verify`]: reads a whole archive without extracting anything. zstd checks
//! its frame checksums and the reader every header; the layout must be that
//! of [`super::layout`]. Every data member becomes a manifest record (file
//! content hashed as it streams by) spooled to a temporary manifest, which is
//! then compared entry by entry with the archive's own manifest, its last
//! member. For a two-phase archive the compared records are those of the
//! tree the phases and the deletion list make ([`super::overlay`]).

use std::io::{BufReader, Read};
use std::path::Path;
use std::sync::{Arc, Mutex};

use super::error::{ArchiveError, Result};
use super::header::flag;
use super::layout;
use super::overlay::{DeletedNames, merge};
use super::pipe::Pipe;
use super::read::{ArchiveReader, TarReader};
use super::records::{self, Spool};
use crate::manifest::verify::{Report, compare_manifests};
use crate::manifest::{Reader, order};

/// What [`verify`] found.
#[derive(Debug)]
pub struct VerifyReport {
    pub members: u64,
    /// Data bytes of all members.
    pub data_bytes: u64,
    pub meta: Vec<u8>,
    /// Entries the manifest lists (its trailer count).
    pub entries: u64,
    /// The data members against the manifest: differences (missing and
    /// extra entries included), entries and content bytes of the members.
    pub report: Report,
    /// Set for a two-phase (live) archive.
    pub two_phase: Option<TwoPhase>,
}

/// Phase 2 of a two-phase archive.
#[derive(Debug, Clone, Copy, serde::Serialize)]
pub struct TwoPhase {
    /// Data members after the phase-2 marker.
    pub phase2_members: u64,
    /// Names in the deletion list.
    pub deleted: u64,
}

impl VerifyReport {
    /// True when the members match the manifest exactly.
    pub fn ok(&self) -> bool {
        self.report.ok()
    }
}

/// What error messages call the archive's manifest.
const MANIFEST_NAME: &str = ".dockroot/manifest in the archive";

/// Reads a whole archive: every zstd block and checksum, every header, the
/// layout (config before data, `.dockroot/manifest` last), and every data
/// member against the manifest. Damage is an error; members that disagree
/// with the manifest are differences in the report.
///
/// Memory does not grow with the archive: the members' records go to a
/// temporary file as they stream by, and the manifest member is then read
/// straight from the archive and merged with that file in walk order.
pub fn verify(a: ArchiveReader) -> Result<VerifyReport> {
    let ArchiveReader { mut tar, meta } = a;
    let (mut members, mut data_bytes) = (1u64, meta.len() as u64);
    let mut spool = Spool::new()?;
    // Two-phase archives: phase 1's records once phase 2 began, the deleted names.
    let (mut phase1, mut deleted, mut phase2_members): (Option<Spool>, Option<DeletedNames>, u64) = (None, None, 0);
    let mut last: Option<Vec<u8>> = None;
    let mut in_data = false;
    let mut buf = vec![0u8; 1 << 20];
    loop {
        let Some(m) = tar.next_member()? else {
            return Err(ArchiveError::Malformed {
                index: members,
                member: "(end)".into(),
                reason: "no .dockroot/manifest member: the backup did not finish".into(),
            });
        };
        members += 1;
        data_bytes += tar.data_left();
        if deleted.is_some() && m.path != layout::MANIFEST {
            return Err(m.malformed("member after the deletion list other than the manifest"));
        }
        if m.path == layout::MANIFEST {
            break;
        } else if m.path == layout::PHASE2 {
            if !in_data || phase1.is_some() || !matches!(m.fields.typeflag, flag::FILE | flag::OLD_FILE) {
                return Err(m.rejected("phase-2 marker out of place or not a regular file"));
            }
            tar.read_small(&m)?;
            phase1 = Some(std::mem::replace(&mut spool, Spool::new()?));
            last = None;
        } else if m.path == layout::DELETED {
            if phase1.is_none() || !matches!(m.fields.typeflag, flag::FILE | flag::OLD_FILE) {
                return Err(m.rejected("deletion list out of place or not a regular file"));
            }
            deleted = Some(DeletedNames::read(&m, &mut tar, &mut buf)?);
        } else if m.path.starts_with(layout::CONFIG_DIR) {
            if in_data || !matches!(m.fields.typeflag, flag::FILE | flag::OLD_FILE) {
                return Err(m.rejected("config member out of place or not a regular file"));
            }
        } else if let Some(rel) = records::data_rel(&m.path) {
            in_data = true;
            let r = records::record(&m, rel, &mut tar, &mut buf)?;
            if last.as_ref().is_some_and(|l| order::cmp(l, &r.path).is_ge()) {
                return Err(m.malformed("data members are out of walk order or repeat a path"));
            }
            spool.push(&r)?;
            phase2_members += u64::from(phase1.is_some());
            last = Some(r.path);
        } else {
            return Err(m.rejected("member outside data/ and .dockroot/"));
        }
    }
    let two_phase = phase1.as_ref().map(|_| TwoPhase { phase2_members, deleted: deleted.as_ref().map_or(0, |d| d.count) });
    let mut got = match phase1 {
        Some(one) => merge(one.into_reader()?, spool.into_reader()?, deleted)?,
        None => spool.into_reader()?,
    };
    let shared = Arc::new(Mutex::new(tar));
    let mut want = Reader::new(Box::new(BufReader::with_capacity(1 << 20, MemberData(shared.clone()))), Path::new(MANIFEST_NAME))?;
    let report = compare_manifests(&mut want, &mut got)?;
    let entries = want.finish()?;
    let mut tar = Arc::into_inner(shared).expect("the manifest reader was dropped").into_inner().unwrap_or_else(|p| p.into_inner());
    if let Some(m) = tar.next_member()? {
        return Err(m.malformed("member after the manifest (the manifest must be last)"));
    }
    tar.finish()?;
    Ok(VerifyReport { members, data_bytes, meta, entries, report, two_phase })
}

/// The data of the current member (the manifest) as a byte stream, for the
/// manifest reader, which wants to own its input; the archive is taken back
/// afterwards to check that nothing follows.
struct MemberData(Arc<Mutex<TarReader<Pipe>>>);

impl Read for MemberData {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let mut tar = self.0.lock().unwrap_or_else(|p| p.into_inner());
        tar.read_data(buf).map_err(|e| match e {
            ArchiveError::Input { source, .. } => source,
            other => std::io::Error::other(other.to_string()),
        })
    }
}
