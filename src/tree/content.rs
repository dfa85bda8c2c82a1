//! Reads a regular file's content extent by extent. Data extents come as
//! bytes, holes as lengths, so a copy can leave holes as holes while the hash
//! still covers the file's logical content (holes read as zeros).

use std::cell::RefCell;
use std::fs::File;
use std::io;
use std::ops::Range;
use std::os::unix::fs::FileExt;

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
