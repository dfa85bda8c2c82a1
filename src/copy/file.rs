//! Copies one regular file's content: data extents only (holes stay holes),
//! hashing every byte as it passes (read once), optionally turning aligned
//! zero blocks into holes (--sparsify).

use std::fs::File;
use std::io;
use std::os::unix::fs::FileExt;

use crate::tree::content::{Chunk, hash_zeros, stream};

const BLOCK: usize = 4096;

pub struct Copied {
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
pub fn copy_content(src: &File, dst: &File, size: u64, blocks: u64, sparsify: bool) -> io::Result<Copied> {
    let mut h = blake3::Hasher::new();
    let mut sparsified = 0u64;
    let mut written_to = 0u64;
    stream(src, size, blocks, |off, c| {
        match c {
            Chunk::Data(d) => {
                h.update(d);
                if sparsify {
                    sparsified += write_sparse(dst, d, off)?;
                } else {
                    dst.write_all_at(d, off)?;
                }
                written_to = off + d.len() as u64;
            }
            Chunk::Hole(n) => hash_zeros(&mut h, n),
        }
        Ok(())
    })?;
    // A trailing hole (or skipped zeros) leaves the file short: extend it.
    if written_to < size || sparsify {
        dst.set_len(size)?;
    }
    Ok(Copied { blake3: *h.finalize().as_bytes(), sparsified })
}

/// Hashes a file's content (holes as zeros).
pub fn hash_content(f: &File, size: u64, blocks: u64) -> io::Result<[u8; 32]> {
    let mut h = blake3::Hasher::new();
    stream(f, size, blocks, |_, c| {
        match c {
            Chunk::Data(d) => {
                h.update(d);
            }
            Chunk::Hole(n) => hash_zeros(&mut h, n),
        }
        Ok(())
    })?;
    Ok(*h.finalize().as_bytes())
}
