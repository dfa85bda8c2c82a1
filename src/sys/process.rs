//! The few process-level calls the upper layers need that are `unsafe` in
//! libc or std: wrapped here so that `unsafe` lives in `sys` only.

use std::io;
use std::os::fd::{AsRawFd, BorrowedFd};
use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::Command;
use std::sync::atomic::{AtomicBool, Ordering};

/// Takes an exclusive `flock` without waiting: `Ok(false)` when another
/// process holds it.
pub(crate) fn try_lock_exclusive(fd: BorrowedFd<'_>) -> io::Result<bool> {
    // SAFETY: flock on a valid fd has no memory effects.
    if unsafe { libc::flock(fd.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) } == 0 {
        return Ok(true);
    }
    let e = io::Error::last_os_error();
    if e.raw_os_error() == Some(libc::EWOULDBLOCK) { Ok(false) } else { Err(e) }
}

/// `statfs(2)` of a path: (f_type, free bytes for root).
pub(crate) fn statfs(path: &Path) -> io::Result<(i64, u64)> {
    let c = super::path_cstr(path)?;
    let mut s = std::mem::MaybeUninit::<libc::statfs>::zeroed();
    // SAFETY: c is a valid C string and s a valid out-pointer.
    if unsafe { libc::statfs(c.as_ptr(), s.as_mut_ptr()) } != 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: zero-initialised plain data, filled by the kernel.
    let s = unsafe { s.assume_init() };
    // The field types differ between architectures.
    #[allow(clippy::unnecessary_cast)]
    Ok((s.f_type as i64, s.f_bfree as u64 * s.f_bsize as u64))
}

/// Makes the child of `cmd` get SIGKILL when the thread that spawns it
/// exits, a killed dockroot included, so that a helper fed through a pipe
/// (restic reading an archive) dies with us instead of taking the pipe's
/// EOF for the end of a complete stream. Spawn from a thread that outlives
/// the child (the main thread).
pub(crate) fn die_with_parent(cmd: &mut Command) {
    // SAFETY: prctl(PR_SET_PDEATHSIG) is async-signal-safe and touches no
    // memory of the parent.
    unsafe {
        cmd.pre_exec(|| {
            if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL as libc::c_ulong, 0, 0, 0) != 0 {
                return Err(io::Error::last_os_error());
            }
            Ok(())
        });
    }
}

/// Makes the child of `cmd` lead a new session (detached from our terminal
/// and process group), as a daemon started by hand must.
pub(crate) fn spawn_in_new_session(cmd: &mut Command) {
    // SAFETY: setsid is async-signal-safe and touches no memory of the parent.
    unsafe {
        cmd.pre_exec(|| nix::unistd::setsid().map(|_| ()).map_err(io::Error::from));
    }
}

static TERMINATION: AtomicBool = AtomicBool::new(false);

extern "C" fn on_termination(_: libc::c_int) {
    // Only an atomic store: async-signal-safe.
    TERMINATION.store(true, Ordering::SeqCst);
}

/// Replaces the default action of SIGINT and SIGTERM with setting a flag,
/// read by [`termination_requested`].
pub(crate) fn catch_termination() {
    use nix::sys::signal::{SaFlags, SigAction, SigHandler, SigSet, Signal, sigaction};
    let act = SigAction::new(SigHandler::Handler(on_termination), SaFlags::SA_RESTART, SigSet::empty());
    for s in [Signal::SIGINT, Signal::SIGTERM] {
        // SAFETY: the handler only stores to an atomic (async-signal-safe).
        let _ = unsafe { sigaction(s, &act) };
    }
}

/// Whether SIGINT or SIGTERM arrived since [`catch_termination`].
pub(crate) fn termination_requested() -> bool {
    TERMINATION.load(Ordering::SeqCst)
}
