//! Typed errors of the engine.
//!
//! Rules: every error names the path (escaped for the terminal) and the step
//! that failed, and where it can, says what the user should do. A per-entry
//! failure is collected and reported at the end with a non-zero exit; it is
//! never downgraded to a warning that could be lost.

use std::io;

use crate::util::display::display;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A system call on an entry failed.
    #[error("{step} {path}: {source}{}", hint(source))]
    Io {
        step: &'static str,
        path: String,
        #[source]
        source: io::Error,
    },

    /// Setting or reading one extended attribute failed.
    #[error("{step} xattr {name} on {path}: {source}{}", hint(source))]
    Xattr {
        step: &'static str,
        name: String,
        path: String,
        #[source]
        source: io::Error,
    },

    /// An entry changed or vanished while it was copied without `--live`.
    #[error(
        "{path}: {what} while it was being read; stop whatever writes to the tree (e.g. Docker) or pass --live and run a --delete pass afterwards"
    )]
    Changed { path: String, what: &'static str },

    /// A manifest file could not be parsed.
    #[error("manifest {path}, line {line}: {msg}; the file is damaged or not a dockroot manifest")]
    Manifest { path: String, line: u64, msg: String },

    /// A walker or worker thread panicked (a bug). Its entry, or the rest of
    /// the walk, is reported as this error, never as a shorter tree.
    #[error("{path}: internal error, a thread panicked ({what}); the operation is incomplete, please report this bug")]
    Panicked { path: String, what: String },

    /// A terminating signal arrived: the walk ended before the tree did.
    #[error("{path}: interrupted by {signal}: the walk stopped before its end")]
    Interrupted { path: String, signal: &'static str },

    /// The user asked for something that cannot be done safely.
    #[error("{path}: {msg}")]
    Refused { path: String, msg: String },
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Adds advice for the errors a user can act on.
fn hint(e: &io::Error) -> &'static str {
    match e.raw_os_error() {
        Some(libc::ENOSPC) | Some(libc::EDQUOT) => " (the target is full: free space there or choose a larger disk)",
        Some(libc::EPERM) | Some(libc::EACCES) => " (dockroot must run as root with CAP_SYS_ADMIN, CAP_MKNOD and CAP_FOWNER)",
        Some(libc::EOPNOTSUPP) => " (the target filesystem does not support this; use ext4, xfs or btrfs)",
        Some(libc::ENAMETOOLONG) => " (a single name is longer than the target filesystem allows)",
        Some(libc::EROFS) => " (the target is mounted read-only)",
        _ => "",
    }
}

/// The message of a panic payload.
pub(crate) fn panic_message(p: &(dyn std::any::Any + Send)) -> String {
    p.downcast_ref::<&str>().map(|s| s.to_string()).or_else(|| p.downcast_ref::<String>().cloned()).unwrap_or_else(|| "no message".into())
}

/// Joins a root and a relative path for messages.
pub(crate) fn show(root: &std::path::Path, rel: &[u8]) -> String {
    use std::os::unix::ffi::OsStrExt;
    let mut p = root.as_os_str().as_bytes().to_vec();
    if !rel.is_empty() {
        if p.last() != Some(&b'/') {
            p.push(b'/');
        }
        p.extend_from_slice(rel);
    }
    display(&p)
}

impl Error {
    pub(crate) fn io(step: &'static str, root: &std::path::Path, rel: &[u8], source: io::Error) -> Error {
        Error::Io { step, path: show(root, rel), source }
    }

    /// Whether the error is a race with a writer (the entry vanished or
    /// changed while it was read).
    pub(crate) fn is_race(&self) -> bool {
        matches!(self, Error::Changed { .. })
    }
}
