//! [`verify`]: reads a whole archive without extracting anything. zstd checks
//! its frame checksums and the reader every header; the layout must be that
//! of [`super::layout`]. Every data member becomes a manifest record (file
//! content hashed as it streams by) spooled to a temporary manifest, which is
//! then compared entry by entry with the archive's own manifest, its last
//! member.

use std::io::Cursor;
use std::path::Path;
use std::sync::Arc;

use super::error::{ArchiveError, Result};
use super::header::flag;
use super::layout;
use super::read::ArchiveReader;
use super::records::{self, Spool};
use crate::manifest::Reader;
use crate::manifest::verify::{Report, compare_manifests};

/// What [`verify`] found.
#[derive(Debug)]
pub struct VerifyReport {
    pub members: u64,
    /// Data bytes of all members.
    pub data_bytes: u64,
    pub meta: Vec<u8>,
    pub manifest: Vec<u8>,
    /// The data members against the manifest: differences (missing and
    /// extra entries included), entries and content bytes of the members.
    pub report: Report,
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
pub fn verify(mut a: ArchiveReader) -> Result<VerifyReport> {
    let meta = std::mem::take(&mut a.meta);
    let (mut members, mut data_bytes) = (1u64, meta.len() as u64);
    let mut manifest: Option<Vec<u8>> = None;
    let mut spool = Spool::new()?;
    let mut in_data = false;
    let mut buf = vec![0u8; 1 << 20];
    while let Some(m) = a.tar.next_member()? {
        if manifest.is_some() {
            return Err(m.malformed("member after the manifest (the manifest must be last)"));
        }
        members += 1;
        data_bytes += a.tar.data_left();
        if m.path == layout::MANIFEST {
            manifest = Some(a.tar.read_small(&m)?);
        } else if m.path.starts_with(layout::CONFIG_DIR) {
            if in_data || !matches!(m.fields.typeflag, flag::FILE | flag::OLD_FILE) {
                return Err(m.rejected("config member out of place or not a regular file"));
            }
        } else if let Some(rel) = records::data_rel(&m.path) {
            in_data = true;
            let r = records::record(&m, rel, &mut a.tar, &mut buf)?;
            spool.push(&m, &r)?;
        } else {
            return Err(m.rejected("member outside data/ and .dockroot/"));
        }
    }
    a.tar.finish()?;
    let manifest = manifest.ok_or_else(|| ArchiveError::Malformed {
        index: members,
        member: "(end)".into(),
        reason: "no .dockroot/manifest member: the backup did not finish".into(),
    })?;
    let mut got = spool.into_reader()?;
    // The reader wants its input owned: lend it the bytes and take them back.
    let shared = Arc::new(manifest);
    let mut want = Reader::new(Box::new(Cursor::new(Shared(shared.clone()))), Path::new(MANIFEST_NAME))?;
    let report = compare_manifests(&mut want, &mut got)?;
    drop(want);
    let manifest = Arc::try_unwrap(shared).unwrap_or_else(|s| s.to_vec());
    Ok(VerifyReport { members, data_bytes, meta, manifest, report })
}

struct Shared(Arc<Vec<u8>>);

impl AsRef<[u8]> for Shared {
    fn as_ref(&self) -> &[u8] {
        &self.0
    }
}
