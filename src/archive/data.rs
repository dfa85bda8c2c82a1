//! The content of a regular-file member, plain or PAX sparse 1.0 (a decimal
//! map of extents at the start of the data, then the extents' bytes). It is
//! read once, hashed with BLAKE3 over its logical content (holes hash as
//! zeros, as the writer hashed them) and handed to a sink at its offsets.

use std::io::Read;

use super::error::Result;
use super::header::BLOCK;
use super::read::{Member, TarReader};
use crate::tree::hasher::ContentHasher;

/// Largest number of extents in a sparse map.
const MAX_EXTENTS: u64 = 1 << 20;

/// Reads the data of member `m` through `buf`, calls `sink(offset, bytes)`
/// for every piece of data (holes are skipped) and returns the logical size
/// and, with `hash`, the BLAKE3 of the logical content (a caller that
/// verifies what it wrote from disk afterwards can skip it).
pub(crate) fn content<R: Read>(
    tar: &mut TarReader<R>,
    m: &Member,
    buf: &mut [u8],
    hash: bool,
    sink: impl FnMut(u64, &[u8]) -> Result<()>,
) -> Result<(u64, Option<[u8; 32]>)> {
    let h = hash.then(ContentHasher::new);
    let (size, h) = match m.sparse_size {
        Some(real) => sparse(tar, m, real, buf, h, sink)?,
        None => plain(tar, buf, h, sink)?,
    };
    Ok((size, h.map(|h| h.finalize())))
}

fn plain<R: Read>(
    tar: &mut TarReader<R>,
    buf: &mut [u8],
    mut h: Option<ContentHasher>,
    mut sink: impl FnMut(u64, &[u8]) -> Result<()>,
) -> Result<(u64, Option<ContentHasher>)> {
    let mut pos = 0u64;
    loop {
        let n = tar.read_data(buf)?;
        if n == 0 {
            return Ok((pos, h));
        }
        if let Some(h) = &mut h {
            h.update(&buf[..n]);
        }
        sink(pos, &buf[..n])?;
        pos += n as u64;
    }
}

/// The extents of a PAX sparse 1.0 map: a count, then offset/length pairs,
/// one decimal number a line, padded to a block. They must go forward, stay
/// within `real` and add up to the member's remaining data.
fn sparse_map<R: Read>(tar: &mut TarReader<R>, m: &Member, real: u64) -> Result<Vec<(u64, u64)>> {
    let mut nums: Vec<u64> = Vec::new();
    let mut want: Option<u64> = None;
    let mut cur: Option<u64> = None;
    let mut block = [0u8; BLOCK];
    'map: loop {
        if tar.data_left() < BLOCK as u64 {
            return Err(m.malformed("sparse map truncated"));
        }
        tar.read_data_exact(&mut block)?;
        for &b in &block {
            match b {
                b'0'..=b'9' => {
                    let v = cur.unwrap_or(0).checked_mul(10).and_then(|v| v.checked_add(u64::from(b - b'0')));
                    cur = Some(v.ok_or_else(|| m.malformed("sparse map number overflows"))?);
                }
                b'\n' => {
                    nums.push(cur.take().ok_or_else(|| m.malformed("empty number in sparse map"))?);
                    if want.is_none() {
                        if nums[0] > MAX_EXTENTS {
                            return Err(m.malformed("sparse map has too many extents"));
                        }
                        want = Some(1 + 2 * nums[0]);
                    }
                    if Some(nums.len() as u64) == want {
                        break 'map;
                    }
                }
                _ => return Err(m.malformed("bad byte in sparse map")),
            }
        }
    }
    let extents: Vec<(u64, u64)> = nums[1..].chunks_exact(2).map(|c| (c[0], c[1])).collect();
    let mut pos = 0u64;
    let mut total = 0u64;
    for &(o, l) in &extents {
        let end = o.checked_add(l).ok_or_else(|| m.malformed("sparse extent overflows"))?;
        if o < pos || end > real {
            return Err(m.malformed("sparse extents overlap, go backwards or pass the real size"));
        }
        pos = end;
        total += l;
    }
    if total != tar.data_left() {
        return Err(m.malformed("sparse map does not match the data size"));
    }
    Ok(extents)
}

fn sparse<R: Read>(
    tar: &mut TarReader<R>,
    m: &Member,
    real: u64,
    buf: &mut [u8],
    mut h: Option<ContentHasher>,
    mut sink: impl FnMut(u64, &[u8]) -> Result<()>,
) -> Result<(u64, Option<ContentHasher>)> {
    let extents = sparse_map(tar, m, real)?;
    let mut pos = 0u64;
    for (o, l) in extents {
        if let Some(h) = &mut h {
            h.zeros(o - pos);
        }
        let mut done = 0u64;
        while done < l {
            let k = (l - done).min(buf.len() as u64) as usize;
            tar.read_data_exact(&mut buf[..k])?;
            if let Some(h) = &mut h {
                h.update(&buf[..k]);
            }
            sink(o + done, &buf[..k])?;
            done += k as u64;
        }
        pos = o + l;
    }
    if let Some(h) = &mut h {
        h.zeros(real - pos);
    }
    Ok((real, h))
}
