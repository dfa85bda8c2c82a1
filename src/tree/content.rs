//! Reads a regular file's content extent by extent. Data extents come as
//! bytes, holes as lengths, so a copy can leave holes as holes while the hash
//! still covers the file's logical content (holes read as zeros).

use std::cell::RefCell;
use std::fs::File;
use std::io;
use std::ops::Range;
use std::os::unix::fs::FileExt;
use std::sync::Arc;

use super::hasher::ContentHasher;
use super::queue::{Permit, Window};
use crate::sys::holes::data_extents;

pub(crate) enum Chunk<'a> {
    Data(&'a [u8]),
    Hole(u64),
}

const BUF: usize = 1 << 20;

thread_local! {
    static BUFFER: RefCell<Vec<u8>> = RefCell::new(vec![0; BUF]);
}

/// Calls `f(offset, chunk)` for the bytes in `range` of a file, in order,
/// with data `extents` (sorted `(start, len)` pairs; everything else is a
/// hole). Stops early (without error) if the file turns out shorter: the
/// caller's post-read stat reports that change. A terminating signal ends
/// it with an error at the next chunk (see [`crate::sys::process::check_stop`]).
pub(crate) fn stream_range(
    file: &File,
    extents: &[(u64, u64)],
    range: Range<u64>,
    mut f: impl FnMut(u64, Chunk) -> io::Result<()>,
) -> io::Result<()> {
    BUFFER.with(|b| {
        let buf = &mut b.borrow_mut()[..];
        let mut pos = range.start;
        for &(start, len) in extents {
            let (start, end) = (start.max(range.start), (start + len).min(range.end));
            if start >= end {
                continue;
            }
            if start > pos {
                f(pos, Chunk::Hole(start - pos))?;
            }
            pos = start;
            while pos < end {
                crate::sys::process::check_stop()?;
                let want = ((end - pos) as usize).min(buf.len());
                let n = file.read_at(&mut buf[..want], pos)?;
                if n == 0 {
                    return Ok(());
                }
                f(pos, Chunk::Data(&buf[..n]))?;
                pos += n as u64;
            }
        }
        if pos < range.end {
            f(pos, Chunk::Hole(range.end - pos))?;
        }
        Ok(())
    })
}

/// The data extents of a file of `size` bytes and `blocks` 512-byte blocks.
/// A file with as many blocks as bytes has no holes: the two lseeks per
/// extent are skipped.
pub(crate) fn extents(file: &File, size: u64, blocks: u64) -> io::Result<Vec<(u64, u64)>> {
    if size == 0 {
        Ok(Vec::new())
    } else if blocks * 512 >= size {
        Ok(vec![(0, size)])
    } else {
        data_extents(file, size)
    }
}

/// Files up to this size may be read ahead ([`read_ahead`]); larger ones
/// stream through a fixed buffer on the thread that writes them out.
pub(crate) const AHEAD_MAX: u64 = 1 << 20;

/// The bytes all read-ahead buffers of one archive may hold together.
pub(crate) const AHEAD_BUDGET: usize = 16 << 20;

/// A small file's whole content, read and hashed by a walk worker ahead of
/// the one thread that writes the archive in walk order. Its bytes count
/// against a shared budget until it is dropped.
pub(crate) struct Ahead {
    pub bytes: Vec<u8>,
    pub hash: [u8; 32],
    _held: Permit,
}

/// Reads and hashes a dense file of `size` bytes (`blocks` 512-byte blocks)
/// when it is small and `budget` has room; never waits (the writer may be
/// waiting for this very entry). `None`: the writer streams the file as
/// before, and also meets and reports any read error or short read itself.
pub(crate) fn read_ahead(file: &File, size: u64, blocks: u64, budget: &Arc<Window>) -> Option<Ahead> {
    // Only files [`extents`] calls dense (no lseek): a sparse file streams.
    if size == 0 || size > AHEAD_MAX || blocks * 512 < size {
        return None;
    }
    let held = Permit::try_take(budget, size as usize)?;
    let mut bytes = vec![0u8; size as usize];
    let mut pos = 0;
    while pos < bytes.len() {
        match file.read_at(&mut bytes[pos..], pos as u64) {
            Ok(0) | Err(_) => return None,
            Ok(n) => pos += n,
        }
    }
    let mut h = ContentHasher::new();
    h.update(&bytes);
    Some(Ahead { hash: h.finalize(), bytes, _held: held })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn read_ahead_takes_small_dense_files_within_the_budget() {
        let t = tempfile::tempdir().unwrap();
        let p = t.path().join("f");
        std::fs::write(&p, b"hello").unwrap();
        let f = File::open(&p).unwrap();
        let budget = Arc::new(Window::new(8));
        let a = read_ahead(&f, 5, 8, &budget).unwrap();
        assert_eq!(a.bytes, b"hello");
        assert_eq!(a.hash, *blake3::hash(b"hello").as_bytes());
        // 3 of 8 bytes left: the next one streams, until the first is dropped.
        assert!(read_ahead(&f, 5, 8, &budget).is_none());
        drop(a);
        assert!(read_ahead(&f, 5, 8, &budget).is_some());
        // Sparse (fewer blocks than bytes), empty, or shorter than its stat: streams.
        assert!(read_ahead(&f, 5, 0, &budget).is_none());
        assert!(read_ahead(&f, 0, 0, &budget).is_none());
        assert!(read_ahead(&f, 6, 8, &budget).is_none());
    }
}
