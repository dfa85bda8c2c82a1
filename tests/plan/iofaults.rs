//! I/O faults (issue 17 item 6): EIO and ENOSPC injected by strace at
//! sampled read, write, fsync and rename calls of `move`, `backup` and
//! `restore`. Whatever the point, the run ends with an error that names a
//! path (or succeeds, when the call was one whose failure is harmless, such
//! as a progress line on stderr), Docker answers on the same data without a
//! `rollback`, and a `rollback` afterwards finds nothing dangerous to do:
//! it has nothing to roll back, or it brings back the same world.
//!
//! How the points are sampled: a first run, traced but not injected, counts
//! each syscall per thread (strace's `when=N` counts per thread, so a point
//! fails the Nth call of every thread that makes that many). The calls made
//! before `main` (the dynamic loader's, std's) are counted on `--version`
//! and left out. Each syscall group then gets a few points spread evenly
//! over the rest, always with the first and last: the early calls hit the journal, the preflight and the
//! API, the middle the copy or archive, the last the switch, the start and
//! the commit. Every point runs Docker through a stop and a start (twice
//! when the run succeeded and must be rolled back), so the sample is kept
//! near 40 points per operation, enough for every phase of each to be hit
//! by each errno, and each operation is its own test so they run in parallel.

use std::collections::HashMap;
use std::path::Path;
use std::process::{Command, Output};
use std::time::{Duration, Instant};

use super::crash::{Harness, World, assert_intact};
use super::with;
use crate::util::text;

/// The syscall groups and how many points each gets per errno.
const GROUPS: [(&str, &[&str], usize); 4] = [
    ("read", &["read", "pread64"], 6),
    ("write", &["write", "pwrite64"], 6),
    ("fsync", &["fsync", "fdatasync", "syncfs"], 4),
    ("rename", &["rename", "renameat", "renameat2"], 4),
];
const ERRNOS: [&str; 2] = ["EIO", "ENOSPC"];

/// dockroot under strace: all threads (`-f`), children untraced once they exec (`-b execve`).
fn traced(h: &Harness, args: &[&str], trace: &str, inject: Option<&str>, log: &Path) -> Output {
    let mut c = Command::new("strace");
    c.args(["-f", "-b", "execve", "-o"]).arg(log).arg("-e").arg(format!("trace={trace}"));
    if let Some(i) = inject {
        c.arg("-e").arg(format!("inject={i}"));
    }
    c.arg(crate::util::bin()).args(with(&h.g, args)).output().unwrap()
}

/// The most calls of each syscall made by one thread, from an `strace -f -o` log.
fn max_per_thread(log: &str) -> HashMap<String, usize> {
    let mut per: HashMap<(String, String), usize> = HashMap::new();
    for l in log.lines() {
        let Some((pid, rest)) = l.split_once(' ') else { continue };
        let rest = rest.trim_start();
        let Some(name) = rest.split('(').next().filter(|n| n.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')) else { continue };
        if rest.starts_with("<...") || name.is_empty() {
            continue;
        }
        *per.entry((pid.to_string(), name.to_string())).or_default() += 1;
    }
    let mut max: HashMap<String, usize> = HashMap::new();
    for ((_, name), n) in per {
        let m = max.entry(name).or_default();
        *m = (*m).max(n);
    }
    max
}

/// `k` points spread over first..=last, both included.
fn spread(first: usize, last: usize, k: usize) -> Vec<usize> {
    if last < first {
        return Vec::new();
    }
    let mut v: Vec<usize> = (0..k).map(|i| first + i * (last - first) / (k - 1).max(1)).collect();
    v.dedup();
    v
}

fn docker_answers(h: &Harness) -> bool {
    let deadline = Instant::now() + Duration::from_secs(15);
    while !h.d.api().ping() {
        if Instant::now() >= deadline {
            return false;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    true
}

/// Runs every sampled point of `args`; returns how many ran.
fn every_fault(name: &str, h: &Harness, args: &[&str], cleanup: &dyn Fn()) -> usize {
    let w0: World = h.world();
    let census = h.s.join("census");
    let all: Vec<&str> = GROUPS.iter().flat_map(|g| g.1.iter().copied()).collect();
    let o = traced(h, args, &all.join(","), None, &census);
    assert!(o.status.success(), "{name}: the counting run failed: {}", text(&o));
    let max = max_per_thread(&std::fs::read_to_string(&census).unwrap());
    h.rollback_and_check(&w0, &format!("{name}: after the counting run"), cleanup);
    let o = Command::new("strace")
        .args(["-f", "-o"])
        .arg(&census)
        .arg("-e")
        .arg(format!("trace={}", all.join(",")))
        .arg(crate::util::bin())
        .arg("--version")
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", text(&o));
    let startup = max_per_thread(&std::fs::read_to_string(&census).unwrap());
    let (mut points, mut failed, mut summary) = (0, 0, Vec::new());
    for (group, calls, k) in GROUPS {
        let calls: Vec<&str> = calls.iter().copied().filter(|c| max.contains_key(*c)).collect();
        let Some(top) = calls.iter().map(|c| max[*c]).max() else { continue };
        let first = 1 + calls.iter().map(|c| startup.get(*c).copied().unwrap_or(0)).max().unwrap_or(0);
        summary.push(format!("{group}: calls {first}..={top} of the busiest thread"));
        for errno in ERRNOS {
            for n in spread(first, top, k) {
                let at = format!("{name}: {errno} at {group} #{n} of {top}");
                let set = calls.join(",");
                let o = traced(h, args, &set, Some(&format!("{set}:error={errno}:when={n}")), Path::new("/dev/null"));
                points += 1;
                let msg = text(&o);
                if !o.status.success() {
                    failed += 1;
                    let err =
                        msg.lines().rev().find(|l| l.starts_with("dockroot: ")).unwrap_or_else(|| panic!("{at}: no error message: {msg}"));
                    assert!(err.contains('/'), "{at}: the error names no path: {err}");
                    assert!(!msg.contains("panicked"), "{at}: {msg}");
                }
                assert!(docker_answers(h), "{at}: Docker does not answer after dockroot's exit: {msg}");
                if !o.status.success() && !msg.contains("finished and Docker runs on its result") {
                    // Docker runs on intact data without a rollback. (Only
                    // the journal's last write failing leaves the finished
                    // operation in place, and says so; the rollback below undoes it.)
                    assert_intact(&h.world(), &w0, &format!("{at}, before any rollback ({})", msg.trim_end()));
                }
                h.rollback_and_check(&w0, &at, cleanup);
            }
        }
    }
    eprintln!("{name}: {points} fault points ({failed} failed cleanly, the rest succeeded), {}", summary.join("; "));
    points
}

#[test]
fn io_faults_move() {
    let (s, d, disk) = super::faults::fixture("iof-move", false);
    let h = Harness { d: &d, s: &s, g: d.args(&s), bound: None, supervised: false };
    let t = disk.mnt.join("docker");
    let ts = t.display().to_string();
    let clean = || {
        let _ = std::fs::remove_dir_all(&t);
    };
    let n = every_fault("move", &h, &["move", "--to", &ts, "--yes"], &clean);
    assert!(n >= 35, "{n}");
    d.check_fixture();
}

#[test]
fn io_faults_backup() {
    let (s, d, _disk) = super::faults::fixture("iof-backup", false);
    let mut g = d.args(&s);
    g.extend(["--data-root".into(), d.root().display().to_string()]);
    let h = Harness { d: &d, s: &s, g, bound: None, supervised: false };
    let a = s.join("a.tar.zst");
    let clean = || {
        let _ = std::fs::remove_file(&a);
    };
    let n = every_fault("backup", &h, &["backup", "--stop-the-world", "-o", &a.display().to_string(), "--no-config"], &clean);
    assert!(n >= 35, "{n}");
    d.check_fixture();
}

#[test]
fn io_faults_restore() {
    let (s, d, _disk) = super::faults::fixture("iof-restore", false);
    let mut g = d.args(&s);
    g.extend(["--data-root".into(), d.root().display().to_string()]);
    let h = Harness { d: &d, s: &s, g, bound: None, supervised: false };
    let a = s.join("a.tar.zst").display().to_string();
    let o = crate::util::dockroot(with(&h.g, &["-q", "backup", "-o", &a, "--no-config"]));
    assert!(o.status.success(), "{}", text(&o));
    // Old data differs from the archive's, so a half-done swap cannot pass.
    d.docker(&["volume", "create", "only-in-old-data"]);
    let n = every_fault("restore", &h, &["restore", &a, "--yes", "--force"], &|| {});
    assert!(n >= 35, "{n}");
    d.check_fixture();
}

#[test]
fn spread_points_include_both_ends() {
    assert_eq!(spread(1, 100, 4), [1, 34, 67, 100]);
    assert_eq!(spread(1, 2, 6), [1, 2]);
    assert_eq!(spread(8, 8, 4), [8]);
    assert!(spread(9, 8, 4).is_empty());
}

/// The state directory on a full disk (the one a user flees): `move`,
/// `backup` and `restore` refuse before Docker is stopped, naming the
/// directory and the room they need; with `--state-dir` elsewhere they run.
#[test]
fn a_full_state_dir_is_refused_before_docker_stops() {
    let (s, d, disk) = super::faults::fixture("iof-room", false);
    let small = crate::util::LoopFs::new(&s, "ext4", "8M");
    // Fill it: root's reserve included, as dockroot runs as root.
    let _ = Command::new("fallocate").args(["-l", "64M"]).arg(small.mnt.join("fill")).status();
    let _ = Command::new("dd").args(["if=/dev/zero", "bs=64k"]).arg(format!("of={}", small.mnt.join("fill2").display())).output();
    let state = small.mnt.join("state");
    let before = d.state();
    let mut g = d.args(&s);
    let at = g.iter().position(|a| a == "--state-dir").unwrap();
    g[at + 1] = state.display().to_string();
    g.extend(["--data-root".into(), d.root().display().to_string()]);
    let t = disk.mnt.join("docker").display().to_string();
    let a = s.join("a.tar.zst").display().to_string();
    for args in [&["move", "--to", &t, "--yes"][..], &["backup", "--stop-the-world", "-o", &a, "--no-config"]] {
        let o = crate::util::dockroot(with(&g, args));
        let msg = text(&o);
        assert_eq!(o.status.code(), Some(2), "{args:?}: {msg}");
        assert!(msg.contains(&state.display().to_string()) && msg.contains("bytes free") && msg.contains("--state-dir"), "{args:?}: {msg}");
        assert!(d.api().ping() && d.state() == before, "{args:?}: Docker was touched");
        assert!(!Path::new(&t).exists() && !Path::new(&a).exists(), "{args:?}: something was written");
    }
}
