//! Which errors on the *source* side of a walk are races with a writer (the
//! error type lives at the bottom layer, which cannot know `sys`).

use std::io;
use std::path::Path;

use crate::error::{Error, show};
use crate::sys;

impl Error {
    /// An error on the *source* side: an entry that no longer exists becomes
    /// `Changed { what: "vanished" }`, one that another inode or type took the
    /// place of (a symlink: ELOOP; see `sys::seen`) `Changed { what:
    /// "replaced" }`. A live walk counts both as races. Destination errors
    /// never go through here, so they are never excused.
    pub(crate) fn source(step: &'static str, root: &Path, rel: &[u8], source: io::Error) -> Error {
        if matches!(source.raw_os_error(), Some(libc::ENOENT) | Some(libc::ENOTDIR)) {
            return Error::Changed { path: show(root, rel), what: "vanished" };
        }
        if sys::seen::is_race(&source) {
            return Error::Changed { path: show(root, rel), what: "replaced" };
        }
        Error::io(step, root, rel, source)
    }
}

#[cfg(test)]
mod tests {
    use std::io;

    use crate::error::Error;
    use crate::sys::Kind;
    use crate::sys::seen::Replaced;

    #[test]
    fn source_side_races_are_changes_and_other_errors_stay_errors() {
        let what = |e: io::Error| match Error::source("open", std::path::Path::new("/r"), b"x", e) {
            Error::Changed { what, .. } => what,
            other => panic!("not a race: {other}"),
        };
        assert_eq!(what(io::Error::from_raw_os_error(libc::ENOENT)), "vanished");
        assert_eq!(what(io::Error::from_raw_os_error(libc::ENOTDIR)), "vanished");
        assert_eq!(what(io::Error::from_raw_os_error(libc::ELOOP)), "replaced");
        assert_eq!(what(io::Error::other(Replaced { saw: Kind::File, found: Kind::Char })), "replaced");
        let e = Error::source("open", std::path::Path::new("/r"), b"x", io::Error::from_raw_os_error(libc::EIO));
        assert!(!e.is_race(), "{e}");
    }
}
