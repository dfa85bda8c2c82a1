//! What `inspect` counts in one read of the whole stream (a tar in zstd
//! cannot be seeked), skipping file contents without hashing them: the
//! sizes of a two-phase archive's phases (the tree members of every tree
//! and their bytes before and after the phase-2 marker, and the names in
//! the deletion list), and the size of each volume, from the manifest (the
//! last member, so phase 2 and the deletions are accounted for).

use std::collections::BTreeMap;
use std::io::{BufRead, Read};

use serde::Serialize;

use super::error::Result;
use super::layout;
use super::read::ArchiveReader;
use crate::manifest::reader::MAX_LINE;

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

/// Entries and content bytes of one volume's `_data` (its root included).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct TreeSize {
    pub entries: u64,
    pub bytes: u64,
}

/// What [`census`] counted.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Census {
    /// `None` for a single-pass archive.
    pub phases: Option<PhaseSizes>,
    /// By volume name.
    pub volumes: BTreeMap<String, TreeSize>,
}

/// Counts the phases and the volumes of `a`.
pub fn census(a: ArchiveReader) -> Result<Census> {
    let mut tar = a.tar;
    let mut s = PhaseSizes::default();
    let mut volumes = BTreeMap::new();
    let (mut two, mut buf) = (false, vec![0u8; 1 << 16]);
    while let Some(m) = tar.next_member()? {
        if m.path == layout::MANIFEST {
            let mut r = std::io::BufReader::with_capacity(1 << 20, ReadData(&mut tar));
            let mut line = Vec::new();
            // A line at a time, each bounded as the manifest reader bounds it.
            loop {
                line.clear();
                let n = (&mut r).take(MAX_LINE + 1).read_until(b'\n', &mut line).map_err(|e| m.malformed(format!("manifest: {e}")))?;
                if n == 0 {
                    break;
                }
                if n as u64 > MAX_LINE {
                    return Err(m.malformed("a manifest line longer than 16 MiB"));
                }
                add_volume_entry(String::from_utf8_lossy(line.strip_suffix(b"\n").unwrap_or(&line)).as_ref(), &mut volumes);
            }
            continue;
        }
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
    Ok(Census { phases: two.then_some(s), volumes })
}

/// The data of the current member as a `Read`.
struct ReadData<'t, R: std::io::Read>(&'t mut super::read::TarReader<R>);

impl<R: std::io::Read> std::io::Read for ReadData<'_, R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        self.0.read_data(buf).map_err(std::io::Error::other)
    }
}

/// Counts a manifest line below `volumes/NAME/_data` (escaped paths: a
/// volume name needs no escaping, and `/` is never escaped).
fn add_volume_entry(line: &str, volumes: &mut BTreeMap<String, TreeSize>) {
    let Some((path, fields)) = line.split_once(' ') else { return };
    let Some((name, rest)) = path.strip_prefix("volumes/").and_then(|p| p.split_once('/')) else { return };
    if rest != "_data" && !rest.starts_with("_data/") {
        return;
    }
    let size = volumes.entry(name.to_string()).or_default();
    size.entries += 1;
    if fields.starts_with("type=file ") {
        size.bytes += fields.split(' ').find_map(|f| f.strip_prefix("size=")).and_then(|n| n.parse::<u64>().ok()).unwrap_or(0);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn volume_sizes_from_manifest_lines() {
        let mut v = BTreeMap::new();
        for l in [
            "volumes type=dir mode=0701 uid=0 gid=0 mtime=1.0",
            "volumes/a/_data type=dir mode=0755 uid=0 gid=0 mtime=1.0",
            "volumes/a/_data/f type=file mode=0644 uid=0 gid=0 mtime=1.0 size=5 blake3=00 ino=0 ctime=0.0",
            "volumes/a/_data/g type=hardlink target=volumes/a/_data/f",
            "volumes/a/_datax type=file mode=0644 uid=0 gid=0 mtime=1.0 size=7 blake3=00 ino=0 ctime=0.0",
            "volumes/a/opts.json type=file mode=0600 uid=0 gid=0 mtime=1.0 size=9 blake3=00 ino=0 ctime=0.0",
            "volumes/metadata.db type=file mode=0600 uid=0 gid=0 mtime=1.0 size=9 blake3=00 ino=0 ctime=0.0",
        ] {
            add_volume_entry(l, &mut v);
        }
        assert_eq!(v.len(), 1);
        assert_eq!(v["a"], TreeSize { entries: 3, bytes: 5 });
    }
}
