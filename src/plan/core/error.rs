//! Errors of a plan: move, rollback, finalize, backup and restore. Every
//! message names the path and the step that failed and says what to do next;
//! engine, Docker and service errors are wrapped with the step they happened
//! in and kept as the variant's `#[source]`, so callers can still match them
//! and the CLI prints the chain once (`cli::output::error_text`).

use std::path::PathBuf;

use crate::archive::ArchiveError;
use crate::docker::DockerError;
use crate::service::ServiceError;

/// Result alias for `plan`.
pub type Result<T, E = PlanError> = std::result::Result<T, E>;

/// Everything that can stop a move, rollback, finalize, backup or restore.
#[derive(Debug, thiserror::Error)]
pub enum PlanError {
    /// The preflight found a reason not to start; nothing was changed.
    #[error("preflight: {msg}; nothing was changed")]
    Preflight { msg: String },
    /// The journal or lock in the state directory could not be used.
    #[error("journal {}: {msg}", path.display())]
    Journal { path: PathBuf, msg: String },
    /// Another dockroot holds the lock.
    #[error("another dockroot is running (lock {} is held); wait for it to finish", path.display())]
    Locked { path: PathBuf },
    /// A move was left unfinished.
    #[error("{state} {operation} of {} is recorded in {}; {hint}", data_root.display(), path.display())]
    Unfinished { state: &'static str, operation: String, data_root: PathBuf, path: PathBuf, hint: &'static str },
    /// There is no journal for rollback/finalize.
    #[error("no journal in {}: there is nothing to {what}", path.display())]
    NoJournal { path: PathBuf, what: &'static str },
    /// A step failed on a path.
    #[error("step {step}: {} : {source}", path.display())]
    Io {
        step: &'static str,
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// The copy engine failed.
    #[error("step {step}: {source}")]
    Engine {
        step: &'static str,
        #[source]
        source: crate::error::Error,
    },
    /// The copy finished with per-entry errors.
    #[error("step {step}: {} error(s) copying into {}, first: {}", errors.len(), target.display(), errors.first().map(String::as_str).unwrap_or(""))]
    CopyErrors { step: &'static str, target: PathBuf, errors: Vec<String> },
    /// The copy does not match the source manifest.
    #[error("step verify: {} differs from the source ({count} difference(s), first: {first})", target.display())]
    VerifyFailed { target: PathBuf, count: usize, first: String },
    /// The pre-copy, read back from the target with Docker running, does not
    /// hold what was read from the source. Docker was never stopped.
    #[error(
        "step precopy: the copy on {} does not match what was read from the source ({count} difference(s), first: {first}); Docker was not stopped and nothing on the host changed: check the target disk (dmesg, smartctl) before trying again"
    , target.display())]
    PrecopyMismatch { target: PathBuf, count: usize, first: String },
    /// Docker configuration or API.
    #[error("step {step}: {source}")]
    Docker {
        step: &'static str,
        #[source]
        source: DockerError,
    },
    /// Stopping or starting Docker.
    #[error("step {step}: {source}")]
    Service {
        step: &'static str,
        #[source]
        source: ServiceError,
    },
    /// Docker came back but not as it was.
    #[error("step health: {msg}")]
    Health { msg: String },
    /// SIGINT or SIGTERM arrived.
    #[error("interrupted by a signal during step {step}")]
    Interrupted { step: &'static str },
    /// The move failed and was undone; Docker runs on the old data again.
    #[error("{cause}\nthe move was undone: Docker runs on {} again; the partial copy in {} can be deleted", data_root.display(), target.display())]
    RolledBack {
        #[source]
        cause: Box<PlanError>,
        data_root: PathBuf,
        target: PathBuf,
    },
    /// The move failed and undoing it failed too.
    #[error("{cause}\nundoing the move failed too: {undo}\nthe journal {} records what was done; fix the cause and run `dockroot rollback`", journal.display())]
    UndoFailed {
        #[source]
        cause: Box<PlanError>,
        undo: Box<PlanError>,
        journal: PathBuf,
    },
    /// What `rollback` or `finalize` would act on is not what the journal
    /// recorded (deleted, replaced, or in use by Docker): refused.
    #[error("{msg}")]
    WorldChanged { msg: String },
    /// A refusal that is not a preflight check (finalize too early, a
    /// restore's precondition not met, ...); nothing was changed.
    #[error("{msg}")]
    Refused { msg: String },

    // Backup and restore.
    /// A file-system step of the backup or restore failed.
    #[error("cannot {step} {}: {source}", path.display())]
    File {
        step: &'static str,
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// The archive layer failed (reading, writing, extracting).
    #[error(transparent)]
    Archive(#[from] ArchiveError),
    /// Writing the archive file failed (the archive layer does not know its name).
    #[error("{}: {source}", path.display())]
    Output {
        path: PathBuf,
        #[source]
        source: ArchiveError,
    },
    /// The manifest layer failed.
    #[error(transparent)]
    Manifest(#[from] crate::error::Error),
    /// Stopping or starting Docker failed during a backup or restore.
    #[error("{step}: {source}")]
    ServiceAt {
        step: &'static str,
        #[source]
        source: ServiceError,
    },
    /// Talking to Docker or reading its configuration failed during a backup
    /// or restore.
    #[error("{step}: {source}")]
    DockerAt {
        step: &'static str,
        #[source]
        source: DockerError,
    },
    /// The archive was made by a newer engine than the one installed (or one
    /// of the versions is unknown).
    #[error(
        "the archive was made with Docker {archive}, but the installed dockerd is {installed}, older or not comparable; Docker \
         does not support running a newer engine's data-root on an older one. Install Docker {archive} or newer, or pass \
         --allow-downgrade to restore anyway"
    )]
    EngineMismatch { archive: String, installed: String },
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
    /// After a restore's swap, Docker came back with other
    /// images/containers/volumes than the archive holds.
    #[error("Docker's state after the restore differs from the archive: {0}")]
    StateDiffers(String),
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
    Undone {
        #[source]
        error: Box<PlanError>,
        undo: Option<Box<PlanError>>,
    },
}

/// Exit code: refused before anything changed.
pub(crate) const EXIT_REFUSED: i32 = 2;
/// Exit code: failed and undone; Docker runs on the old data again.
pub(crate) const EXIT_UNDONE: i32 = 3;
/// Exit code: failed and the undo failed too; the message says what to do by
/// hand. Also a rollback or finalize refused because the trees differ from the journal.
pub(crate) const EXIT_UNDO_FAILED: i32 = 4;

impl PlanError {
    /// The process exit code for this error: 2 refused (nothing changed),
    /// 3 failed and undone (a backup a signal abandoned: Docker runs again),
    /// 4 failed and not undone, 1 otherwise.
    pub fn exit_code(&self) -> i32 {
        match self {
            PlanError::Preflight { .. }
            | PlanError::Unfinished { .. }
            | PlanError::Locked { .. }
            | PlanError::Refused { .. }
            | PlanError::NoJournal { .. }
            | PlanError::EngineMismatch { .. }
            | PlanError::IdsDiffer { .. } => EXIT_REFUSED,
            // Refused by a service check before anything changed (e.g. live-restore with running containers).
            PlanError::Service { step: "preflight", .. } => EXIT_REFUSED,
            PlanError::RolledBack { .. } | PlanError::Undone { undo: None, .. } | PlanError::Abandoned { .. } => EXIT_UNDONE,
            PlanError::UndoFailed { .. } | PlanError::WorldChanged { .. } | PlanError::Undone { undo: Some(_), .. } => EXIT_UNDO_FAILED,
            _ => 1,
        }
    }

    pub(crate) fn io(step: &'static str, path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        Self::Io { step, path: path.into(), source }
    }
    pub fn preflight(msg: impl Into<String>) -> Self {
        Self::Preflight { msg: msg.into() }
    }
    pub(crate) fn docker<E: Into<DockerError>>(step: &'static str) -> impl FnOnce(E) -> Self {
        move |source| Self::Docker { step, source: source.into() }
    }
    pub(crate) fn service(step: &'static str) -> impl FnOnce(ServiceError) -> Self {
        move |source| Self::Service { step, source }
    }
    pub(crate) fn engine(step: &'static str) -> impl FnOnce(crate::error::Error) -> Self {
        move |source| Self::Engine { step, source }
    }
    pub(crate) fn refused(msg: impl Into<String>) -> Self {
        Self::Refused { msg: msg.into() }
    }
    /// A backup or restore's file-system step failed on `path`.
    pub(crate) fn file(step: &'static str, path: impl Into<PathBuf>) -> impl FnOnce(std::io::Error) -> Self {
        let path = path.into();
        move |source| Self::File { step, path, source }
    }
    pub(crate) fn service_at(step: &'static str) -> impl FnOnce(ServiceError) -> Self {
        move |source| Self::ServiceAt { step, source }
    }
    pub(crate) fn docker_at(step: &'static str) -> impl FnOnce(DockerError) -> Self {
        move |source| Self::DockerAt { step, source }
    }

    /// An error writing the archive, with the archive's path (`partial`).
    pub(crate) fn naming_output(self, partial: &std::path::Path) -> Self {
        match self {
            Self::Archive(source @ ArchiveError::Output { .. }) => Self::Output { path: partial.into(), source },
            other => other,
        }
    }

    /// What a restore that failed returns once its undo ran (`undo`: the
    /// undo's error, if undoing failed too).
    pub(crate) fn undone(self, undo: Option<PlanError>) -> Self {
        Self::Undone { error: Box::new(self), undo: undo.map(Box::new) }
    }

    /// What a backup that a signal ended returns once Docker runs again.
    pub(crate) fn abandoned_after_signal(self) -> Self {
        match crate::plan::core::signal::received() {
            Some((signal, _)) => Self::Abandoned { signal },
            None => self,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exit_codes_tell_undone_from_undo_failed() {
        let cause = || Box::new(PlanError::Health { msg: "x".into() });
        let undone = PlanError::RolledBack { cause: cause(), data_root: "/d".into(), target: "/t".into() };
        let failed = PlanError::UndoFailed { cause: cause(), undo: cause(), journal: "/j".into() };
        assert_eq!((undone.exit_code(), failed.exit_code()), (EXIT_UNDONE, EXIT_UNDO_FAILED));
        assert_eq!(PlanError::preflight("p").exit_code(), EXIT_REFUSED);
        assert_eq!(PlanError::Health { msg: "x".into() }.exit_code(), 1);
        // Backup and restore: a signal's abandoned backup is undone, a
        // refused restore changed nothing, and only the move's preflight
        // service check is a refusal.
        assert_eq!(PlanError::Abandoned { signal: "SIGINT" }.exit_code(), EXIT_UNDONE);
        let mismatch = PlanError::EngineMismatch { archive: "28".into(), installed: "27".into() };
        assert_eq!((mismatch.exit_code(), PlanError::refused("r").exit_code()), (EXIT_REFUSED, EXIT_REFUSED));
        let stop = || {
            ServiceError::from(DockerError::Write(crate::util::atomic::WriteError {
                path: "/c".into(),
                source: std::io::Error::from_raw_os_error(2),
            }))
        };
        assert_eq!(PlanError::service_at("preflight")(stop()).exit_code(), 1);
        assert_eq!(PlanError::service("preflight")(stop()).exit_code(), EXIT_REFUSED);
    }

    #[test]
    fn an_undone_restore_keeps_the_undos_typed_error_and_says_it() {
        let failed = || PlanError::StateDiffers("x".into());
        let undone = failed().undone(None);
        assert_eq!(
            (undone.to_string().as_str(), undone.exit_code()),
            ("Docker's state after the restore differs from the archive: x; the restore was undone", 3)
        );
        let both = failed().undone(Some(PlanError::Health { msg: "y".into() }));
        assert!(matches!(&both, PlanError::Undone { undo: Some(u), .. } if matches!(**u, PlanError::Health { .. })));
        assert!(both.to_string().ends_with("the restore was undone, but undoing failed: step health: y"), "{both}");
        assert_eq!(both.exit_code(), 4);
    }

    #[test]
    fn every_cause_is_a_typed_source_whose_text_the_message_already_holds() {
        // The CLI drops a cause whose text is in the message, so a chain
        // like this one prints as its top message alone.
        let io = || std::io::Error::from_raw_os_error(2);
        let file = PlanError::file("open", "/a")(io());
        let errors = [
            file.undone(Some(PlanError::Health { msg: "y".into() })),
            PlanError::RolledBack { cause: Box::new(PlanError::io("copy", "/b", io())), data_root: "/d".into(), target: "/t".into() },
            PlanError::service_at("stop Docker")(ServiceError::from(DockerError::Write(crate::util::atomic::WriteError {
                path: "/c".into(),
                source: io(),
            }))),
        ];
        for e in errors {
            let top = e.to_string();
            let mut depth = 0;
            let mut cause = std::error::Error::source(&e);
            while let Some(c) = cause {
                assert!(top.contains(&c.to_string()), "{top:?} lacks its cause {c}");
                depth += 1;
                cause = c.source();
            }
            assert!(depth >= 2, "{top}: the cause chain is cut short");
        }
    }
}
