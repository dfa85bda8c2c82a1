//! `rollback` puts Docker back on its old data from whatever step a move
//! reached (also after a crash or kill -9, from the journal alone);
//! `finalize` deletes the old tree once a move passed its health check.

use std::os::fd::AsFd;
use std::path::PathBuf;

use serde::Serialize;

use super::error::{PlanError, Result};
use super::journal::{Journal, Outcome, StateDir};
use super::move_::health;
use super::{Env, switch};
use crate::progress::Progress;
use crate::service::verify_stopped;

/// What `rollback` did.
#[derive(Debug, Clone, Serialize)]
pub struct RollbackReport {
    pub data_root: PathBuf,
    /// The copy, left in place for the user to delete.
    pub target: PathBuf,
    pub docker_restarted: bool,
}

/// What `finalize` did.
#[derive(Debug, Clone, Serialize)]
pub struct FinalizeReport {
    pub data_root: PathBuf,
    pub removed: Option<PathBuf>,
}

/// Undoes the journaled move `j`: stops Docker if it runs, undoes the
/// switch steps, starts Docker on the old data and checks it. Marks the
/// journal rolled back.
pub fn undo_journal(env: &Env, state: &StateDir, j: &mut Journal, progress: &dyn Progress) -> Result<bool> {
    if !j.touched("stop") {
        j.outcome = Outcome::RolledBack;
        state.save(j)?;
        return Ok(false);
    }
    let rec = j.service.clone().ok_or_else(|| PlanError::Journal {
        path: state.journal_path(),
        msg: "no service record: cannot know how to restart Docker; undo by hand".into(),
    })?;
    let ctx = env.ctx(&j.data_root);
    let current = rec.kind.clone().build(&ctx);
    let switched = ["rename", "mount", "fstab", "dropin", "daemon-json"].iter().any(|s| j.touched(s));
    // The stop itself failed (e.g. dockerd ignored SIGTERM) and the daemon
    // still runs on the old data: nothing was changed, do not stop it again.
    if j.state("stop") == Some(super::journal::StepState::Started)
        && !switched
        && current.is_running().map_err(PlanError::service("undo stop"))?
    {
        j.set("stop", super::journal::StepState::Undone);
        j.outcome = Outcome::RolledBack;
        state.save(j)?;
        return Ok(false);
    }
    progress.phase("stop", None);
    if current.is_running().map_err(PlanError::service("undo stop"))? {
        current.stop(progress).map_err(PlanError::service("undo stop"))?;
    }
    // Before unmounting and renaming back, nothing may use the trees. When
    // the switch never began (the stop itself failed), Docker is just
    // started again.
    for p in [&j.data_root, &j.target] {
        if switched && p.exists() {
            verify_stopped(p).map_err(PlanError::service("undo stop"))?;
        }
    }
    switch::undo(state, j, progress)?;
    progress.phase("start", None);
    rec.rebuild(&ctx).start(progress).map_err(PlanError::service("undo start"))?;
    health(env, &j.data_root, None, progress)?;
    j.outcome = Outcome::RolledBack;
    state.save(j)?;
    progress.finish();
    Ok(true)
}

/// `dockroot rollback`.
pub fn rollback(env: &Env, progress: &dyn Progress) -> Result<RollbackReport> {
    let _lock = env.state.lock()?;
    let mut j = env.state.load()?.ok_or_else(|| PlanError::NoJournal { path: env.state.journal_path(), what: "roll back" })?;
    if j.outcome == Outcome::RolledBack {
        return Err(PlanError::Refused {
            msg: format!(
                "the move of {} recorded in {} was already rolled back",
                j.data_root.display(),
                env.state.journal_path().display()
            ),
        });
    }
    let docker_restarted = undo_journal(env, &env.state, &mut j, progress)?;
    Ok(RollbackReport { data_root: j.data_root, target: j.target, docker_restarted })
}

/// `dockroot finalize`: deletes the old tree of a successful move and clears the journal.
pub fn finalize(env: &Env, progress: &dyn Progress) -> Result<FinalizeReport> {
    let _lock = env.state.lock()?;
    let j = env.state.load()?.ok_or_else(|| PlanError::NoJournal { path: env.state.journal_path(), what: "finalize" })?;
    if j.outcome != Outcome::Moved {
        return Err(PlanError::Refused {
            msg: format!(
                "the move of {} is not finished and health-checked (it is {}); run `dockroot rollback`",
                j.data_root.display(),
                j.outcome
            ),
        });
    }
    let removed = j.old_tree.clone();
    if let Some(old) = &removed {
        progress.phase("remove old tree", None);
        remove_tree(old)?;
    }
    env.state.clear(&j)?;
    Ok(FinalizeReport { data_root: j.data_root, removed })
}

fn remove_tree(path: &std::path::Path) -> Result<()> {
    let err = |e| PlanError::io("finalize", path, e);
    let (Some(parent), Some(name)) = (path.parent(), path.file_name()) else {
        return Err(PlanError::Refused { msg: format!("refusing to remove {}", path.display()) });
    };
    if !path.exists() {
        return Ok(());
    }
    let dir = crate::sys::fs::open_dir_path(parent).map_err(err)?;
    let name = crate::sys::path_cstr(std::path::Path::new(name)).map_err(err)?;
    crate::sys::fs::remove_tree_at(dir.as_fd(), &name).map_err(err)
}
