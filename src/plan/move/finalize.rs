//! `finalize` deletes the old tree once a move passed its health check.

use std::path::PathBuf;

use serde::Serialize;

use crate::docker::daemon_json::DaemonJson;
use crate::docker::mountinfo;
use crate::plan::Env;
use crate::plan::core::error::{PlanError, Result};
use crate::plan::core::health::expected_root;
use crate::plan::core::identity::FileId;
use crate::plan::core::intent;
use crate::plan::core::journal::{Journal, Method, Outcome};
use crate::progress::Progress;

/// What `finalize` did.
#[derive(Debug, Clone, Serialize)]
pub struct FinalizeReport {
    pub data_root: PathBuf,
    pub removed: Option<PathBuf>,
    /// containerd's old root, with the containerd image store.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub removed_containerd: Option<PathBuf>,
}

/// `dockroot finalize`: deletes the old tree of a successful move and clears the journal.
pub fn finalize(env: &Env, progress: &dyn Progress) -> Result<FinalizeReport> {
    // A signal must not stop an undo (or a deletion) halfway: it only sets a flag.
    crate::plan::core::signal::install();
    let _lock = env.state.lock()?;
    let mut j = env.state.load()?.ok_or_else(|| PlanError::NoJournal { path: env.state.journal_path(), what: "finalize" })?;
    if !matches!(j.outcome, Outcome::Moved | Outcome::Finalizing) {
        return Err(PlanError::Refused {
            msg: format!(
                "the move of {} is not finished and health-checked (it is {}); run `dockroot rollback`",
                j.data_root.display(),
                j.outcome
            ),
        });
    }
    let removed = j.old_tree.clone();
    let removed_containerd = j.containerd_move.as_ref().and_then(|c| c.old_tree.clone());
    // Before anything is deleted: what would go must be the move's old tree,
    // unused by Docker and free of mounts (issue 17).
    let olds: Vec<&PathBuf> = removed.iter().chain(&removed_containerd).collect();
    check(env, &j, &olds).map_err(|msg| PlanError::WorldChanged { msg: format!("finalize refused, nothing was deleted: {msg}") })?;
    // The data Docker now uses must be on disk before the only other copy
    // goes: both stores, which the move verified and health-checked together.
    intent::flush("finalize", &expected_root(&j))?;
    if let Some(c) = &j.containerd_move {
        intent::flush("finalize", &c.target)?;
    }
    // From the first deletion on, the old tree is no longer whole: recorded
    // first, so `rollback` refuses and `finalize` can be run again.
    j.outcome = Outcome::Finalizing;
    env.state.save(&j)?;
    for old in removed.iter().chain(&removed_containerd) {
        progress.phase("remove old tree", None);
        crate::sys::remove::remove_tree(old).map_err(|e| PlanError::io("finalize", old, e))?;
    }
    env.state.clear(&j)?;
    Ok(FinalizeReport { data_root: j.data_root, removed, removed_containerd })
}

/// Why deleting `olds` now could lose data, if it could: a tree that is
/// not the one the move left (by identity), one Docker runs on (its
/// DockerRootDir, or the source of the bind at the data-root, by dev:ino),
/// one with a mount inside, or Docker not set up on the moved data any more.
fn check(env: &Env, j: &Journal, olds: &[&PathBuf]) -> std::result::Result<(), String> {
    let running = env.api.ping().then(|| env.api.info().ok()).flatten().map(|i| i.data_root());
    let runs_on = running.as_deref().and_then(FileId::shown_at);
    let mounts = mountinfo::read_self().map_err(|e| format!("cannot read the mount table: {e}"))?;
    for old in olds {
        let Some(now) = FileId::of(old) else { continue }; // Gone already (an interrupted finalize).
        if let Some(rec) = j.recorded_id(old).filter(|r| *r != now) {
            return Err(format!(
                "{} is not the tree the move left there (its identity is {now}, the journal recorded {rec}): it was replaced since; check what it holds and delete it yourself if it is not needed",
                old.display()
            ));
        }
        if runs_on.is_some() && (FileId::shown_at(old) == runs_on) {
            return Err(format!(
                "Docker runs on {} (DockerRootDir {}): its configuration was changed back since the move. Point Docker at {} again (or keep it as it is and delete the moved copy yourself), then run `dockroot finalize`",
                old.display(),
                running.as_deref().unwrap_or(old).display(),
                expected_root(j).display()
            ));
        }
        if let Some(m) = mountinfo::below(&mounts, old).first() {
            return Err(format!(
                "{} is mounted ({}) inside {}; dockroot never deletes across a mount: unmount it, then run `dockroot finalize` again",
                m.mount_point.display(),
                m.fstype,
                old.display()
            ));
        }
    }
    let keep = expected_root(j);
    let uses_move = match &running {
        Some(root) => FileId::shown_at(root) == FileId::shown_at(&j.target),
        None => configured_on_target(j),
    };
    if !uses_move {
        let now = running
            .map_or("is not running, and its configuration no longer points at the move".into(), |r| format!("runs on {}", r.display()));
        return Err(format!(
            "Docker {now}, not on the moved data in {} (kept as {}); run `dockroot rollback`, or set Docker up on {} again",
            j.target.display(),
            keep.display(),
            j.target.display()
        ));
    }
    Ok(())
}

/// With Docker stopped: whether what starts it next uses the move's target
/// (the bind shows the target at the data-root, or daemon.json names it).
fn configured_on_target(j: &Journal) -> bool {
    let target = FileId::shown_at(&j.target);
    match j.method {
        Method::DataRoot if !j.rewrite_argv => {
            DaemonJson::load(&j.daemon_json).ok().and_then(|c| c.data_root()).is_some_and(|(p, _)| p == j.target)
        }
        Method::Bind => target.is_some() && FileId::shown_at(&j.data_root) == target,
        // A rewritten command line: nothing on disk to read back.
        _ => true,
    }
}
