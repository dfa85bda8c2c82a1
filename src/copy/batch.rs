//! The small files of a worker's batch, read together before they are copied
//! (through `sys::uring`: one submission for the batch instead of a `pread`
//! each). The worker then copies each file from the bytes read here.
//!
//! Only what the copy would read anyway, in full, is read here: regular files
//! of at most [`SMALL`] bytes without holes, opened through the walker's
//! checked handle as `open_file` does (but without `O_NONBLOCK`, see
//! `sys::uring`), and not in delta mode (which
//! may keep a file without reading it). Anything that fails or comes back
//! short is left to the ordinary path, which reports the error or the race.

use std::cell::RefCell;
use std::fs::File;
use std::os::fd::AsFd;

use crate::sys;
use crate::tree::Item;
use crate::tree::links::LinkRole;

/// Files up to this size are read with their batch.
pub const SMALL: u64 = 64 << 10;

thread_local! {
    /// This worker's current batch: (entry seq, open source, its read's index).
    static READY: RefCell<Vec<(u64, File, usize)>> = const { RefCell::new(Vec::new()) };
}

fn wanted(item: &Item) -> bool {
    let m = &item.meta;
    let reads = matches!(item.link, None | Some(LinkRole::Head(_)));
    m.kind == sys::Kind::File && reads && item.handle.is_some() && m.size > 0 && m.size <= SMALL && m.blocks * 512 >= m.size
}

/// Starts reading the small files of `items` together; forgets the previous
/// batch's.
pub fn prefetch(items: &[Item]) {
    READY.with(|r| r.borrow_mut().clear());
    if !sys::uring::usable() {
        return;
    }
    let mut open: Vec<(u64, File, usize)> = Vec::new();
    let mut bytes = 0usize;
    for item in items.iter().filter(|i| wanted(i)) {
        let size = item.meta.size as usize;
        if open.len() == sys::uring::BATCH_READS || bytes + size > sys::uring::BATCH_BYTES {
            break;
        }
        let Some(h) = &item.handle else { continue };
        if let Ok(f) = sys::seen::reopen_file_blocking(h.as_fd(), &item.meta) {
            open.push((item.seq, f, size));
            bytes += size;
        }
    }
    if open.is_empty() {
        return;
    }
    let reqs: Vec<_> = open.iter().map(|(_, f, n)| (f.as_fd(), *n)).collect();
    if !sys::uring::start_reads(&reqs) {
        return;
    }
    drop(reqs);
    READY.with(|r| r.borrow_mut().extend(open.into_iter().enumerate().map(|(i, (seq, f, _))| (seq, f, i))));
}

/// The open source and content of entry `seq` (`size` bytes), if its batch
/// read it in full.
pub fn take(seq: u64, size: u64) -> Option<(File, Vec<u8>)> {
    let (f, i) = READY.with(|r| {
        let mut ready = r.borrow_mut();
        let at = ready.iter().position(|e| e.0 == seq)?;
        let (_, f, i) = ready.swap_remove(at);
        Some((f, i))
    })?;
    let data = sys::uring::wait_read(i, |r| r.ok().filter(|d| d.len() as u64 == size).map(<[u8]>::to_vec))??;
    Some((f, data))
}
