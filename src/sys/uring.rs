//! Reading many small files with one system call (io_uring).
//!
//! A tree of small files costs a `pread` per file, and on a virtual disk each
//! read is its own request to the device. Submitted together, the reads of a
//! batch are plugged as one: adjacent blocks merge into one request and the
//! device is notified once (issue 11: a cold read of 38,400 files of a layer,
//! one thread, took 4.0–5.9 s and 1.2–1.8 s of system time with `pread`,
//! 1.4–1.7 s and 0.6–0.7 s in batches of 64 through io_uring).
//!
//! The kernel writes into the buffer until each read completes, so the buffer
//! belongs to this module (one per thread), not to the caller: it is reused
//! only after every read of the previous batch has completed, and if the
//! ring fails in a way that could leave one in flight, the ring and its
//! buffer are leaked, not freed. Each file's read is waited for only when
//! its copy needs it, so copying overlaps the batch's later reads.
//! Without io_uring (old kernel, `kernel.io_uring_disabled`, seccomp),
//! [`usable`] is false, [`start_reads`] refuses and the caller reads as
//! before. A file opened with `O_NONBLOCK` fails such a read with EAGAIN
//! when its data is not cached, so the files read here are opened without it.

use std::cell::RefCell;
use std::io;
use std::os::fd::{AsRawFd, BorrowedFd};

use io_uring::{IoUring, opcode, types};

/// The most bytes one batch reads: one thread's buffer.
pub const BATCH_BYTES: usize = 1 << 20;
/// The most reads one batch holds (the ring's size).
pub const BATCH_READS: usize = 64;

struct Slot {
    off: usize,
    len: usize,
    /// Bytes read, or the errno.
    res: Option<Result<usize, i32>>,
}

struct Ring {
    ring: IoUring,
    buf: Vec<u8>,
    /// The current batch's reads, by index.
    reads: Vec<Slot>,
    in_flight: usize,
    /// A read may be in flight that can no longer be reaped.
    broken: bool,
}

thread_local! {
    /// `None` inside: io_uring is unavailable on this thread (not set up, or
    /// given up after an error).
    static RING: RefCell<Option<Option<Ring>>> = const { RefCell::new(None) };
}

/// Whether this kernel has no mandatory locks (removed in 5.15), so files
/// read here may be opened without `O_NONBLOCK`.
fn no_mandatory_locks() -> bool {
    static OK: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
    *OK.get_or_init(|| {
        // SAFETY: uname fills the zeroed struct it is given.
        let mut u: libc::utsname = unsafe { std::mem::zeroed() };
        // SAFETY: valid pointer to a utsname.
        if unsafe { libc::uname(&mut u) } != 0 {
            return false;
        }
        // SAFETY: uname NUL-terminates release.
        let release = unsafe { std::ffi::CStr::from_ptr(u.release.as_ptr()) }.to_string_lossy().into_owned();
        let mut v = release.split(|c: char| !c.is_ascii_digit()).filter_map(|x| x.parse::<u32>().ok());
        (v.next().unwrap_or(0), v.next().unwrap_or(0)) >= (5, 15)
    })
}

/// Whether [`start_reads`] can be used here (io_uring on a kernel without
/// mandatory locks); callers then open the files without `O_NONBLOCK`.
pub fn usable() -> bool {
    no_mandatory_locks() && RING.with(|cell| cell.borrow_mut().get_or_insert_with(setup).is_some())
}

fn setup() -> Option<Ring> {
    let ring = IoUring::new(BATCH_READS as u32).ok()?;
    Some(Ring { ring, buf: vec![0; BATCH_BYTES], reads: Vec::with_capacity(BATCH_READS), in_flight: 0, broken: false })
}

/// Starts reading the first `len` bytes of each file, all submitted at once,
/// after waiting for the previous batch's reads to end. Take each result
/// with [`wait_read`]. `false` when io_uring cannot be used or the batch
/// exceeds [`BATCH_READS`] reads or [`BATCH_BYTES`] bytes.
pub fn start_reads(reqs: &[(BorrowedFd<'_>, usize)]) -> bool {
    let total: usize = reqs.iter().map(|r| r.1).sum();
    if reqs.is_empty() || reqs.len() > BATCH_READS || total > BATCH_BYTES {
        return false;
    }
    with_ring(|r| {
        if !r.drain() {
            return false;
        }
        let mut off = 0usize;
        let mut sq = r.ring.submission();
        for (i, (fd, len)) in reqs.iter().enumerate() {
            let ptr = r.buf[off..off + len].as_mut_ptr();
            let e = opcode::Read::new(types::Fd(fd.as_raw_fd()), ptr, *len as u32).offset(0).build().user_data(i as u64);
            // SAFETY: the buffer range belongs to this read alone and is not
            // touched again until its completion is reaped (`drain`, or never:
            // see `with_ring`). io_uring holds its own reference to the file.
            if unsafe { sq.push(&e) }.is_err() {
                r.broken = true;
                return false;
            }
            r.reads.push(Slot { off, len: *len, res: None });
            off += len;
        }
        drop(sq);
        r.in_flight = reqs.len();
        loop {
            match r.ring.submit() {
                Ok(_) => return true,
                Err(e) if matches!(e.raw_os_error(), Some(libc::EINTR) | Some(libc::EAGAIN) | Some(libc::EBUSY)) => {}
                Err(_) => {
                    r.broken = true;
                    return false;
                }
            }
        }
    })
    .unwrap_or(false)
}

/// Waits for read `i` of the current batch and calls `f` with its bytes
/// (fewer than asked at end of file) or its error. `None` if there is no
/// such read or the ring failed.
pub fn wait_read<R>(i: usize, f: impl FnOnce(io::Result<&[u8]>) -> R) -> Option<R> {
    with_ring(|r| {
        while r.reads.get(i)?.res.is_none() {
            if !r.reap(true) {
                return None;
            }
        }
        let s = &r.reads[i];
        let res = match s.res? {
            Ok(n) => Ok(&r.buf[s.off..s.off + n.min(s.len)]),
            Err(e) => Err(io::Error::from_raw_os_error(e)),
        };
        Some(f(res))
    })
    .flatten()
}

/// Runs `f` on this thread's ring; a ring that `f` left in doubt (`None`,
/// or reads it could not reap) is leaked with its buffer, never freed under
/// a read in flight.
fn with_ring<R>(f: impl FnOnce(&mut Ring) -> R) -> Option<R> {
    RING.with(|cell| {
        let mut cell = cell.borrow_mut();
        let slot = cell.get_or_insert_with(setup);
        let r = slot.as_mut()?;
        let out = f(r);
        if r.broken {
            std::mem::forget(slot.take());
        }
        Some(out)
    })
}

impl Ring {
    /// Reaps completions, waiting for one when `wait`; false if the ring failed.
    fn reap(&mut self, wait: bool) -> bool {
        if wait && self.in_flight > 0 {
            match self.ring.submit_and_wait(1) {
                Ok(_) => {}
                Err(e) if matches!(e.raw_os_error(), Some(libc::EINTR) | Some(libc::EAGAIN) | Some(libc::EBUSY)) => {}
                Err(_) => {
                    self.broken = true;
                    return false;
                }
            }
        }
        for c in self.ring.completion() {
            let Some(s) = self.reads.get_mut(c.user_data() as usize) else {
                self.broken = true;
                return false;
            };
            if s.res.is_none() {
                self.in_flight -= 1;
            }
            let res = c.result();
            s.res = Some(if res < 0 { Err(-res) } else { Ok(res as usize) });
        }
        true
    }

    /// Waits for every read in flight; false if the ring failed.
    fn drain(&mut self) -> bool {
        while self.in_flight > 0 {
            if !self.reap(true) {
                return false;
            }
        }
        self.reads.clear();
        true
    }
}

impl Drop for Ring {
    fn drop(&mut self) {
        // The buffer must outlive every read: leak it if they cannot be reaped.
        if !self.drain() {
            std::mem::forget(std::mem::take(&mut self.buf));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::fd::AsFd;

    /// Starts the reads and takes every result, in order.
    fn read_many<R>(reqs: &[(BorrowedFd<'_>, usize)], f: impl Fn(io::Result<&[u8]>) -> R) -> Option<Vec<R>> {
        if !start_reads(reqs) {
            return None;
        }
        (0..reqs.len()).map(|i| wait_read(i, &f)).collect()
    }

    #[test]
    fn reads_each_file_from_its_start_in_order() {
        let t = tempfile::tempdir().unwrap();
        let names = ["a", "b", "c", "empty"];
        let bodies: [&[u8]; 4] = [b"first", &[7u8; 5000], b"third", b""];
        for (n, b) in names.iter().zip(bodies) {
            std::fs::write(t.path().join(n), b).unwrap();
        }
        let files: Vec<_> = names.iter().map(|n| std::fs::File::open(t.path().join(n)).unwrap()).collect();
        // Ask for more than "c" holds: a short read is its length.
        let reqs: Vec<_> = files.iter().zip([5, 5000, 100, 10]).map(|(f, n)| (f.as_fd(), n)).collect();
        let Some(got) = read_many(&reqs, |r| r.unwrap().to_vec()) else {
            eprintln!("io_uring unavailable here: nothing to test");
            return;
        };
        assert_eq!(got, bodies.iter().map(|b| b.to_vec()).collect::<Vec<_>>());
    }

    #[test]
    fn a_failed_read_is_that_files_error() {
        let t = tempfile::tempdir().unwrap();
        std::fs::write(t.path().join("f"), b"data").unwrap();
        let f = std::fs::File::open(t.path().join("f")).unwrap();
        let d = std::fs::File::open(t.path()).unwrap();
        let reqs = [(d.as_fd(), 10), (f.as_fd(), 4)];
        let Some(r) = read_many(&reqs, |r| (r[0].as_ref().err().and_then(|e| e.raw_os_error()), r[1].as_ref().ok().map(|b| b.to_vec())))
        else {
            return;
        };
        assert_eq!(r, vec![Err(Some(libc::EISDIR)), Ok(b"data".to_vec())]);
    }

    #[test]
    fn batches_over_the_limits_are_refused() {
        let f = std::fs::File::open("/dev/null").unwrap();
        assert!(!start_reads(&[(f.as_fd(), BATCH_BYTES + 1)]));
        let many: Vec<_> = (0..=BATCH_READS).map(|_| (f.as_fd(), 1)).collect();
        assert!(!start_reads(&many));
    }
}
