//! Reading file content through a read-only memory mapping: the hash reads
//! the page cache directly and the write copies from it, one memory copy per
//! byte instead of two (read into a buffer, then write from it).
//!
//! A mapped file that shrinks, or a page that cannot be read (EIO), raises
//! SIGBUS on access. A process-wide handler catches it when the address lies
//! in the mapping this thread is reading: it maps zero pages over the rest of
//! the window, so the access completes, and flags the thread. [`Window::read`]
//! then returns an error, so the bytes read are never trusted. SIGBUS
//! elsewhere goes to the previous handler (Rust's stack-overflow handler).

use std::cell::Cell;
use std::fs::File;
use std::io;
use std::os::fd::AsRawFd;
use std::sync::OnceLock;
use std::sync::atomic::{AtomicBool, Ordering, compiler_fence};

thread_local! {
    /// The window (start, len) this thread is reading; (0, 0) when none.
    static GUARD: Cell<(usize, usize)> = const { Cell::new((0, 0)) };
    /// Set by the handler when a fault hit the guarded window. Atomic, with
    /// compiler fences around the guarded code: the compiler must not assume
    /// it unchanged across code that cannot write it (the handler can).
    static FAULTED: AtomicBool = const { AtomicBool::new(false) };
}

static PREVIOUS: OnceLock<libc::sigaction> = OnceLock::new();

fn page_size() -> usize {
    // SAFETY: sysconf has no preconditions.
    let n = unsafe { libc::sysconf(libc::_SC_PAGESIZE) };
    if n > 0 { n as usize } else { 4096 }
}

extern "C" fn on_sigbus(sig: libc::c_int, info: *mut libc::siginfo_t, ctx: *mut libc::c_void) {
    // SAFETY: the kernel passes a valid siginfo for SA_SIGINFO handlers.
    let addr = unsafe { (*info).si_addr() } as usize;
    let (start, len) = GUARD.with(|g| g.get());
    if len > 0 && addr >= start && addr < start + len {
        let page = addr & !(page_size() - 1);
        // SAFETY: the range lies inside this thread's own mapping, which no
        // other code uses; mmap is a plain system call, safe in a handler.
        unsafe {
            libc::mmap(
                page as *mut libc::c_void,
                start + len - page,
                libc::PROT_READ,
                libc::MAP_FIXED | libc::MAP_PRIVATE | libc::MAP_ANONYMOUS,
                -1,
                0,
            );
        }
        FAULTED.with(|f| f.store(true, Ordering::SeqCst));
        return;
    }
    match PREVIOUS.get() {
        Some(old) if old.sa_sigaction != libc::SIG_DFL && old.sa_sigaction != libc::SIG_IGN => {
            // SAFETY: calling the handler that was installed before ours, with
            // the arguments its flags ask for.
            unsafe {
                if old.sa_flags & libc::SA_SIGINFO != 0 {
                    let f: extern "C" fn(libc::c_int, *mut libc::siginfo_t, *mut libc::c_void) = std::mem::transmute(old.sa_sigaction);
                    f(sig, info, ctx);
                } else {
                    let f: extern "C" fn(libc::c_int) = std::mem::transmute(old.sa_sigaction);
                    f(sig);
                }
            }
        }
        _ => {
            // Not ours: restore the default action; returning re-raises it.
            // SAFETY: resetting a signal disposition.
            unsafe {
                libc::signal(sig, libc::SIG_DFL);
            }
        }
    }
}

fn install() -> io::Result<()> {
    static DONE: OnceLock<Result<(), i32>> = OnceLock::new();
    let r = DONE.get_or_init(|| {
        // SAFETY: sigaction with a zeroed struct and our handler; the old
        // action is kept for chaining.
        unsafe {
            let mut new: libc::sigaction = std::mem::zeroed();
            new.sa_sigaction = on_sigbus as *const () as usize;
            new.sa_flags = libc::SA_SIGINFO | libc::SA_ONSTACK | libc::SA_NODEFER;
            libc::sigemptyset(&mut new.sa_mask);
            let mut old: libc::sigaction = std::mem::zeroed();
            if libc::sigaction(libc::SIGBUS, &new, &mut old) != 0 {
                return Err(io::Error::last_os_error().raw_os_error().unwrap_or(libc::EINVAL));
            }
            let _ = PREVIOUS.set(old);
        }
        Ok(())
    });
    r.map_err(io::Error::from_raw_os_error)
}

/// A read-only mapping of `len` bytes of a file from offset `off`.
pub struct Window {
    base: *mut libc::c_void,
    map_len: usize,
    /// Where the requested bytes start inside the mapping (`off` need not be page-aligned).
    skip: usize,
    len: usize,
}

impl Window {
    /// Maps `[off, off + len)` of `file` (`len` > 0).
    pub fn map(file: &File, off: u64, len: usize) -> io::Result<Window> {
        install()?;
        let page = page_size() as u64;
        let start = off - off % page;
        let skip = (off - start) as usize;
        let map_len = skip + len;
        // SAFETY: a fresh private read-only mapping; unmapped in Drop.
        let base = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                map_len,
                libc::PROT_READ,
                libc::MAP_PRIVATE | libc::MAP_POPULATE,
                file.as_raw_fd(),
                start as libc::off_t,
            )
        };
        if base == libc::MAP_FAILED {
            return Err(io::Error::last_os_error());
        }
        Ok(Window { base, map_len, skip, len })
    }

    /// Runs `f` on the mapped bytes. Fails with EIO if any of them could
    /// not be read (the file shrank or the disk failed): whatever `f` did
    /// with them must be discarded.
    pub fn read<R>(&self, f: impl FnOnce(&[u8]) -> R) -> io::Result<R> {
        GUARD.with(|g| g.set((self.base as usize, self.map_len)));
        FAULTED.with(|x| x.store(false, Ordering::SeqCst));
        compiler_fence(Ordering::SeqCst);
        // SAFETY: the mapping is live for &self and PROT_READ; faults inside
        // it are turned into zero pages by the handler.
        let bytes = unsafe { std::slice::from_raw_parts((self.base as *const u8).add(self.skip), self.len) };
        let r = f(bytes);
        compiler_fence(Ordering::SeqCst);
        GUARD.with(|g| g.set((0, 0)));
        if FAULTED.with(|x| x.swap(false, Ordering::SeqCst)) {
            return Err(io::Error::other(
                "the file shrank or a page could not be read while mapped (SIGBUS); check the disk (dmesg) if the file did not change",
            ));
        }
        Ok(r)
    }
}

impl Drop for Window {
    fn drop(&mut self) {
        // SAFETY: unmapping exactly what map() mapped.
        unsafe {
            libc::munmap(self.base, self.map_len);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    #[test]
    fn truncation_while_mapped_is_an_error_not_a_crash() {
        let mut f = tempfile::tempfile().unwrap();
        f.write_all(&vec![7u8; 8 << 20]).unwrap();
        let w = Window::map(&f, (4 << 20) + 4096, 3 << 20).unwrap();
        assert_eq!(w.read(|b| b.iter().map(|&x| x as u64).sum::<u64>()).unwrap(), 7 * (3 << 20));
        // Far beyond the new end: those pages are gone (a large folio holding
        // the new end may keep its tail mapped as zeros instead; the stat
        // after a read catches that case).
        f.set_len(8192).unwrap();
        let e = w.read(|b| b.iter().map(|&x| x as u64).sum::<u64>()).unwrap_err();
        assert!(e.to_string().contains("SIGBUS"), "{e}");
        // The thread is clean again afterwards.
        let w2 = Window::map(&f, 0, 8192).unwrap();
        assert_eq!(w2.read(|b| b.len()).unwrap(), 8192);
    }
}
