//! The sizes of a two-phase archive's phases, for `inspect`: the tree
//! members (of every tree) and their bytes before and after the phase-2 marker, and the
//! names in the deletion list. Reads the whole stream (a tar in zstd cannot
//! be seeked), skipping file contents without hashing them.

use serde::Serialize;

use super::error::Result;
use super::layout;
use super::read::ArchiveReader;

/// Data members and their data bytes in one phase.
#[derive(Debug, Clone, Copy, Default, Serialize)]
pub struct PhaseSize {
    pub members: u64,
    pub bytes: u64,
}

#[derive(Debug, Clone, Copy, Default, Serialize)]
pub struct PhaseSizes {
    pub phase1: PhaseSize,
    pub phase2: PhaseSize,
    pub deleted: u64,
    /// Phase 1's entries that changed while they were read (from the marker).
    pub raced: u64,
}

/// Counts the phases of `a`; `None` for a single-pass archive.
pub fn phase_sizes(a: ArchiveReader) -> Result<Option<PhaseSizes>> {
    let mut tar = a.tar;
    let mut s = PhaseSizes::default();
    let (mut two, mut buf) = (false, vec![0u8; 1 << 16]);
    while let Some(m) = tar.next_member()? {
        if m.path == layout::PHASE2 {
            let json = tar.read_small(&m)?;
            let v: serde_json::Value = serde_json::from_slice(&json).map_err(|e| m.malformed(format!("phase-2 marker: {e}")))?;
            s.raced = v["phase1"]["raced"].as_u64().unwrap_or(0);
            two = true;
        } else if m.path == layout::DELETED {
            s.deleted = super::deleted::for_each(&m, &mut tar, &mut buf, |_, _| Ok(()))?;
        } else if matches!(layout::Section::of(&m.path), Some(layout::Section::Members(..))) {
            let p = if two { &mut s.phase2 } else { &mut s.phase1 };
            p.members += 1;
            p.bytes += tar.data_left();
        }
    }
    Ok(two.then_some(s))
}
