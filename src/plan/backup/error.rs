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

    /// Writing the archive file failed (the archive layer does not know its name).
    #[error("{}: {source}", path.display())]
    Output {
        path: PathBuf,
        #[source]
        source: crate::archive::ArchiveError,
    },

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

    /// An id of the extracted tree could not be shifted (`--remap-ids`).
    #[error("restore --remap-ids: {0}; nothing was replaced")]
    Remap(#[from] crate::tree::remap::RemapError),
    /// The archive's rootless owner or id ranges are not this host's.
    #[error(
        "the archive is of {user}'s rootless Docker, whose ids differ from the target's here: {differences}; \
         pass --remap-ids to shift every uid and gid (owners, ACLs, file capabilities) into this host's ranges"
    )]
    IdsDiffer { user: String, differences: String },
    /// The staging tree differs from the archive's manifest.
    #[error("the extracted tree differs from the archive's manifest ({count} differences, first: {first}); nothing was replaced")]
    StagingDiffers { count: u64, first: String },

    /// After the swap, Docker came back with other images/containers/volumes.
    #[error("Docker's state after the restore differs from the archive: {0}")]
    Health(String),

    /// The shared journal or one of its steps (lock, unfinished operation, undo).
    #[error(transparent)]
    Plan(#[from] crate::plan::PlanError),

    /// SIGINT, SIGTERM or SIGHUP ended the backup, and Docker runs again.
    #[error("{signal} received: the backup was abandoned; Docker runs again and no partial archive is left")]
    Abandoned { signal: &'static str },

    /// The new archive did not read back clean, so `--keep` deleted nothing.
    #[error(
        "the new archive {} failed its read-back ({why}); the {kept} older archive(s) that --keep would have deleted are kept. Check the backup disk (dmesg, smartctl) and run the backup again",
        archive.display()
    )]
    ReadBack { archive: PathBuf, why: String, kept: usize },

    /// A step failed and the restore was undone; `undo` is the undo's own
    /// error when undoing failed too.
    #[error("{error}; the restore was undone{}", undo.as_ref().map(|u| format!(", but undoing failed: {u}")).unwrap_or_default())]
    Undone { error: Box<BackupError>, undo: Option<Box<crate::plan::PlanError>> },
}

impl BackupError {
    /// An error writing the archive, with the archive's path (`partial`).
    pub(crate) fn naming_output(self, partial: &std::path::Path) -> BackupError {
        match self {
            BackupError::Archive(source @ crate::archive::ArchiveError::Output { .. }) => {
                BackupError::Output { path: partial.into(), source }
            }
            other => other,
        }
    }

    /// What a restore that failed returns once its undo ran (`undo`: the
    /// undo's error, if undoing failed too).
    pub(crate) fn undone(self, undo: Option<crate::plan::PlanError>) -> BackupError {
        BackupError::Undone { error: Box::new(self), undo: undo.map(Box::new) }
    }

    /// What a backup that a signal ended returns once Docker runs again.
    pub(crate) fn abandoned_after_signal(self) -> BackupError {
        match crate::plan::core::signal::received() {
            Some((signal, _)) => BackupError::Abandoned { signal },
            None => self,
        }
    }

    /// The process exit code, as [`crate::plan::PlanError::exit_code`].
    pub fn exit_code(&self) -> i32 {
        use crate::plan::core::error::{EXIT_REFUSED, EXIT_UNDO_FAILED, EXIT_UNDONE};
        match self {
            BackupError::Undone { undo: None, .. } | BackupError::Abandoned { .. } => EXIT_UNDONE,
            BackupError::Undone { undo: Some(_), .. } => EXIT_UNDO_FAILED,
            BackupError::Plan(p) => p.exit_code(),
            BackupError::Refused(_) | BackupError::EngineMismatch { .. } | BackupError::IdsDiffer { .. } => EXIT_REFUSED,
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::plan::PlanError;

    #[test]
    fn an_undone_restore_keeps_the_undos_typed_error_and_says_it() {
        let failed = || BackupError::Health("x".into());
        let undone = failed().undone(None);
        assert_eq!(
            (undone.to_string().as_str(), undone.exit_code()),
            ("Docker's state after the restore differs from the archive: x; the restore was undone", 3)
        );
        let both = failed().undone(Some(PlanError::Health { msg: "y".into() }));
        assert!(matches!(&both, BackupError::Undone { undo: Some(u), .. } if matches!(**u, PlanError::Health { .. })));
        assert!(both.to_string().ends_with("the restore was undone, but undoing failed: step health: y"), "{both}");
        assert_eq!(both.exit_code(), 4);
    }
}
