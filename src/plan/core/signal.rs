//! SIGINT, SIGTERM and SIGHUP in the commands that stop Docker: the
//! handler only counts them. The runner refuses to begin a step after one,
//! and the tree walks, the copy and the archive reader end the step in
//! progress at their next entry or chunk; the operation then undoes itself
//! and starts Docker on the old data instead of dying with Docker down.
//! Later signals change nothing: the undo runs to its end.

/// Installs the counting handler for SIGINT, SIGTERM and SIGHUP.
pub(crate) fn install() {
    crate::sys::process::catch_termination();
}

/// Whether a signal arrived since [`install`].
pub(crate) fn caught() -> bool {
    crate::sys::process::termination_requested()
}

/// The first signal's name and how many arrived (for the CLI's notice).
pub fn received() -> Option<(&'static str, u32)> {
    crate::sys::process::termination_signal()
}

/// The latest signal's name.
pub fn latest() -> Option<&'static str> {
    crate::sys::process::last_signal()
}
