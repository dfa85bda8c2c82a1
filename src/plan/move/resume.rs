//! `move --resume`: undo the interrupted move, empty its partial copy, start afresh.

use crate::plan::Env;
use crate::plan::core::error::{PlanError, Result};
use crate::plan::core::journal::{Journal, Outcome};
use crate::plan::core::undo::rollback;
use crate::progress::Progress;

/// `move --resume`, first half: the interrupted move to resume. Refuses
/// when there is none, when the journal is another operation's, and when the
/// move finished (finalize or roll it back instead).
pub fn resumable(env: &Env) -> Result<Journal> {
    let j = env.state.load()?.ok_or_else(|| PlanError::NoJournal { path: env.state.journal_path(), what: "resume" })?;
    let refuse = |msg: String| Err(PlanError::Refused { msg });
    match (j.operation.as_str(), j.outcome) {
        ("move", Outcome::InProgress | Outcome::RolledBack) => Ok(j),
        ("move", _) => refuse(format!(
            "move --resume: the move of {} to {} finished; run `dockroot finalize` to keep it or `dockroot rollback` to undo it",
            j.data_root.display(),
            j.target.display()
        )),
        (op, _) => refuse(format!(
            "move --resume: the journal {} records a {op}, not a move; run `dockroot rollback` if it is unfinished",
            env.state.journal_path().display()
        )),
    }
}

/// `move --resume`, second half: undoes the interrupted move `j` (if not
/// yet undone) and, when the move goes to the same target, empties the
/// partial copy there (preflight required it empty or absent, so all of it is
/// the interrupted move's) so the move starts afresh.
pub fn undo_for_resume(env: &Env, j: &Journal, same_target: bool, progress: &dyn Progress) -> Result<()> {
    if j.outcome == Outcome::InProgress {
        rollback(env, progress)?;
    }
    if same_target {
        for t in j.containerd_move.iter().map(|c| &c.target) {
            clear_dir(t).map_err(|e| PlanError::io("resume", t, e))?;
        }
        clear_dir(&j.target).map_err(|e| {
            PlanError::io(
                "resume",
                &j.target,
                std::io::Error::other(format!(
                    "cannot empty the partial copy ({e}); delete its contents by hand and run `dockroot move --to {}`",
                    j.target.display()
                )),
            )
        })?;
    }
    Ok(())
}

/// Deletes what is inside `dir` (not `dir` itself, which may be a mount point).
fn clear_dir(dir: &std::path::Path) -> std::io::Result<()> {
    let rd = match std::fs::read_dir(dir) {
        Ok(rd) => rd,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(e),
    };
    for e in rd {
        let e = e?;
        if e.file_type()?.is_dir() {
            std::fs::remove_dir_all(e.path())?;
        } else {
            std::fs::remove_file(e.path())?;
        }
    }
    Ok(())
}
