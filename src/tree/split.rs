//! Large files as BLAKE3 subtrees. BLAKE3 is a tree hash: a file split at the
//! tree's own boundaries can be hashed (and copied) piece by piece on several
//! workers, and the pieces' chaining values merged into exactly the hash a
//! sequential `blake3::hash` gives, so manifests do not depend on the split.

use std::fs::File;
use std::io;
use std::ops::Range;
use std::sync::Arc;

use blake3::hazmat::{ChainingValue, Mode, left_subtree_len, merge_subtrees_non_root, merge_subtrees_root};

use super::content::{Chunk, extents, stream_range};
use super::hasher::ContentHasher;
use super::pool::{Job, Pool};

/// Files larger than this are split. Pieces of a few MiB keep the task
/// overhead negligible and still share a large file between two cores.
pub(crate) const PIECE: u64 = 16 << 20;

/// The leaves of the split of `size` bytes: subtrees of at most `piece` bytes.
pub(crate) fn pieces(size: u64, piece: u64) -> Vec<Range<u64>> {
    fn go(start: u64, len: u64, piece: u64, out: &mut Vec<Range<u64>>) {
        if len <= piece {
            out.push(start..start + len);
        } else {
            let left = left_subtree_len(len);
            go(start, left, piece, out);
            go(start + left, len - left, piece, out);
        }
    }
    let mut out = Vec::new();
    go(0, size, piece.max(blake3::CHUNK_LEN as u64), &mut out);
    out
}

/// Merges the leaves' chaining values (in [`pieces`] order) into the root hash.
fn merge(size: u64, piece: u64, cvs: &[ChainingValue]) -> [u8; 32] {
    fn go(len: u64, piece: u64, cvs: &mut std::slice::Iter<'_, ChainingValue>) -> ChainingValue {
        if len <= piece {
            return *cvs.next().expect("one chaining value per piece");
        }
        let left = left_subtree_len(len);
        let l = go(left, piece, cvs);
        let r = go(len - left, piece, cvs);
        merge_subtrees_non_root(&l, &r, Mode::Hash)
    }
    let piece = piece.max(blake3::CHUNK_LEN as u64);
    let left = left_subtree_len(size);
    let mut it = cvs.iter();
    let l = go(left, piece, &mut it);
    let r = go(size - left, piece, &mut it);
    *merge_subtrees_root(&l, &r, Mode::Hash).as_bytes()
}

/// Work on one piece: it feeds the piece's bytes into the hasher (it may feed
/// fewer if the file shrank; the rest is hashed as zeros) and returns a value.
pub(crate) type Leaf<T> = dyn Fn(Range<u64>, &mut ContentHasher) -> std::io::Result<T> + Send + Sync;

/// Runs `leaf` over the pieces of a `size`-byte file, in parallel on `pool`
/// when there are several, and returns the BLAKE3 of the whole content with
/// each piece's value in order.
pub(crate) fn hash_pieces<T: Send + 'static>(
    pool: &Pool,
    size: u64,
    piece: u64,
    leaf: Arc<Leaf<T>>,
) -> std::io::Result<([u8; 32], Vec<T>)> {
    let ranges = pieces(size, piece);
    if ranges.len() == 1 {
        let mut h = ContentHasher::new();
        let t = leaf(0..size, &mut h)?;
        let short = size.saturating_sub(h.count());
        h.zeros(short);
        return Ok((h.finalize(), vec![t]));
    }
    let jobs: Vec<Job<std::io::Result<(ChainingValue, T)>>> = ranges
        .into_iter()
        .map(|r| {
            let leaf = leaf.clone();
            Box::new(move || {
                let mut h = ContentHasher::at(r.start);
                let t = leaf(r.clone(), &mut h)?;
                // A short read (the file shrank; the caller's stat after the
                // read reports it) must still give a valid subtree.
                let short = (r.end - r.start).saturating_sub(h.count());
                h.zeros(short);
                Ok((h.finalize_non_root(), t))
            }) as Job<_>
        })
        .collect();
    let mut cvs = Vec::new();
    let mut values = Vec::new();
    for r in pool.run_all(jobs) {
        let (cv, t) = r?;
        cvs.push(cv);
        values.push(t);
    }
    Ok((merge(size, piece, &cvs), values))
}

/// Hashes a file's content (holes as zeros).
pub(crate) fn hash_content(pool: &Pool, f: Arc<File>, size: u64, blocks: u64) -> io::Result<[u8; 32]> {
    let ex = Arc::new(extents(&f, size, blocks)?);
    let leaf: Arc<Leaf<()>> = Arc::new(move |r: Range<u64>, h: &mut ContentHasher| {
        stream_range(&f, &ex, r, |_, c| {
            match c {
                Chunk::Data(d) => h.update(d),
                Chunk::Hole(n) => h.zeros(n),
            }
            Ok(())
        })
    });
    Ok(hash_pieces(pool, size, PIECE, leaf)?.0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn split_hash_equals_sequential_hash() {
        let data: Arc<Vec<u8>> = Arc::new((0..300_000u32).map(|i| (i * 7 + i / 1000) as u8).collect());
        let pool = Pool::default();
        for size in [1u64, 1024, 1025, 4096, 5000, 65_536, 100_000, 300_000] {
            for piece in [1024u64, 4096, 8192, 1 << 20] {
                let d = data.clone();
                let leaf: Arc<Leaf<u64>> = Arc::new(move |r: Range<u64>, h: &mut ContentHasher| {
                    h.update(&d[r.start as usize..r.end as usize]);
                    Ok(r.end - r.start)
                });
                let (hash, lens) = hash_pieces(&pool, size, piece, leaf).unwrap();
                assert_eq!(hash, *blake3::hash(&data[..size as usize]).as_bytes(), "size {size} piece {piece}");
                assert_eq!(lens.iter().sum::<u64>(), size);
                assert!(lens.iter().all(|&l| l <= piece.max(1024)));
            }
        }
    }
}
