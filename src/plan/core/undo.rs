//! `rollback` puts Docker back on its old data from whatever step a move,
//! restore or backup reached (also after a crash or kill -9, from the
//! journal alone).

use std::path::PathBuf;

use serde::Serialize;

use super::error::{PlanError, Result};
use super::health::{self, expected_root};
use super::identity;
use super::journal::{Journal, Outcome, StateDir, StepState};
use super::runner;
use crate::docker::api::DockerApi;
use crate::docker::snapshot::DockerState;
use crate::plan::Env;
use crate::progress::Progress;
use crate::service::guard::{Settled, settle};
use crate::service::wait::Timing;
use crate::service::{ServiceContext, ServiceKind, verify_stopped_all};

/// What `rollback` did.
#[derive(Debug, Clone, Serialize)]
pub struct RollbackReport {
    /// `move`, `restore` or `backup`.
    pub operation: String,
    pub data_root: PathBuf,
    /// The copy (move: left in place for the user to delete; restore: the staging tree, removed).
    pub target: PathBuf,
    /// A move's copy of containerd's root, left in place like `target`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub containerd_target: Option<PathBuf>,
    pub docker_restarted: bool,
    /// Trees found where dockroot expected none (e.g. an empty data-root a
    /// restarted dockerd made), kept under these names.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub kept_aside: Vec<PathBuf>,
}

/// Undoes the journaled operation `j` (move, restore or backup): stops
/// Docker if it runs, undoes every begun step from the observed state,
/// starts Docker on the old data and checks it. Marks the journal rolled back.
/// Returns whether Docker was started again.
pub(crate) fn undo_journal(api: &DockerApi, timing: Timing, state: &StateDir, j: &mut Journal, progress: &dyn Progress) -> Result<bool> {
    // Nothing is stopped or changed unless every tree the undo puts back is
    // where the journal says, by identity (issue 17).
    runner::check_undo(j).map_err(|e| refused(j, state, api, e))?;
    if !j.touched("stop") {
        // Docker was never stopped: only what the steps made (a staging
        // tree, a volume's swap) goes. A volume's users do not run while
        // its files are renamed back.
        let users = quiesce(api, j)?;
        runner::undo_steps(state, j, progress)?;
        for id in &users {
            api.start_container(id).map_err(PlanError::docker("undo: start a container that uses the volume"))?;
        }
        j.outcome = Outcome::RolledBack;
        state.save(j)?;
        return Ok(false);
    }
    let rec = j.service.clone().ok_or_else(|| PlanError::Journal {
        path: state.journal_path(),
        msg: "no service record: cannot know how to restart Docker; undo by hand".into(),
    })?;
    let ctx = ServiceContext { data_root: j.data_root.clone(), api: api.clone(), timing };
    // Built from the kind alone (a pidfile manager finds its daemon by the
    // pidfile), with the recorded containerd so both are seen and stopped.
    let current = rec.with_containerd(rec.kind.clone().build(&ctx), &ctx);
    if undo_while_running(j) {
        return undo_after_start(api, timing, state, j, progress);
    }
    let switched = j.switched();
    // The stop itself failed (e.g. dockerd ignored SIGTERM) and the daemon
    // still runs on the old data: nothing was changed, do not stop it again.
    // One that was shutting down is waited for and started below.
    if j.state("stop") == Some(StepState::Started) && !switched && settle(current.as_ref(), api, timing) != Settled::Exited {
        j.set("stop", StepState::Undone);
        j.outcome = Outcome::RolledBack;
        state.save(j)?;
        return Ok(false);
    }
    progress.phase("stop", None);
    if current.is_running().map_err(PlanError::service("undo stop"))? {
        current.stop(progress).map_err(PlanError::service("undo stop"))?;
    } else if switched {
        current.stop_rest(progress).map_err(PlanError::service("undo stop"))?;
    }
    // Before unmounting and renaming back, nothing may use the trees. When
    // nothing was switched (the stop itself failed), Docker is just started again.
    if switched {
        let mut paths = vec![j.data_root.clone(), j.target.clone()];
        paths.extend(current.stores());
        paths.extend(j.containerd_move.iter().map(|c| c.target.clone()));
        verify_stopped_all(&paths).map_err(PlanError::service("undo stop"))?;
    }
    runner::undo_steps(state, j, progress)?;
    progress.phase("start", None);
    rec.rebuild(&ctx).start(progress).map_err(PlanError::service("undo start"))?;
    if rec.kind != ServiceKind::None {
        // The same objects as when the operation began, when it recorded them.
        health::check(api, &j.data_root, j.before.as_ref(), progress)?;
    }
    j.outcome = Outcome::RolledBack;
    state.save(j)?;
    progress.finish();
    Ok(true)
}

/// A `restore --volume` or `--bind` whose swap began is undone under the
/// containers that use the piece now (a finished one started them again):
/// they are stopped for the undo. Returns their ids, to start afterwards.
fn quiesce(api: &DockerApi, j: &Journal) -> Result<Vec<String>> {
    if !j.touched("swap") {
        return Ok(vec![]);
    }
    let step = "undo: stop the containers that use the restored files";
    let users = match (&j.volume, &j.bind) {
        (Some(name), _) => api.volume_users(name),
        (None, Some(path)) => api.bind_users(path),
        (None, None) => return Ok(vec![]),
    };
    let mut stopped = Vec::new();
    for u in users.map_err(PlanError::docker(step))?.into_iter().filter(|u| u.active()) {
        api.stop_container(&u.id).map_err(PlanError::docker(step))?;
        stopped.push(u.id);
    }
    Ok(stopped)
}

/// The refusal of an undo whose trees are not where the journal says:
/// what was found, that nothing changed, and what to do instead.
fn refused(j: &Journal, state: &StateDir, api: &DockerApi, e: PlanError) -> PlanError {
    let PlanError::WorldChanged { msg } = e else { return e };
    let docker = match api.info() {
        Ok(i) => format!("Docker keeps running on {}", i.docker_root_dir.display()),
        Err(_) => "Docker was not running and was not started".into(),
    };
    let hint = match (j.operation.as_str(), j.outcome) {
        ("move", Outcome::Moved) => "to keep the move, run `dockroot finalize`".to_string(),
        (op, Outcome::Done) => format!("the finished {op} stays as it is (its journal {} blocks nothing)", state.journal_path().display()),
        _ => format!("put the tree back where the journal {} says, then run `dockroot rollback` again", state.journal_path().display()),
    };
    PlanError::WorldChanged { msg: format!("rollback refused, nothing was changed: {msg}. {docker}; {hint}") }
}

/// Beyond this many seconds after an operation finished, rolling it back
/// is a late rollback: it says what it replaces and needs `--yes`.
const LATE_SECS: u64 = 3600;

/// What a late rollback of a finished move or restore would replace, in
/// words, or `None` when the operation is unfinished or finished recently.
pub fn late_notice(env: &Env) -> Result<Option<String>> {
    let Some(j) = env.state.load()? else { return Ok(None) };
    let finished = matches!((j.operation.as_str(), j.outcome), ("move", Outcome::Moved) | ("restore", Outcome::Done));
    let ago = j.finished_at.map(|t| identity::unix_now().saturating_sub(t));
    if !finished || ago.is_some_and(|a| a < LATE_SECS) {
        return Ok(None);
    }
    let when = ago.map_or("at a time its journal does not record".into(), |a| format!("{} ago", identity::ago(a)));
    let now = env.api.ping().then(|| DockerState::capture(&env.api).ok()).flatten();
    let what = now.map_or("whatever it holds".into(), |s| {
        format!("{} images, {} containers and {} volumes", s.images.len(), s.containers.len(), s.volumes.len())
    });
    let kept = j.old_tree.as_ref().map(|p| format!(", kept in {}", p.display())).unwrap_or_default();
    Ok(Some(format!(
        "the {op} of {dr} finished {when}; rolling it back replaces what Docker runs on now ({what}, with every change made since) with the data from before the {op}{kept}",
        op = j.operation,
        dr = j.data_root.display()
    )))
}

/// Whether `j`'s remaining undo leaves Docker running: a backup that
/// started Docker again (a snapshot backup does before it reads its
/// snapshot) has only the snapshot and the partial archive left to remove.
/// A move or restore that reached its start switched the data-root, so its
/// undo needs Docker stopped.
fn undo_while_running(j: &Journal) -> bool {
    j.operation == "backup" && j.state("start") == Some(StepState::Done)
}

/// Undoes what a backup did after it started Docker again, and starts
/// Docker if it is not running (it died, or was stopped since).
fn undo_after_start(api: &DockerApi, timing: Timing, state: &StateDir, j: &mut Journal, progress: &dyn Progress) -> Result<bool> {
    runner::undo_steps(state, j, progress)?;
    let rec = j.service.clone().ok_or_else(|| PlanError::Journal {
        path: state.journal_path(),
        msg: "no service record: cannot know how to restart Docker; undo by hand".into(),
    })?;
    let ctx = ServiceContext { data_root: j.data_root.clone(), api: api.clone(), timing };
    let restart = rec.kind != ServiceKind::None
        && !rec.with_containerd(rec.kind.clone().build(&ctx), &ctx).is_running().map_err(PlanError::service("undo start"))?;
    if restart {
        progress.phase("start", None);
        rec.rebuild(&ctx).start(progress).map_err(PlanError::service("undo start"))?;
        health::check(api, &j.data_root, None, progress)?;
        progress.finish();
    }
    j.outcome = Outcome::RolledBack;
    state.save(j)?;
    Ok(restart)
}

/// `dockroot rollback`: undoes the operation the journal records, whatever its kind.
pub fn rollback(env: &Env, progress: &dyn Progress) -> Result<RollbackReport> {
    // A signal must not stop an undo (or a deletion) halfway: it only sets a flag.
    crate::plan::core::signal::install();
    let _lock = env.state.lock()?;
    env.state.refuse_legacy_restore()?;
    let mut j = env.state.load()?.ok_or_else(|| PlanError::NoJournal { path: env.state.journal_path(), what: "roll back" })?;
    if j.outcome == Outcome::Finalizing {
        return Err(PlanError::Refused {
            msg: format!(
                "finalize of the move of {} was interrupted and the old tree is partly deleted; run `dockroot finalize` again (Docker runs on {})",
                j.data_root.display(),
                expected_root(&j).display()
            ),
        });
    }
    // A finished restore keeps the previous data-root aside, so it can be undone too.
    let finished_restore = j.outcome == Outcome::Done && (j.operation == "restore" || super::journal::is_piece(&j.operation));
    if matches!(j.outcome, Outcome::RolledBack | Outcome::Done) && !finished_restore {
        return Err(PlanError::Refused {
            msg: format!(
                "the {} of {} recorded in {} was already {}; there is nothing to roll back",
                j.operation,
                j.data_root.display(),
                env.state.journal_path().display(),
                if j.outcome == Outcome::Done { "finished" } else { "rolled back" }
            ),
        });
    }
    let docker_restarted = undo_journal(&env.api, env.timing, &env.state, &mut j, progress)?;
    // The undone operation's manifests are of no further use.
    let _ = crate::sys::remove::remove_tree(&env.state.work_dir(&j.id));
    let containerd_target = j.containerd_move.map(|c| c.target);
    Ok(RollbackReport {
        operation: j.operation,
        data_root: j.data_root,
        target: j.target,
        containerd_target,
        docker_restarted,
        kept_aside: j.kept_aside,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::plan::core::journal::Method;

    #[test]
    fn only_a_backup_past_its_start_is_undone_with_docker_running() {
        let d = tempfile::tempdir().unwrap();
        for op in ["move", "restore", "backup"] {
            let mut j = Journal::for_test(d.path(), Method::None);
            j.operation = op.into();
            j.set("stop", StepState::Done);
            j.set("snapshot", StepState::Done);
            assert!(!undo_while_running(&j), "{op} before its start");
            j.set("start", StepState::Started);
            assert!(!undo_while_running(&j), "{op} during its start");
            j.set("start", StepState::Done);
            assert_eq!(undo_while_running(&j), op == "backup", "{op} after its start");
        }
    }
}
