//! Errors of a relocation. Every message names the path and the step that
//! failed and says what to do next; engine, Docker and service errors are
//! wrapped with the step they happened in.

use std::path::PathBuf;

use crate::docker::DockerError;
use crate::service::ServiceError;

/// Result alias for `plan`.
pub type Result<T, E = PlanError> = std::result::Result<T, E>;

/// Everything that can stop a move, rollback or finalize.
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
    RolledBack { cause: Box<PlanError>, data_root: PathBuf, target: PathBuf },
    /// The move failed and undoing it failed too.
    #[error("{cause}\nundoing the move failed too: {undo}\nthe journal {} records what was done; fix the cause and run `dockroot rollback`", journal.display())]
    UndoFailed { cause: Box<PlanError>, undo: Box<PlanError>, journal: PathBuf },
    /// A refusal that is not a preflight check (finalize too early, ...).
    #[error("{msg}")]
    Refused { msg: String },
}

/// Exit code: refused before anything changed.
pub(crate) const EXIT_REFUSED: i32 = 2;
/// Exit code: failed and undone; Docker runs on the old data again.
pub(crate) const EXIT_UNDONE: i32 = 3;
/// Exit code: failed and the undo failed too; the message says what to do by hand.
pub(crate) const EXIT_UNDO_FAILED: i32 = 4;

impl PlanError {
    /// The process exit code for this error: 2 refused (nothing changed),
    /// 3 failed and undone, 4 failed and not undone, 1 otherwise.
    pub fn exit_code(&self) -> i32 {
        match self {
            PlanError::Preflight { .. }
            | PlanError::Unfinished { .. }
            | PlanError::Locked { .. }
            | PlanError::Refused { .. }
            | PlanError::NoJournal { .. } => EXIT_REFUSED,
            // Refused by a service check before anything changed (e.g. live-restore with running containers).
            PlanError::Service { step: "preflight", .. } => EXIT_REFUSED,
            PlanError::RolledBack { .. } => EXIT_UNDONE,
            PlanError::UndoFailed { .. } => EXIT_UNDO_FAILED,
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
    }
}
