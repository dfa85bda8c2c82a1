//! Errors of backup and restore. Each variant names the path or step and its
//! message says what to do next. Kept apart from the move plan's `PlanError`
//! so the two can evolve independently.

use std::io;
use std::path::PathBuf;

#[derive(Debug, thiserror::Error)]
pub enum BackupError {
    /// A file-system step of the backup or restore failed.
    #[error("cannot {step} {}: {err}", path.display())]
    Io { step: &'static str, path: PathBuf, err: io::Error },

    /// The archive layer failed (reading, writing, extracting).
    #[error(transparent)]
    Archive(#[from] crate::archive::ArchiveError),

    /// The manifest layer failed.
    #[error(transparent)]
    Manifest(#[from] crate::error::Error),

    /// Stopping or starting Docker failed.
    #[error("{step}: {err}")]
    Service { step: &'static str, err: crate::service::ServiceError },

    /// Talking to Docker or reading its configuration failed.
    #[error("{step}: {err}")]
    Docker { step: &'static str, err: crate::docker::DockerError },

    /// The archive was made by a newer engine than the one installed (or one
    /// of the versions is unknown).
    #[error(
        "the archive was made with Docker {archive}, but the installed dockerd is {installed}, older or not comparable; Docker \
         does not support running a newer engine's data-root on an older one. Install Docker {archive} or newer, or pass \
         --allow-downgrade to restore anyway"
    )]
    EngineMismatch { archive: String, installed: String },

    /// A precondition is not met; nothing was changed.
    #[error("{0}")]
    Refused(String),

    /// The staging tree differs from the archive's manifest.
    #[error("the extracted tree differs from the archive's manifest ({count} differences, first: {first}); nothing was replaced")]
    StagingDiffers { count: u64, first: String },

    /// After the swap, Docker came back with other images/containers/volumes.
    #[error("Docker's state after the restore differs from the archive: {0}")]
    Health(String),

    /// The shared journal or one of its steps (lock, unfinished operation, undo).
    #[error(transparent)]
    Plan(#[from] crate::plan::PlanError),

    /// A step failed and the restore was undone.
    #[error("{error}; the restore was undone{}", if undo.is_empty() { String::new() } else { format!(", but undoing failed: {}", undo.join("; ")) })]
    Undone { error: Box<BackupError>, undo: Vec<String> },
}

impl BackupError {
    /// The process exit code, as [`crate::plan::PlanError::exit_code`].
    pub fn exit_code(&self) -> i32 {
        use crate::plan::core::error::{EXIT_REFUSED, EXIT_UNDO_FAILED, EXIT_UNDONE};
        match self {
            BackupError::Undone { undo, .. } if undo.is_empty() => EXIT_UNDONE,
            BackupError::Undone { .. } => EXIT_UNDO_FAILED,
            BackupError::Plan(p) => p.exit_code(),
            BackupError::Refused(_) | BackupError::EngineMismatch { .. } => EXIT_REFUSED,
            _ => 1,
        }
    }

    pub(crate) fn io(step: &'static str, path: impl Into<PathBuf>) -> impl FnOnce(io::Error) -> BackupError {
        let path = path.into();
        move |err| BackupError::Io { step, path, err }
    }
    pub(crate) fn service(step: &'static str) -> impl FnOnce(crate::service::ServiceError) -> BackupError {
        move |err| BackupError::Service { step, err }
    }
    pub(crate) fn docker(step: &'static str) -> impl FnOnce(crate::docker::DockerError) -> BackupError {
        move |err| BackupError::Docker { step, err }
    }
}

pub type Result<T> = std::result::Result<T, BackupError>;
