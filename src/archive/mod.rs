//! Backup archives: a POSIX/PAX tar stream inside a multi-threaded zstd frame.
//!
//! The writer ([`writer`]) records everything a Docker data-root needs to come
//! back bit for bit: numeric owners, nanosecond mtimes, all xattrs (including
//! `trusted.overlay.*` and `security.capability`), POSIX ACLs, holes, device
//! nodes, fifos, sockets and hardlinks. The archive stays readable by GNU tar
//! (`tar --zstd --xattrs --xattrs-include='*' --acls -xpf`).
//!
//! The extractor ([`extract`]) treats the archive as untrusted input: it parses
//! headers itself and creates every entry with fd-relative calls below a
//! staging directory, never following a symlink and never leaving the staging
//! directory. [`read`] opens archives; [`verify`] checks a whole archive,
//! every data member against the manifest, without extracting it.

pub mod acl;
pub mod data;
pub mod deleted;
pub mod entry;
pub mod error;
pub mod extract;
pub mod header;
pub mod overlay;
pub mod phase2;
pub mod phases;
pub mod pipe;
pub mod read;
pub mod records;
pub mod sink;
pub mod verify;
pub mod walk;
pub mod writer;

pub use entry::{ArchiveEntry, EntryRecord};
pub use error::ArchiveError;
pub use extract::{Extracted, extract};
pub use read::{ArchiveReader, open, open_reader};
pub use verify::{VerifyReport, verify};
pub use walk::walk;
pub use writer::{ArchiveWriter, WriterOptions};

/// The member layout of a dockroot archive, in one place. Members appear in
/// this order: [`META`], then config members under [`CONFIG_DIR`], then the
/// data-root under [`DATA_DIR`], then [`MANIFEST`] as the very last member.
/// A live backup has two runs of data members, [`PHASE2`] between them and
/// [`DELETED`] after the second.
pub mod layout {
    /// First member: JSON describing the backup (written by the caller).
    pub const META: &[u8] = b".dockroot/meta.json";
    /// Host configuration files (daemon.json, drop-ins), caller-chosen names below this.
    pub const CONFIG_DIR: &[u8] = b".dockroot/config/";
    /// The data-root itself; the root directory is the member `data/`.
    pub const DATA_DIR: &[u8] = b"data/";
    /// Last member: the manifest, produced after the data was written.
    pub const MANIFEST: &[u8] = b".dockroot/manifest";
    /// Two-phase (live) archives only: ends phase 1 (JSON about it). Data
    /// members after it are phase 2, again in walk order from `data/`.
    pub const PHASE2: &[u8] = b".dockroot/phase2.json";
    /// Two-phase archives only, after phase 2: the names (`data/...`, each
    /// ended by a NUL byte) that phase 1 archived and the stopped tree no
    /// longer has. The manifest describes the tree after the deletions.
    pub const DELETED: &[u8] = b".dockroot/deleted";
}

/// Escapes an untrusted name for an error message (control bytes, non-ASCII).
pub(crate) fn show(bytes: &[u8]) -> String {
    bytes.escape_ascii().to_string()
}
