//! TEST-ONLY fault injection hooks the runner calls at every step.

use super::error::{PlanError, Result};

/// TEST-ONLY fault injection: when `DOCKROOT_TEST_CRASH_AT` names this step,
/// the process aborts right after the step is journaled as started, as if it were killed with SIGKILL there.
/// Used by tests/plan/faults.rs and tests/backup to exercise `rollback` after
/// a crash; never set it in production.
pub(crate) fn crash_hook(name: &str) {
    if std::env::var_os("DOCKROOT_TEST_CRASH_AT").is_some_and(|v| v == name) {
        std::process::abort();
    }
}

/// TEST-ONLY fault injection: when the comma-separated
/// `DOCKROOT_TEST_FAIL_AT` names `name` (a step, or `undo:<step>`), that
/// step fails right after it is journaled as started, before it acts, as if
/// its action had failed. Used by tests/plan/faults.rs to reach exit codes 3
/// and 4; never set it in production.
pub(crate) fn fail_hook(name: &str) -> Result<()> {
    let Some(v) = std::env::var_os("DOCKROOT_TEST_FAIL_AT") else { return Ok(()) };
    if v.to_string_lossy().split(',').any(|x| x == name) {
        return Err(PlanError::Refused { msg: format!("test failure injected at {name} (DOCKROOT_TEST_FAIL_AT)") });
    }
    Ok(())
}
