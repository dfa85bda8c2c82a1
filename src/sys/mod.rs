//! The system-call layer: fd-relative filesystem operations.
//!
//! Everything here works relative to an open directory fd plus one path
//! component, so trees deeper than PATH_MAX can be read and written. The
//! functions return plain `io::Result`; the callers above add the path and the
//! step to every error.

pub mod btrfs;
pub mod fs;
pub mod holes;
pub mod mount;
pub mod process;
pub mod reflink;
pub mod remove;
pub mod seen;
pub mod stat;
pub mod xattr;

#[cfg(test)]
mod nofollow_audit;

pub use fs::*;
pub(crate) use remove::remove_tree_at;
pub use stat::{Kind, Meta, Timespec};

use std::ffi::{CStr, CString};
use std::os::unix::ffi::OsStrExt;
use std::path::Path;

/// Turns a path or name into a C string; a NUL byte cannot occur in a real name.
pub(crate) fn cstr(bytes: &[u8]) -> std::io::Result<CString> {
    CString::new(bytes).map_err(|_| std::io::Error::new(std::io::ErrorKind::InvalidInput, "name contains a NUL byte"))
}

pub(crate) fn path_cstr(p: &Path) -> std::io::Result<CString> {
    cstr(p.as_os_str().as_bytes())
}

/// A libc return code as a result: negative means `errno` holds the error.
fn check(rc: libc::c_int) -> std::io::Result<libc::c_int> {
    if rc < 0 { Err(std::io::Error::last_os_error()) } else { Ok(rc) }
}

/// The name `.`: used to address a directory through its own fd.
pub(crate) const DOT: &CStr = c".";
