//! The few process-level calls the upper layers need that are `unsafe` in
//! libc or std: wrapped here so that `unsafe` lives in `sys` only.

use std::io;
use std::os::fd::{AsRawFd, BorrowedFd};
use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::Command;
use std::sync::atomic::{AtomicI32, AtomicU32, Ordering};

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

/// The first terminating signal caught (0: none yet), and how many arrived.
static SIGNAL: AtomicI32 = AtomicI32::new(0);
static SIGNALS: AtomicU32 = AtomicU32::new(0);
/// The latest one.
static LAST: AtomicI32 = AtomicI32::new(0);

extern "C" fn on_termination(sig: libc::c_int) {
    // Only atomic stores: async-signal-safe.
    let _ = SIGNAL.compare_exchange(0, sig, Ordering::SeqCst, Ordering::SeqCst);
    LAST.store(sig, Ordering::SeqCst);
    SIGNALS.fetch_add(1, Ordering::SeqCst);
}

/// The signals that end a run: ^C, `kill`/`systemctl stop`, a dropped
/// terminal or SSH session.
const TERMINATING: [nix::sys::signal::Signal; 3] =
    [nix::sys::signal::Signal::SIGINT, nix::sys::signal::Signal::SIGTERM, nix::sys::signal::Signal::SIGHUP];

/// Replaces the default action of SIGINT, SIGTERM and SIGHUP with counting
/// them, read by [`termination_requested`] and [`termination_signal`].
pub(crate) fn catch_termination() {
    use nix::sys::signal::{SaFlags, SigAction, SigHandler, SigSet, sigaction};
    let act = SigAction::new(SigHandler::Handler(on_termination), SaFlags::SA_RESTART, SigSet::empty());
    for s in TERMINATING {
        // SAFETY: the handler only stores to atomics (async-signal-safe).
        let _ = unsafe { sigaction(s, &act) };
    }
}

/// Whether a terminating signal arrived since [`catch_termination`].
pub fn termination_requested() -> bool {
    SIGNAL.load(Ordering::SeqCst) != 0
}

/// The first terminating signal's name and how many arrived in all.
pub fn termination_signal() -> Option<(&'static str, u32)> {
    let sig = nix::sys::signal::Signal::try_from(SIGNAL.load(Ordering::SeqCst)).ok()?;
    Some((sig.as_str(), SIGNALS.load(Ordering::SeqCst)))
}

/// The name of the latest terminating signal.
pub fn last_signal() -> Option<&'static str> {
    nix::sys::signal::Signal::try_from(LAST.load(Ordering::SeqCst)).ok().map(|s| s.as_str())
}

/// What a long read, write or walk returns once a terminating signal
/// arrived: the step in progress ends early and is undone.
#[derive(Debug, thiserror::Error)]
#[error("stopped by {0}")]
pub struct Stopped(pub &'static str);

/// `Err` (an [`io::Error`] carrying [`Stopped`]) once a terminating signal
/// arrived: the loops that read or write content call it per chunk, so a
/// signal ends an hour-long copy within a chunk's time.
pub(crate) fn check_stop() -> io::Result<()> {
    match termination_signal() {
        Some((name, _)) => Err(io::Error::other(Stopped(name))),
        None => Ok(()),
    }
}
