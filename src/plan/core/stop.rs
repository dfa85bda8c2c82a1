//! The one journaled `stop` step of move, restore and backup: Docker is
//! stopped through the stop contract ([`StopGuard`]), the journal records
//! how to start it again, and the guard hands the restart over to the
//! journal's undo. A stop that fails leaves Docker as the guard left it
//! (started again, or never stopped), and the step stays `started`.

use super::error::PlanError;
use super::runner::Runner;
use crate::docker::api::DockerApi;
use crate::service::wait::Timing;
use crate::service::{ServiceError, ServiceManager, StopGuard};

/// When the `stop` step writes the manager's record into the journal.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Record {
    /// Always (restore, backup): the journal holds what `remember` knew
    /// before the stop, and the stop only makes it fresher.
    Always,
    /// Only when the stop captured a daemon command line (move): the
    /// journal already holds the plan's record (with the preflight's
    /// command and containerd's), which a manager that captured nothing
    /// must not replace.
    WhenCaptured,
}

/// Runs the journaled `stop` step on the journal's data-root. The record is
/// written even when the stop fails, so that the undo can tell a daemon that
/// would not stop (still running: nothing to undo) from one that went down.
/// `fail` wraps the stop's error: backup says `stop Docker: …`, move and
/// restore `step stop: …`, as their messages always have.
pub(crate) fn stop_step<E: From<PlanError>>(
    r: &mut Runner,
    svc: &dyn ServiceManager,
    api: &DockerApi,
    timing: Timing,
    record: Record,
    fail: impl FnOnce(ServiceError) -> E,
) -> Result<(), E> {
    let progress = r.progress;
    r.step("stop", |j| {
        let guard = StopGuard::stop(svc, api, timing, &j.data_root, progress);
        if record == Record::Always || svc.recorded_command().is_some() {
            j.service = Some(svc.record());
        }
        // From here the journal's undo owns starting Docker again.
        guard.map_err(fail)?.hand_over();
        Ok(())
    })
}
