//! The one write-ahead step runner of move, restore and backup, and the one
//! undo. A step is saved as `started` with its intents before it acts and
//! as `done` after; undo walks the begun steps in reverse and undoes each
//! intent from the observed state ([`intent::undo`]).

use super::error::{PlanError, Result};
use super::intent::{self, Intent};
use super::journal::{Journal, StateDir, StepState};
use super::signal;
use crate::progress::Progress;

/// Runs journaled steps: `started` (with intents) is saved before, `done` after.
pub struct Runner<'a> {
    pub state: &'a StateDir,
    pub j: Journal,
    pub progress: &'a dyn Progress,
}

impl Runner<'_> {
    pub(crate) fn save(&self) -> Result<()> {
        self.state.save(&self.j)
    }

    /// Runs step `name`, which changes nothing the undo must know about.
    pub(crate) fn step<T, E: From<PlanError>>(&mut self, name: &'static str, f: impl FnOnce(&mut Journal) -> Result<T, E>) -> Result<T, E> {
        self.step_with(name, Vec::new(), f)
    }

    /// Runs step `name` that will make the changes in `intents`, refusing to
    /// begin it after a signal.
    pub(crate) fn step_with<T, E: From<PlanError>>(
        &mut self,
        name: &'static str,
        intents: Vec<Intent>,
        f: impl FnOnce(&mut Journal) -> Result<T, E>,
    ) -> Result<T, E> {
        if signal::caught() {
            return Err(PlanError::Interrupted { step: name }.into());
        }
        self.progress.phase(name, None);
        self.j.begin(name, intents);
        self.save()?;
        super::hooks::crash_hook(name);
        super::hooks::fail_hook(name)?;
        let r = f(&mut self.j)?;
        self.j.set(name, StepState::Done);
        self.save()?;
        self.progress.finish();
        Ok(r)
    }
}

/// Undoes every begun step's intents in reverse order, saving the journal
/// after each step. Docker must be stopped.
pub(crate) fn undo_steps(state: &StateDir, j: &mut Journal, progress: &dyn Progress) -> Result<()> {
    if j.version < super::journal::VERSION && j.steps.iter().any(|s| s.state != StepState::Undone && SWITCH_V1.contains(&s.name.as_str())) {
        return Err(PlanError::Journal {
            path: state.journal_path(),
            msg: format!(
                "written by an older dockroot, which did not record what its steps change; undo by hand: stop Docker, unmount {dr} if the copy is mounted there, put {dr} back from {old} if that exists, restore fstab/daemon.json from their newest *.dockroot-bak-* copy, start Docker, then delete this file",
                dr = j.data_root.display(),
                old = j.old_tree.as_deref().unwrap_or(j.data_root.as_path()).display()
            ),
        });
    }
    for i in (0..j.steps.len()).rev() {
        if j.steps[i].state == StepState::Undone || j.steps[i].intents.is_empty() {
            continue;
        }
        let name = j.steps[i].name.clone();
        progress.phase(&format!("undo {name}"), None);
        super::hooks::fail_hook(&format!("undo:{name}"))?;
        for it in j.steps[i].intents.clone().iter().rev() {
            intent::undo(it)?;
            if let Intent::EditFile { path, .. } = it {
                crate::plan::r#move::switch::daemon_reload(path);
            }
        }
        j.steps[i].state = StepState::Undone;
        state.save(j)?;
        progress.finish();
    }
    Ok(())
}

/// The steps of a version-1 move journal that changed the host.
const SWITCH_V1: [&str; 5] = ["rename", "mount", "fstab", "dropin", "daemon-json"];

#[cfg(test)]
mod tests {
    use super::*;
    use crate::progress::Silent;

    #[test]
    fn a_version_1_journal_with_switch_steps_is_refused_with_what_to_do() {
        let d = tempfile::tempdir().unwrap();
        let state = StateDir::new(d.path().join("state"));
        state.ensure().unwrap();
        let mut j = Journal::for_test(d.path(), super::super::journal::Method::Bind);
        j.version = 1;
        j.set("stop", StepState::Done);
        undo_steps(&state, &mut j, &Silent).unwrap();
        j.set("rename", StepState::Done);
        let e = undo_steps(&state, &mut j, &Silent).unwrap_err().to_string();
        assert!(e.contains("older dockroot") && e.contains("start Docker"), "{e}");
        // The old format still parses (no `version`, no intents).
        let text = serde_json::to_string(&j).unwrap().replace("\"version\":1,", "");
        let back: Journal = serde_json::from_str(&text).unwrap();
        assert_eq!(back.version, 1);
    }
}
