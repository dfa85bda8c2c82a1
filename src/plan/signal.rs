//! SIGINT and SIGTERM during a move: the handler only sets a flag, which the
//! move checks between steps; after Docker was stopped, a set flag makes the
//! move undo itself and start Docker on the old data instead of dying with
//! Docker down.

use std::sync::atomic::{AtomicBool, Ordering};

use nix::sys::signal::{SaFlags, SigAction, SigHandler, SigSet, Signal, sigaction};

static CAUGHT: AtomicBool = AtomicBool::new(false);

extern "C" fn on_signal(_: libc::c_int) {
    CAUGHT.store(true, Ordering::SeqCst);
}

/// Installs the flag-setting handler for SIGINT and SIGTERM.
pub fn install() {
    let act = SigAction::new(SigHandler::Handler(on_signal), SaFlags::SA_RESTART, SigSet::empty());
    for s in [Signal::SIGINT, Signal::SIGTERM] {
        // SAFETY: the handler only stores to an atomic (async-signal-safe).
        let _ = unsafe { sigaction(s, &act) };
    }
}

/// Whether a signal arrived since [`install`].
pub fn caught() -> bool {
    CAUGHT.load(Ordering::SeqCst)
}
