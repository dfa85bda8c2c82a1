//! Data extents of a sparse file, found with SEEK_DATA/SEEK_HOLE.
//!
//! `copy_file_range` on ext4 fills holes, so the engine copies only the data
//! extents reported here and leaves the rest as holes.

use std::fs::File;
use std::io;
use std::os::fd::AsRawFd;

/// Returns the data extents `(offset, len)` of a file of `size` bytes. A
/// filesystem without SEEK_DATA support yields one extent covering the file.
pub fn data_extents(f: &File, size: u64) -> io::Result<Vec<(u64, u64)>> {
    let mut out = Vec::new();
    let mut pos: i64 = 0;
    let end = size as i64;
    while pos < end {
        // SAFETY: valid fd.
        let data = unsafe { libc::lseek(f.as_raw_fd(), pos, libc::SEEK_DATA) };
        if data < 0 {
            let e = io::Error::last_os_error();
            return match e.raw_os_error() {
                // ENXIO: no data after pos, the rest is a hole.
                Some(libc::ENXIO) => Ok(out),
                Some(libc::EINVAL) | Some(libc::EOPNOTSUPP) if out.is_empty() => Ok(vec![(0, size)]),
                _ => Err(e),
            };
        }
        if data >= end {
            break;
        }
        // SAFETY: valid fd.
        let hole = unsafe { libc::lseek(f.as_raw_fd(), data, libc::SEEK_HOLE) };
        let hole = if hole < 0 { end } else { hole.min(end) };
        out.push((data as u64, (hole - data) as u64));
        pos = hole;
    }
    Ok(out)
}
