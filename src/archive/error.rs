//! Errors of the archive layer. Each variant names the member or path and the
//! step, and its message says what to do next. Names from archives are
//! untrusted: they are escaped with [`super::show`] before they get here.

use std::io;

#[derive(Debug, thiserror::Error)]
pub enum ArchiveError {
    /// `meta.json` is missing fields or is not JSON.
    #[error("the archive's meta.json is invalid: {0}; the archive was not written by this dockroot")]
    Meta(String),
    /// Reading the source tree failed.
    #[error("cannot {step} `{path}` while writing the archive: {source}; check that the source is readable and that Docker is stopped")]
    Source { path: String, step: &'static str, source: io::Error },

    /// The source changed while it was archived (a file shrank).
    #[error("`{path}` changed while it was archived ({what}); stop Docker and run the backup again")]
    SourceChanged { path: String, what: String },

    /// Writing the compressed stream failed.
    #[error("cannot write the archive ({step}): {source}; check free space and permissions at the destination")]
    Output { step: &'static str, source: io::Error },

    /// The caller broke the member layout (e.g. config after data).
    #[error("archive layout violated: {what}; this is a bug in dockroot")]
    Layout { what: String },

    /// Reading or decompressing the archive failed.
    #[error("cannot read the archive ({step}): {source}; the archive is truncated or corrupted, run `dockroot verify` on it")]
    Input { step: &'static str, source: io::Error },

    /// The input is not a zstd tar archive written by dockroot.
    #[error("not a dockroot archive ({what}); give the .tar.zst file written by `dockroot backup`")]
    NotArchive { what: String },

    /// A header or PAX record is malformed.
    #[error("archive member #{index} `{member}` is malformed: {reason}; the archive is corrupted, do not restore it")]
    Malformed { index: u64, member: String, reason: String },

    /// A member tries to escape the staging directory or is otherwise unsafe.
    #[error("archive member `{member}` is rejected: {reason}; the archive is damaged or hostile, do not restore it")]
    Unsafe { member: String, reason: String },

    /// A piece of the archive (`--volume`, `--path`) that it cannot give.
    #[error("{what}: {why}")]
    Piece { what: String, why: String },

    /// A filesystem operation in the staging directory failed.
    #[error(
        "cannot {step} `{path}` in the staging directory: {source}; check free space and that the staging filesystem supports xattrs, devices and ACLs"
    )]
    Staging { path: String, step: &'static str, source: io::Error },

    /// A btrfs subvolume (the btrfs storage driver's layers) cannot be
    /// recreated off btrfs; a plain directory would leave Docker unable to
    /// snapshot it.
    #[error(
        "archive member `{member}` is a btrfs subvolume and the staging directory is not on btrfs; restore onto a btrfs filesystem (the btrfs storage driver needs one)"
    )]
    NotBtrfs { member: String },

    /// The temporary manifest of a verification could not be written or read.
    #[error("cannot {step} the temporary manifest of the archive's members: {source}; set TMPDIR to a directory with free space")]
    Scratch { step: &'static str, source: io::Error },

    /// A terminating signal arrived while the archive was read (extract, verify).
    #[error("stopped by {0} while reading the archive")]
    Interrupted(&'static str),

    /// The engine failed: walking the source tree, or a manifest (the
    /// archive's, or the temporary one) is damaged or cannot be written. The
    /// engine's error names the path and the step.
    /// The restic repository (upload, dump, snapshots, forget).
    #[error(transparent)]
    Restic(#[from] super::restic::ResticError),
    #[error(transparent)]
    Manifest(#[from] crate::error::Error),
}

pub type Result<T> = std::result::Result<T, ArchiveError>;
