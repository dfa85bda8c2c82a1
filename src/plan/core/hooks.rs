//! TEST-ONLY fault injection hooks the runner calls at every step. They read
//! the environment only in a build with the `test-hooks` feature (what
//! scripts/test.sh builds); the release build and the .deb get no-ops.

#[cfg(feature = "test-hooks")]
use super::error::PlanError;
use super::error::Result;

/// TEST-ONLY fault injection: when `DOCKROOT_TEST_CRASH_AT` names this step,
/// the process aborts right after the step is journaled as started, as if it were killed with SIGKILL there.
/// Used by tests/plan/faults.rs and tests/backup to exercise `rollback` after
/// a crash; never set it in production.
#[cfg(feature = "test-hooks")]
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
#[cfg(feature = "test-hooks")]
pub(crate) fn fail_hook(name: &str) -> Result<()> {
    let Some(v) = std::env::var_os("DOCKROOT_TEST_FAIL_AT") else { return Ok(()) };
    if v.to_string_lossy().split(',').any(|x| x == name) {
        return Err(PlanError::Refused { msg: format!("test failure injected at {name} (DOCKROOT_TEST_FAIL_AT)") });
    }
    Ok(())
}

/// TEST-ONLY fault injection: with `DOCKROOT_TEST_DAMAGE_ARCHIVE` set, one
/// byte in the middle of the archive just written is flipped before its
/// read-back, as a failing disk would. Used by tests/backup to show that
/// `--keep` then deletes nothing; never set it in production.
#[cfg(feature = "test-hooks")]
pub(crate) fn damage_hook(archive: &std::path::Path) {
    use std::os::unix::fs::FileExt;
    if std::env::var_os("DOCKROOT_TEST_DAMAGE_ARCHIVE").is_none() {
        return;
    }
    if let Ok(f) = std::fs::OpenOptions::new().read(true).write(true).open(archive) {
        let at = f.metadata().map(|m| m.len() / 2).unwrap_or(0);
        let mut b = [0u8];
        if f.read_exact_at(&mut b, at).is_ok() {
            let _ = f.write_all_at(&[!b[0]], at);
        }
    }
}

#[cfg(not(feature = "test-hooks"))]
pub(crate) fn damage_hook(_: &std::path::Path) {}

#[cfg(not(feature = "test-hooks"))]
pub(crate) fn crash_hook(_: &str) {}

#[cfg(not(feature = "test-hooks"))]
pub(crate) fn fail_hook(_: &str) -> Result<()> {
    Ok(())
}
