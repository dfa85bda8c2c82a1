//! The archive's worker pool: files read ahead by the walk's workers on
//! backup and written by writer workers on restore, on each filesystem,
//! in bounded memory.

use std::os::unix::process::ExitStatusExt;
use std::process::Command;

use super::{d, must};
use crate::util::*;

/// The fidelity tree, with a few hundred small files beside it (more than
/// the workers hold at once), backed up and restored on `fs`.
fn round_trip_on(fs: &str) {
    require_root();
    let s = Scratch::new(&format!("bk-pool-{fs}"));
    let disk = LoopFs::new(&s, fs, "3G");
    let src = disk.mnt.join("src");
    fidelity_tree(&src);
    let many = src.join("files/many");
    std::fs::create_dir(&many).unwrap();
    for i in 0..600u32 {
        std::fs::write(many.join(format!("f{i:03}")), vec![(i % 251) as u8; 40_000 + 997 * i as usize]).unwrap();
    }
    let a = s.join("pool.tar.zst");
    must(d(&[&"-q", &"--service", &"none", &"--data-root", &src, &"backup", &"-o", &a, &"--no-config"]));
    let dst = disk.mnt.join("restored");
    must(d(&[&"-q", &"--service", &"none", &"--data-root", &dst, &"--state-dir", &s.join("st"), &"restore", &a, &"--yes"]));
    assert_same_tree(&src, &dst);
}

#[test]
fn pool_round_trip_on_ext4() {
    round_trip_on("ext4");
}

#[test]
fn pool_round_trip_on_xfs() {
    round_trip_on("xfs");
}

#[test]
fn pool_round_trip_on_btrfs() {
    round_trip_on("btrfs");
}

/// Runs dockroot with `args` and returns its peak RSS in MiB.
#[allow(clippy::zombie_processes)] // reaped by wait4, which also reports the RSS
fn peak_rss_mib(args: &[&dyn AsRef<std::ffi::OsStr>]) -> i64 {
    let child = Command::new(bin()).args(args.iter().map(|a| a.as_ref())).spawn().unwrap();
    let (mut status, mut usage) = (0, unsafe { std::mem::zeroed::<libc::rusage>() });
    // SAFETY: our own child; status and usage are valid out-pointers.
    let r = unsafe { libc::wait4(child.id() as i32, &mut status, 0, &mut usage) };
    assert_eq!(r, child.id() as i32, "wait4: {}", std::io::Error::last_os_error());
    let status = std::process::ExitStatus::from_raw(status);
    assert!(status.success(), "dockroot {:?} failed: {status}", args.iter().map(|a| a.as_ref().to_os_string()).collect::<Vec<_>>());
    usage.ru_maxrss / 1024
}

/// Big files stream (they are never read ahead or handed off whole), and
/// the small ones in flight are bounded: a 768 MiB file and 2000 small ones
/// back up and restore in less memory than the file's size would need.
#[test]
fn a_large_file_streams_in_bounded_memory() {
    require_root();
    let s = Scratch::new("bk-pool-rss");
    let src = s.join("src");
    let small = src.join("small");
    std::fs::create_dir_all(&small).unwrap();
    for i in 0..2000u32 {
        std::fs::write(small.join(format!("f{i:04}")), vec![b'x'; 100 + (i as usize * 37) % 4000]).unwrap();
    }
    // Allocated, dense (as many blocks as bytes), quick to make: read as zeros.
    let big = src.join("big.img");
    ok(Command::new("fallocate").args(["-l", "768M"]).arg(&big));
    let a = s.join("big.tar.zst");
    let backup = peak_rss_mib(&[&"-q", &"--service", &"none", &"--data-root", &src, &"backup", &"-o", &a, &"--no-config"]);
    let dst = s.join("restored");
    let restore =
        peak_rss_mib(&[&"-q", &"--service", &"none", &"--data-root", &dst, &"--state-dir", &s.join("st"), &"restore", &a, &"--yes"]);
    assert_same_tree(&src, &dst);
    // zstd's workers hold a few tens of MiB; the read-ahead and write budgets 16 each.
    for (what, mib) in [("backup", backup), ("restore", restore)] {
        assert!(mib < 200, "{what} peaked at {mib} MiB for a 768 MiB file");
    }
}

/// `bench.sh --archive --smoke`: the archive rows (backup and restore
/// against tar, interleaved) run end to end on a tiny tree. Not timed.
#[test]
fn bench_archive_rows_run_in_smoke_mode() {
    require_root();
    let o = ok(Command::new("bash").arg(repo().join("scripts/bench.sh")).args(["--archive", "--smoke"]).env("DOCKROOT_BIN", bin()));
    let t = text(&o);
    for want in ["load at start", "dockroot backup / tar", "dockroot restore / tar -x", "archive size"] {
        assert!(t.contains(want), "no `{want}` in:\n{t}");
    }
}
