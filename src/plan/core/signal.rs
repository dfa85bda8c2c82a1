//! SIGINT and SIGTERM during a move: the handler only sets a flag, which the
//! move checks between steps; after Docker was stopped, a set flag makes the
//! move undo itself and start Docker on the old data instead of dying with
//! Docker down.

/// Installs the flag-setting handler for SIGINT and SIGTERM.
pub(crate) fn install() {
    crate::sys::process::catch_termination();
}

/// Whether a signal arrived since [`install`].
pub(crate) fn caught() -> bool {
    crate::sys::process::termination_requested()
}
