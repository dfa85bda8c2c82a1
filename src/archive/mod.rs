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
pub mod pick;
pub mod pipe;
pub mod read;
pub mod records;
pub mod restic;
pub mod sink;
pub mod trees;
pub mod verify;
pub mod walk;
pub mod writer;
mod writers;

pub use entry::{ArchiveEntry, EntryRecord};
pub use error::ArchiveError;
pub use extract::{Extracted, Target, Targets, extract, extract_piece, extract_trees};
pub use layout::Tree;
pub use read::{ArchiveReader, open, open_reader};
pub use verify::{TreeReport, VerifyReport, verify};
pub use walk::{TreeSource, walk};
pub use writer::{ArchiveWriter, WriterOptions};

pub mod layout;

/// Escapes an untrusted name for an error message (control bytes, non-ASCII).
pub(crate) fn show(bytes: &[u8]) -> String {
    bytes.escape_ascii().to_string()
}
