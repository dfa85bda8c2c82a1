//! The restore's writer workers: small file bodies, taken off the stream by
//! the reading thread, are created, written and finished (owner, mode,
//! xattrs, times) on the engine's worker pool ([`crate::tree::pool`]), in
//! batches. See [`super::extract`] for what waits for them.

use std::ffi::{CStr, CString};
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::os::unix::fs::FileExt;
use std::sync::{Arc, Mutex};

use super::error::{ArchiveError, Result};
use super::show;
use crate::sys::{self, Timespec};
use crate::tree::pool::Pool;
use crate::tree::queue::{InFlight, Permit, Ticket, Window, lock};

/// Bytes of file bodies handed to the writer workers and not yet written.
/// Each job counts at least 1/256 of it: at most 256 jobs (and the parent
/// directory fds they hold) are in flight.
pub(super) const WRITE_BUDGET: usize = 16 << 20;

/// The worker pool that writes file bodies, shared by the trees of one extraction.
pub(super) struct Writers {
    pub pool: Pool,
    pub budget: Arc<Window>,
    /// Every job in flight.
    pub all: Arc<InFlight>,
    /// The first job's error (a later one is a consequence or the same fault).
    pub failed: Arc<Mutex<Option<ArchiveError>>>,
}

impl Writers {
    pub(super) fn new() -> Writers {
        Writers { pool: Pool::default(), budget: Arc::new(Window::new(WRITE_BUDGET)), all: Arc::default(), failed: Arc::default() }
    }

    /// A worker's error, if one failed: the extraction ends with it.
    pub(super) fn check(&self) -> Result<()> {
        match lock(&self.failed).take() {
            Some(e) => Err(e),
            None => Ok(()),
        }
    }

    /// Waits for every job, then reports the first error.
    pub(super) fn drain(&self) -> Result<()> {
        self.all.wait_idle();
        self.check()
    }
}

/// A regular file's metadata, applied in order: owner, mode, xattrs, times.
pub(super) struct FileMeta {
    pub path: Vec<u8>,
    pub uid: u32,
    pub gid: u32,
    pub mode: u32,
    pub mtime: Timespec,
    pub xattrs: sys::xattr::Xattrs,
    /// Created with its final mode and owner already right (see `preset_perm`).
    pub preset: Option<u32>,
}

impl FileMeta {
    pub(super) fn create(&self, dir: BorrowedFd<'_>, name: &CStr) -> Result<std::fs::File> {
        sys::create_file_mode_at(dir, name, self.preset.unwrap_or(0o600)).map_err(exists(&self.path))
    }

    pub(super) fn apply(&self, f: &std::fs::File, dir: BorrowedFd<'_>, name: &CStr) -> Result<()> {
        if self.preset.is_none() {
            sys::fchown(f.as_fd(), self.uid, self.gid).map_err(staging(&self.path, "chown"))?;
            sys::fchmod(f.as_fd(), self.mode).map_err(staging(&self.path, "chmod"))?;
        }
        set_xattrs(dir, name, &self.path, &self.xattrs)?;
        sys::futimens(f.as_fd(), self.mtime, self.mtime).map_err(staging(&self.path, "set times of"))
    }
}

pub(super) fn set_xattrs(dir: BorrowedFd<'_>, name: &CStr, path: &[u8], xattrs: &sys::xattr::Xattrs) -> Result<()> {
    if xattrs.is_empty() {
        return Ok(());
    }
    sys::xattr::write_at(dir, name, xattrs, false).map_err(|(k, source)| ArchiveError::Staging {
        path: format!("{} (xattr {})", show(path), show(&k)),
        step: "set xattr on",
        source,
    })
}

/// Jobs go to the workers in batches of this many (one hand-off, at most one
/// wake-up, per batch), or fewer when they hold [`BATCH_BYTES`].
pub(super) const BATCH: usize = 8;
pub(super) const BATCH_BYTES: usize = 512 << 10;

/// A worker's job: one small file, created, written and finished.
pub(super) struct FileJob {
    pub dir: Arc<OwnedFd>,
    pub name: CString,
    pub meta: FileMeta,
    pub bytes: Vec<u8>,
    /// Released when the job ends, whichever way.
    pub _held: (Permit, Ticket, Option<Ticket>),
}

impl FileJob {
    /// Runs the job; its error (or panic) goes to `failed`. The job (its
    /// permit and tickets) is dropped only after that.
    pub(super) fn run_reporting(self, failed: &Mutex<Option<ArchiveError>>) {
        let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| self.run())).unwrap_or_else(|p| {
            Err(ArchiveError::Staging {
                path: show(&self.meta.path),
                step: "write",
                source: std::io::Error::other(format!("a writer thread panicked: {}", crate::error::panic_message(p.as_ref()))),
            })
        });
        if let Err(e) = r {
            lock(failed).get_or_insert(e);
        }
    }

    fn run(&self) -> Result<()> {
        let f = self.meta.create(self.dir.as_fd(), &self.name)?;
        f.write_all_at(&self.bytes, 0).map_err(staging(&self.meta.path, "write"))?;
        self.meta.apply(&f, self.dir.as_fd(), &self.name)
    }
}

/// Closes the pool when dropped: its workers leave once the queue is empty.
pub(super) struct ClosePool<'a>(pub &'a Pool);

impl Drop for ClosePool<'_> {
    fn drop(&mut self) {
        self.0.close();
    }
}

/// Maps a create error: EEXIST means the archive names an entry twice.
pub(super) fn exists(path: &[u8]) -> impl Fn(std::io::Error) -> ArchiveError + '_ {
    move |e| match e.raw_os_error() {
        Some(libc::EEXIST) => ArchiveError::Unsafe { member: show(path), reason: "an entry of that name was already extracted".into() },
        _ => staging(path, "create")(e),
    }
}

pub(super) fn staging<'p>(path: &'p [u8], step: &'static str) -> impl FnOnce(std::io::Error) -> ArchiveError + 'p {
    move |source| ArchiveError::Staging { path: show(path), step, source }
}
