//! Docker's downtime is measured one way for move, restore and backup: from
//! just before the first stop command to the API answering with the expected
//! state (move and restore: their health check; backup: `/info` reporting the
//! data-root again). It is reported in the human output, in `--json` and in
//! the journal (`downtime_seconds`).
//!
//! Backup's window with Docker stopped, journaled in the shared journal as
//! operation `backup`: the stop (through the stop contract,
//! [`crate::service::StopGuard`]), the work, the start. A backup killed with
//! Docker down leaves an unfinished journal, so `dockroot rollback` starts
//! Docker again and removes the partial archive, and no other operation
//! begins meanwhile.

use std::path::{Path, PathBuf};
use std::time::{Instant, SystemTime};

use super::intent::Intent;
use super::journal::{Journal, Method, Outcome, StateDir, StepState};
use super::runner::Runner;
use super::stop::{self, Record};
use crate::docker::api::DockerApi;
use crate::plan::{PlanError, Result};
use crate::progress::Progress;
use crate::service::{ServiceKind, ServiceManager};
use crate::util::atomic;

/// Where Docker's downtime happens and what it may leave behind.
pub(crate) struct Window<'a> {
    pub state_dir: &'a Path,
    pub data_root: &'a Path,
    pub svc: &'a dyn ServiceManager,
    pub api: &'a DockerApi,
    /// How long the stop contract waits for a daemon shutting down.
    pub timing: crate::service::wait::Timing,
    /// Files the work creates (a partial archive): removed by a rollback.
    pub creates: Vec<PathBuf>,
}

/// Runs `work` with Docker stopped and always starts it again. Returns the
/// work's value and the downtime in seconds, stop and start included.
pub(crate) fn with_docker_stopped<T>(w: Window, progress: &dyn Progress, work: impl FnOnce() -> Result<T>) -> Result<(T, f64)> {
    stopped_window(w, progress, false, || Ok(()), |()| work(), |_| None, Ok)
}

/// [`with_docker_stopped`] for a live backup. `before` runs first, with
/// Docker running but already journaled (step `phase 1`, which creates the
/// window's files, so a kill in it is rolled back too), and hands its value
/// to `work`; `after` runs once Docker answers again (step `commit`: the
/// archive's fsync and rename, out of the downtime but still undone by a
/// rollback). `note` of the work's value goes into the journal (`phases`).
pub(crate) fn with_docker_stopped_after<B, T, U>(
    w: Window,
    progress: &dyn Progress,
    before: impl FnOnce() -> Result<B>,
    work: impl FnOnce(B) -> Result<T>,
    note: impl FnOnce(&T) -> Option<serde_json::Value>,
    after: impl FnOnce(T) -> Result<U>,
) -> Result<(U, f64)> {
    stopped_window(w, progress, true, before, work, note, after)
}

/// `journaled`: `before` and `after` are journaled steps.
fn stopped_window<B, T, U>(
    w: Window,
    progress: &dyn Progress,
    journaled: bool,
    before: impl FnOnce() -> Result<B>,
    work: impl FnOnce(B) -> Result<T>,
    note: impl FnOnce(&T) -> Option<serde_json::Value>,
    after: impl FnOnce(T) -> Result<U>,
) -> Result<(U, f64)> {
    if w.svc.kind() == ServiceKind::None {
        // dockroot stops nothing, so there is nothing to journal or undo;
        // `none` only checks that no dockerd uses the tree (other writers
        // are the user's business, and a live tree's races are reported).
        let b = before()?;
        let stopping = Instant::now();
        w.svc.stop(progress).map_err(PlanError::service_at("stop Docker"))?;
        let v = work(b)?;
        let downtime = stopping.elapsed().as_secs_f64();
        return Ok((after(v)?, downtime));
    }
    let state = StateDir::new(w.state_dir);
    let (_lock, mut r) = open_journal(&w, &state, progress)?;
    let creates: Vec<Intent> = w.creates.iter().map(|p| Intent::make_tree(p)).collect();
    let b = if journaled { r.step_with("phase 1", creates.clone(), |_| before()) } else { before() };
    let b = match b {
        Ok(b) => b,
        Err(e) => {
            r.j.outcome = Outcome::RolledBack;
            r.save()?;
            return Err(e.abandoned_after_signal());
        }
    };
    let stopping = window_stop(&mut r, &w, progress)?;
    let result = r.step_with("archive", creates.clone(), |_| work(b));
    let started = journaled_start(&mut r, &w, progress);
    let downtime = stopping.elapsed().as_secs_f64();
    if started.is_err() {
        // Unfinished in the journal: `rollback` starts Docker.
        result?;
        return Err(started.expect_err("checked"));
    }
    r.j.downtime_seconds = Some(downtime);
    let done = match result {
        Ok(v) => {
            r.j.phases = note(&v);
            if journaled { r.step_with("commit", creates, |_| after(v)) } else { after(v) }
        }
        Err(e) => Err(e),
    };
    r.j.outcome = if done.is_ok() { Outcome::Done } else { Outcome::RolledBack };
    r.save()?;
    // Docker runs again: a signal's backup ends as undone (exit 3).
    Ok((done.map_err(PlanError::abandoned_after_signal)?, downtime))
}

/// Opens the backup's journal (under the state directory's lock, which the
/// caller holds until the end) and runs the journaled `stop` step. Returns
/// the lock, the runner and the instant of the first stop command. A failed
/// stop is recorded as rolled back: the stop guard started Docker again.
pub(crate) fn journaled_stop<'a>(
    w: &Window,
    state: &'a StateDir,
    progress: &'a dyn Progress,
) -> Result<(std::fs::File, Runner<'a>, Instant)> {
    let (lock, mut r) = open_journal(w, state, progress)?;
    let stopping = window_stop(&mut r, w, progress)?;
    Ok((lock, r, stopping))
}

/// Takes the state directory's lock and saves a new `backup` journal that
/// already names the service to start again (recorded before any stop).
fn open_journal<'a>(w: &Window, state: &'a StateDir, progress: &'a dyn Progress) -> Result<(std::fs::File, Runner<'a>)> {
    // From here a signal undoes the backup instead of leaving Docker down.
    super::signal::install();
    state.check_room(0)?;
    let lock = state.lock()?;
    state.refuse_unfinished()?;
    let ts = atomic::utc_timestamp(SystemTime::now());
    let mut j = Journal::new("backup", format!("backup-{ts}"), w.data_root.into(), w.data_root.into(), Method::None);
    j.socket = w.api.socket.clone();
    // Recorded before the stop: a kill during it is undone by starting again.
    w.svc.remember().map_err(PlanError::service_at("stop Docker"))?;
    j.service = Some(w.svc.record());
    let r = Runner { state, j, progress };
    r.save()?;
    Ok((lock, r))
}

/// The journaled `stop` step ([`stop::stop_step`]) on the window's
/// data-root (the journal's); returns the instant of the first stop command.
/// A failed stop ends the backup as rolled back.
fn window_stop(r: &mut Runner, w: &Window, progress: &dyn Progress) -> Result<Instant> {
    let stopping = Instant::now();
    let stopped = stop::stop_step(r, w.svc, w.api, w.timing, Record::Always, PlanError::service_at("stop Docker"));
    if let Err(e) = stopped {
        if r.j.state("stop") == Some(StepState::Done) {
            // The stop ran to its end, so Docker is down, but the journal
            // could not say so (a full or failing state disk): start it
            // now, outside the journal.
            start(w, progress)?;
        }
        // Otherwise the guard started Docker again (or it never stopped).
        r.j.outcome = Outcome::RolledBack;
        // The step's error says more than a second failure to save would.
        let _ = r.save();
        return Err(e);
    }
    Ok(stopping)
}

/// The journaled `start` step: Docker starts and answers on the data-root
/// (the end of the downtime).
pub(crate) fn journaled_start(r: &mut Runner, w: &Window, progress: &dyn Progress) -> Result<()> {
    let mut ran = false;
    let started = r.step_always("start", |_| {
        ran = true;
        start(w, progress)
    });
    if started.is_err() && !ran {
        // The journal could not record the step, which never ran: start anyway.
        start(w, progress)?;
    }
    started
}

/// Starts Docker and waits until it answers on the data-root.
fn start(w: &Window, progress: &dyn Progress) -> Result<()> {
    w.svc.start(progress).map_err(PlanError::service_at("start Docker again"))?;
    if w.svc.kind() == ServiceKind::None {
        return Ok(()); // dockroot started nothing, so nothing must answer.
    }
    answering_on(w.api, w.data_root).map_err(|msg| PlanError::Health { msg })
}

/// Waits (up to 60 s) for the API to answer and report `root` as its
/// DockerRootDir: the end of the downtime.
pub(crate) fn answering_on(api: &DockerApi, root: &Path) -> std::result::Result<(), String> {
    let deadline = Instant::now() + std::time::Duration::from_secs(60);
    loop {
        match api.info().map(|i| i.check_root(root)) {
            Ok(Ok(())) => return Ok(()),
            Ok(Err(mismatch)) if Instant::now() >= deadline => return Err(mismatch),
            Err(e) if Instant::now() >= deadline => return Err(format!("Docker does not answer on {}: {e}", api.socket.display())),
            _ => std::thread::sleep(std::time::Duration::from_millis(100)),
        }
    }
}
