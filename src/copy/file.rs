//! Copies one regular file's content: data extents only (holes stay holes),
//! hashing every byte as it passes (read once), optionally turning aligned
//! zero blocks into holes (--sparsify). Large files are copied in BLAKE3
//! subtree pieces by several workers (see `tree::split`).

use std::fs::File;
use std::io;
use std::ops::Range;
use std::os::unix::fs::FileExt;
use std::sync::{Arc, Mutex};

use crate::tree::content::{Chunk, extents, stream_range};
use crate::tree::hasher::ContentHasher;
use crate::tree::pool::Pool;
use crate::tree::split::{Leaf, PIECE, hash_pieces};

const BLOCK: usize = 4096;

pub(crate) struct Copied {
    pub blake3: [u8; 32],
    /// Zero bytes not written because --sparsify made them holes.
    pub sparsified: u64,
}

/// Writes `data` at `off`, skipping aligned all-zero blocks; returns the bytes skipped.
fn write_sparse(dst: &File, data: &[u8], off: u64) -> io::Result<u64> {
    let mut skipped = 0u64;
    let mut i = 0usize;
    while i < data.len() {
        // Blocks are aligned to the file offset, as holes are.
        let abs = off + i as u64;
        let end = (((abs / BLOCK as u64) + 1) * BLOCK as u64 - off) as usize;
        let end = end.min(data.len());
        let blk = &data[i..end];
        if blk.len() == BLOCK && blk.iter().all(|&b| b == 0) {
            skipped += BLOCK as u64;
        } else {
            dst.write_all_at(blk, abs)?;
        }
        i = end;
    }
    Ok(skipped)
}

/// Copies `size` bytes of `src` into the new, empty `dst`.
pub(crate) fn copy_content(pool: &Pool, src: Arc<File>, dst: Arc<File>, size: u64, blocks: u64, sparsify: bool) -> io::Result<Copied> {
    let ex = Arc::new(extents(&src, size, blocks)?);
    let out = dst.clone();
    // Writes to one file serialise on its inode lock anyway; a worker that
    // waits here sleeps (and leaves the core to others) where the kernel
    // would spin. Between writes it hashes, so pieces pipeline.
    let write_lock = Mutex::new(());
    // Each piece returns (zero bytes skipped, end of the data it wrote).
    let leaf: Arc<Leaf<(u64, u64)>> = Arc::new(move |r: Range<u64>, h: &mut ContentHasher| {
        let (mut skipped, mut written_to) = (0u64, 0u64);
        stream_range(&src, &ex, r, |off, c| {
            match c {
                Chunk::Data(d) => {
                    h.update(d);
                    let _turn = write_lock.lock().unwrap_or_else(|p| p.into_inner());
                    if sparsify {
                        skipped += write_sparse(&out, d, off)?;
                    } else {
                        out.write_all_at(d, off)?;
                    }
                    written_to = off + d.len() as u64;
                }
                Chunk::Hole(n) => h.zeros(n),
            }
            Ok(())
        })?;
        Ok((skipped, written_to))
    });
    let (blake3, pieces) = hash_pieces(pool, size, PIECE, leaf)?;
    let written_to = pieces.iter().map(|p| p.1).max().unwrap_or(0);
    // A trailing hole (or skipped zeros) leaves the file short: extend it.
    if written_to < size || sparsify {
        dst.set_len(size)?;
    }
    Ok(Copied { blake3, sparsified: pieces.iter().map(|p| p.0).sum() })
}
