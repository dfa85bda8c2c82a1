//! [`verify`]: reads a whole archive without extracting anything. zstd checks
//! its frame checksums and the reader every header; the layout must be that
//! of [`super::layout`]. Every member of a tree becomes a manifest record
//! (file content hashed as it streams by) spooled to a temporary manifest,
//! which is then compared entry by entry with that tree's manifest member.
//! For a two-phase archive the compared records of each tree are those of
//! the tree its phases and the deletion list make ([`super::overlay`]).

use std::collections::BTreeMap;
use std::io::{BufReader, Read};
use std::path::Path;
use std::sync::{Arc, Mutex};

use super::error::{ArchiveError, Result};
use super::header::flag;
use super::layout::{self, Section, Tree};
use super::overlay::{DeletedNames, merge};
use super::pipe::Pipe;
use super::read::{ArchiveReader, TarReader};
use super::records::{self, Spool};
use crate::manifest::compare::{Report, compare_manifests};
use crate::manifest::{Reader, order};

/// A tree besides the data-root (containerd's root, a bind source) against its manifest.
#[derive(Debug)]
pub struct TreeReport {
    pub tree: Tree,
    /// Entries its manifest lists.
    pub entries: u64,
    pub report: Report,
}

/// What [`verify`] found.
#[derive(Debug)]
pub struct VerifyReport {
    pub members: u64,
    /// Data bytes of all members.
    pub data_bytes: u64,
    pub meta: Vec<u8>,
    /// Entries the data-root's manifest lists (its trailer count).
    pub entries: u64,
    /// The data members against the manifest: differences (missing and
    /// extra entries included), entries and content bytes of the members.
    pub report: Report,
    /// The other trees the archive carries, in archive order.
    pub trees: Vec<TreeReport>,
    /// Set for a two-phase (live) archive.
    pub two_phase: Option<TwoPhase>,
}

/// Phase 2 of a two-phase archive.
#[derive(Debug, Clone, Copy, serde::Serialize)]
pub struct TwoPhase {
    /// Tree members after the phase-2 marker.
    pub phase2_members: u64,
    /// Names in the deletion list.
    pub deleted: u64,
}

impl VerifyReport {
    /// True when the members of every tree match their manifest exactly.
    pub fn ok(&self) -> bool {
        self.report.ok() && self.trees.iter().all(|c| c.report.ok())
    }

    /// The containerd tree, when the archive has one.
    pub fn containerd(&self) -> Option<&TreeReport> {
        self.trees.iter().find(|t| t.tree == Tree::Containerd)
    }
}

/// What error messages call the archive's manifest of `tree`.
fn manifest_name(tree: Tree) -> String {
    format!("{} in the archive", String::from_utf8_lossy(&tree.manifest()))
}

/// Reads a whole archive: every zstd block and checksum, every header, the
/// layout ([`layout::Position`]: config, each tree and its manifest, or
/// for a two-phase archive every tree's phase 1, the marker, phase 2, the
/// deletion list and the manifests, `.dockroot/manifest` last), and every
/// member of each tree against that tree's manifest (for a two-phase
/// tree, the tree the phases and the deletions make). Damage is an error;
/// members that disagree with a manifest are differences in the report.
///
/// Memory does not grow with the archive: the members' records go to
/// temporary files (one per tree and phase) as they stream by, and each
/// manifest member is then read straight from the archive and merged with
/// its tree's file in walk order.
pub fn verify(a: ArchiveReader) -> Result<VerifyReport> {
    let ArchiveReader { mut tar, meta } = a;
    let (mut members, mut data_bytes) = (1u64, meta.len() as u64);
    // Each tree's records of the current phase; phase 1's once phase 2 began.
    let mut spools: BTreeMap<Tree, Spool> = BTreeMap::new();
    let mut phase1: Option<BTreeMap<Tree, Spool>> = None;
    let (mut deleted, mut deleted_count, mut phase2_members) = (BTreeMap::new(), 0u64, 0u64);
    let mut last: Option<(Tree, Vec<u8>)> = None;
    let mut pos = layout::Position::default();
    let mut trees = Vec::new();
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
        let Some(section) = Section::of(&m.path) else {
            return Err(m.rejected("member outside data/, containerd/, binds/ and .dockroot/"));
        };
        pos.advance(&section).map_err(|r| m.rejected(r))?;
        match section {
            Section::Config(_) => {
                if !matches!(m.fields.typeflag, flag::FILE | flag::OLD_FILE) {
                    return Err(m.rejected("config member is not a regular file"));
                }
            }
            Section::Phase2 => {
                if !matches!(m.fields.typeflag, flag::FILE | flag::OLD_FILE) {
                    return Err(m.rejected("phase-2 marker is not a regular file"));
                }
                tar.read_small(&m)?;
                phase1 = Some(std::mem::take(&mut spools));
                last = None;
            }
            Section::Deleted => {
                if !matches!(m.fields.typeflag, flag::FILE | flag::OLD_FILE) {
                    return Err(m.rejected("deletion list is not a regular file"));
                }
                deleted = DeletedNames::read(&m, &mut tar, &mut buf)?;
                deleted_count = deleted.values().map(|d| d.count).sum();
            }
            Section::Members(tree, rel) => {
                let r = records::record(&m, tree, rel, &mut tar, &mut buf)?;
                if last.as_ref().is_some_and(|(t, l)| *t == tree && order::cmp(l, &r.path).is_ge()) {
                    return Err(m.malformed("members are out of walk order or repeat a path"));
                }
                let s = match spools.entry(tree) {
                    std::collections::btree_map::Entry::Occupied(e) => e.into_mut(),
                    std::collections::btree_map::Entry::Vacant(e) => e.insert(Spool::new()?),
                };
                s.push(&r)?;
                phase2_members += u64::from(pos.in_phase2());
                last = Some((tree, r.path));
            }
            Section::Manifest(tree) => {
                let got = spools.remove(&tree).map(Ok).unwrap_or_else(Spool::new)?.into_reader()?;
                last = None;
                let got = match phase1.as_mut().and_then(|p| p.remove(&tree)) {
                    Some(one) => merge(one.into_reader()?, got, deleted.remove(&tree))?,
                    None => got,
                };
                let (report, entries, back) = compare(tar, got, tree)?;
                tar = back;
                if tree == Tree::Data {
                    if let Some(m) = tar.next_member()? {
                        return Err(m.malformed("member after the manifest (the manifest must be last)"));
                    }
                    tar.finish()?;
                    let two_phase = phase1.map(|_| TwoPhase { phase2_members, deleted: deleted_count });
                    return Ok(VerifyReport { members, data_bytes, meta, entries, report, trees, two_phase });
                }
                trees.push(TreeReport { tree, entries, report });
            }
        }
    }
}

/// Compares the records of a tree's members with its manifest, the current
/// member; returns the report, the manifest's entry count and the archive,
/// positioned after the manifest.
fn compare(tar: TarReader<Pipe>, mut got: Reader, tree: Tree) -> Result<(Report, u64, TarReader<Pipe>)> {
    let shared = Arc::new(Mutex::new(tar));
    let name = manifest_name(tree);
    let mut want = Reader::new(Box::new(BufReader::with_capacity(1 << 20, MemberData(shared.clone()))), Path::new(&name))?;
    let report = compare_manifests(&mut want, &mut got)?;
    let entries = want.finish()?;
    let tar = Arc::into_inner(shared).expect("the manifest reader was dropped").into_inner().unwrap_or_else(|p| p.into_inner());
    Ok((report, entries, tar))
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
