//! Data extents of a sparse file, found with SEEK_DATA/SEEK_HOLE.
//!
//! `copy_file_range` on ext4 fills holes, so the engine copies only the data
//! extents reported here and leaves the rest as holes.
//!
//! The walk must end whatever the fd answers. A device put in a file's place
//! (issue 13: `/dev/null` answers 0 to both seeks) once made it push empty
//! extents forever until the OOM killer came. So every step must advance: a
//! hole not past its data ends the walk with an error, as does an extent list
//! longer than a real file of this size can have.

use std::fs::File;
use std::io;
use std::os::fd::AsRawFd;

/// The smallest extent granularity of any filesystem (one sector): a file of
/// `size` bytes cannot have more than `size / MIN_EXTENT + 1` data extents.
const MIN_EXTENT: u64 = 512;

/// Returns the data extents `(offset, len)` of a file of `size` bytes. A
/// filesystem without SEEK_DATA support yields one extent covering the file.
pub(crate) fn data_extents(f: &File, size: u64) -> io::Result<Vec<(u64, u64)>> {
    walk_extents(size, |pos, whence| {
        // SAFETY: lseek on a valid fd has no memory effects.
        let r = unsafe { libc::lseek(f.as_raw_fd(), pos, whence) };
        if r < 0 { Err(io::Error::last_os_error()) } else { Ok(r) }
    })
}

fn impossible(what: String) -> io::Error {
    io::Error::new(
        io::ErrorKind::InvalidData,
        format!("{what}: these are not a regular file's extents; the file was replaced or the filesystem is damaged"),
    )
}

/// The extent walk over any `seek(offset, whence)`, so that a unit test can
/// script the answers of a misbehaving fd.
fn walk_extents(size: u64, mut seek: impl FnMut(i64, libc::c_int) -> io::Result<i64>) -> io::Result<Vec<(u64, u64)>> {
    let mut out = Vec::new();
    let max = size / MIN_EXTENT + 1;
    let mut pos: i64 = 0;
    let end = size as i64;
    while pos < end {
        let data = match seek(pos, libc::SEEK_DATA) {
            Ok(d) => d,
            Err(e) => {
                return match e.raw_os_error() {
                    // ENXIO: no data after pos, the rest is a hole.
                    Some(libc::ENXIO) => Ok(out),
                    Some(libc::EINVAL) | Some(libc::EOPNOTSUPP) if out.is_empty() => Ok(vec![(0, size)]),
                    _ => Err(e),
                };
            }
        };
        if data < pos {
            return Err(impossible(format!("SEEK_DATA from {pos} went back to {data}")));
        }
        if data >= end {
            break;
        }
        let hole = match seek(data, libc::SEEK_HOLE) {
            Ok(h) => h.min(end),
            Err(_) => end,
        };
        if hole <= data {
            return Err(impossible(format!("SEEK_HOLE from data at {data} returned {hole}")));
        }
        if out.len() as u64 >= max {
            return Err(impossible(format!("more than {max} data extents in {size} bytes")));
        }
        out.push((data as u64, (hole - data) as u64));
        pos = hole;
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::{Seek, SeekFrom, Write};

    #[test]
    fn dev_null_ends_the_walk() {
        // /dev/null answered 0 to SEEK_DATA and SEEK_HOLE alike (issue 13);
        // newer kernels may answer ENXIO. Either way the walk ends at once
        // with no data.
        // Its own node, not the host's /dev/null (a shared machine's may
        // have been replaced by a regular file).
        let t = tempfile::tempdir().unwrap();
        let p = t.path().join("null");
        nix::sys::stat::mknod(&p, nix::sys::stat::SFlag::S_IFCHR, nix::sys::stat::Mode::from_bits_truncate(0o600), libc::makedev(1, 3))
            .expect("mknod c 1 3 (run the tests as root)");
        let f = File::open(&p).unwrap();
        match data_extents(&f, 1 << 30) {
            Ok(ex) => assert!(ex.is_empty(), "{ex:?}"),
            Err(e) => assert_eq!(e.kind(), io::ErrorKind::InvalidData, "{e}"),
        }
    }

    #[test]
    fn scripted_fds_that_never_advance_end_the_walk() {
        // Both seeks answer the offset asked: no progress.
        let e = walk_extents(1 << 30, |pos, _| Ok(pos)).unwrap_err();
        assert!(e.to_string().contains("SEEK_HOLE"), "{e}");
        // SEEK_DATA jumps backwards.
        assert!(walk_extents(1 << 20, |pos, w| Ok(if w == libc::SEEK_DATA { pos - 1 } else { pos + 1 })).is_err());
        // One-byte extents without end: more than the size allows.
        let e = walk_extents(4096, |pos, w| Ok(if w == libc::SEEK_DATA { pos } else { pos + 1 })).unwrap_err();
        assert!(e.to_string().contains("data extents"), "{e}");
    }

    #[test]
    fn a_real_sparse_file() {
        let mut f = tempfile::tempfile().unwrap();
        f.seek(SeekFrom::Start(1 << 20)).unwrap();
        f.write_all(&[1u8; 4096]).unwrap();
        f.set_len(4 << 20).unwrap();
        let ex = data_extents(&f, 4 << 20).unwrap();
        // Filesystems without hole support report one extent over everything.
        assert!(ex == vec![(1 << 20, 4096)] || ex == vec![(0, 4 << 20)], "{ex:?}");
    }
}
