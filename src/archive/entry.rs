//! The input of the writer (one walked entry) and the per-entry record that the
//! writer and the extractor return for the manifest.

use std::fs::File;

use crate::sys::{Kind, Meta, xattr::Xattrs};
use crate::tree::content::Ahead;

/// One entry of the source tree, as a walker hands it to the writer.
pub struct ArchiveEntry {
    /// Path relative to the data-root, `/`-separated raw bytes; empty for the root.
    pub rel_path: Vec<u8>,
    pub meta: Meta,
    pub xattrs: Xattrs,
    /// Target of a symlink.
    pub link_target: Option<Vec<u8>>,
    /// Set for the second and later names of a hardlinked file: the
    /// `rel_path` of the first name, already written to this archive.
    pub hardlink_to: Option<Vec<u8>>,
    /// An open regular file (not for hardlinks): its bytes are archived.
    pub data: Option<File>,
    /// A directory that is a btrfs subvolume's root: recorded as
    /// `DOCKROOT.subvolume=rw|ro`, so a restore recreates it as one.
    pub subvolume: Option<crate::sys::btrfs::Subvolume>,
    /// A small file's bytes and hash, read ahead by a walk worker: written
    /// as they are, in place of reading `data`.
    pub(crate) ahead: Option<Ahead>,
}

/// What was written or extracted for one entry, for the manifest.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EntryRecord {
    /// Path relative to the data-root (without the `data/` prefix).
    pub path: Vec<u8>,
    pub kind: Kind,
    /// Logical size of a regular file (holes count as zeros).
    pub size: u64,
    /// blake3 of the logical content of a regular file (holes hashed as zeros).
    pub hash: Option<[u8; 32]>,
    /// The first name of a hardlinked file.
    pub hardlink_to: Option<Vec<u8>>,
    /// A live writer saw the file change while it read it (the member holds
    /// a mix, zero-padded if it shrank): a later phase must archive it again.
    pub raced: bool,
}
