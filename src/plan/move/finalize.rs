//! `finalize` deletes the old tree once a move passed its health check.

use std::os::fd::AsFd;
use std::path::PathBuf;

use serde::Serialize;

use crate::plan::Env;
use crate::plan::core::error::{PlanError, Result};
use crate::plan::core::health::expected_root;
use crate::plan::core::intent;
use crate::plan::core::journal::Outcome;
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
        remove_tree(old)?;
    }
    env.state.clear(&j)?;
    Ok(FinalizeReport { data_root: j.data_root, removed, removed_containerd })
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
