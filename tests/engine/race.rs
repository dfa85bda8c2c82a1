//! Issue 13: a container that swaps names while dockroot reads its tree.
//!
//! A racer (tests/tools/racer.py) exchanges, with renameat2(RENAME_EXCHANGE),
//! regular files with /dev/urandom and /dev/null nodes, a sparse file with a
//! /dev/null node (a seek loop once), directories with symlinks to `/` and to
//! a sentinel directory outside the tree, a symlink with a file, and the
//! first name of a hardlink group with a /dev/null node, while
//! dockroot runs again and again. Only names move, never content, so every
//! regular file in a copy, archive or manifest must hold one of the tree's own
//! contents. Runs are bounded by count; a watchdog kills a run that hangs
//! (the seek loop did) and fails the test.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};

use crate::util::*;

/// A run still going after this long is hung (a run takes well under a second).
const WATCHDOG: std::time::Duration = std::time::Duration::from_secs(120);

struct Racer {
    child: Child,
}

impl Racer {
    fn start(tree: &Path) -> Racer {
        // Bounded by rounds too, should the test die without dropping it.
        let child = Command::new("python3").arg(tool("racer.py")).arg("race").arg(tree).arg("100000000").spawn().unwrap();
        Racer { child }
    }

    /// Fails the test if the racer stopped on its own (an error, or its bound).
    fn assert_running(&mut self) {
        assert!(self.child.try_wait().unwrap().is_none(), "the racer stopped before the runs ended");
    }
}

impl Drop for Racer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

struct Fixture {
    s: Scratch,
    tree: PathBuf,
    reference: PathBuf,
    outside: PathBuf,
}

impl Fixture {
    fn new(tag: &str) -> Fixture {
        require_root();
        let s = Scratch::new(tag);
        let (tree, reference, outside) = (s.join("tree"), s.join("reference"), s.join("outside"));
        ok(Command::new("python3").arg(tool("racer.py")).arg("make").arg(&tree).arg(&outside));
        ok(Command::new("python3").arg(tool("racer.py")).arg("make").arg(&reference).arg(s.join("outside-ref")));
        Fixture { s, tree, reference, outside }
    }

    fn stamp(&self) -> String {
        text(&ok(Command::new("python3").arg(tool("racer.py")).arg("stamp").arg(&self.outside)))
    }

    fn check_tree(&self, dir: &Path) {
        let out = run(Command::new("python3").arg(tool("racer.py")).arg("check-tree").arg(dir).arg(&self.reference));
        assert!(out.status.success(), "{} holds bytes that are not the tree's:\n{}", dir.display(), text(&out));
    }

    /// Runs dockroot with `args`, killing it (and failing) if it hangs.
    /// Returns the exit code, stdout, and stdout with stderr.
    fn dockroot(&self, args: &[&std::ffi::OsStr]) -> (Option<i32>, String, String) {
        let (out, err) = (self.s.join("run.out"), self.s.join("run.err"));
        let (fo, fe) = (std::fs::File::create(&out).unwrap(), std::fs::File::create(&err).unwrap());
        let mut child = Command::new(bin()).args(args).stdin(Stdio::null()).stdout(fo).stderr(fe).spawn().unwrap();
        let start = std::time::Instant::now();
        let status = loop {
            if let Some(st) = child.try_wait().unwrap() {
                break st;
            }
            if start.elapsed() > WATCHDOG {
                let _ = child.kill();
                let _ = child.wait();
                panic!("dockroot {args:?} hung (killed by the watchdog): {}", std::fs::read_to_string(&err).unwrap_or_default());
            }
            std::thread::sleep(std::time::Duration::from_millis(5));
        };
        let stdout = std::fs::read_to_string(&out).unwrap();
        let all = format!("{stdout}{}", std::fs::read_to_string(&err).unwrap());
        (status.code(), stdout, all)
    }
}

/// A failed run without --live must fail only on races, each named with its path.
fn only_races(out: &str, tree: &Path) {
    // Warnings (e.g. backup's "the archive goes to the same filesystem") are not failures.
    let failures = out.lines().filter(|l| l.starts_with("dockroot: ") && !l.starts_with("dockroot: warning:"));
    for l in failures.filter(|l| l.contains(tree.to_str().unwrap())) {
        assert!(
            ["vanished", "replaced", "changed"].iter().any(|w| l.contains(&format!(": {w} while it was being read"))),
            "not a race report: {l}\n{out}"
        );
    }
    assert!(out.contains("while it was being read"), "a failed run reports no race:\n{out}");
}

fn os(p: &Path) -> &std::ffi::OsStr {
    p.as_os_str()
}

#[test]
fn live_copy_never_copies_a_device_or_outside_byte_while_names_swap() {
    let fx = Fixture::new("race-copy");
    let before = fx.stamp();
    let mut racer = Racer::start(&fx.tree);
    // One fresh DST per run, then --delete passes over one DST (the delta
    // comparison reads both sides).
    let (fresh, delta) = (40, 10);
    let (mut exit0, mut strict_fail, mut raced) = (0, 0, 0);
    for i in 0..fresh + delta {
        let delete = i >= fresh;
        let dst = fx.s.join(&if delete { "delta".to_string() } else { format!("copy{i}") });
        let mut args: Vec<&std::ffi::OsStr> = vec!["copy".as_ref(), "--json".as_ref(), "--live".as_ref(), os(&fx.tree), os(&dst)];
        if delete {
            args.push("--delete".as_ref());
        }
        let (code, json, out) = fx.dockroot(&args);
        if code == Some(0) {
            exit0 += 1;
            let v: serde_json::Value = serde_json::from_str(&json).unwrap_or_else(|e| panic!("not JSON ({e}): {out}"));
            raced += v["summary"]["raced"].as_u64().unwrap_or_else(|| panic!("no race count: {out}"));
        }
        fx.check_tree(&dst);
        assert!(code == Some(0) || code == Some(1), "{args:?}: exit {code:?}\n{out}");
        if !delete {
            let _ = std::fs::remove_dir_all(&dst);
        }
    }
    let runs = fresh + delta;
    // Without --live: races fail the copy with their paths, and DST holds
    // only whole, right files.
    let strict = 10;
    for i in 0..strict {
        let dst = fx.s.join(&format!("strict{i}"));
        let (code, _, out) = fx.dockroot(&["copy".as_ref(), os(&fx.tree), os(&dst)]);
        if code != Some(0) {
            strict_fail += 1;
            assert_eq!(code, Some(1), "{out}");
            only_races(&out, &fx.tree);
        }
        fx.check_tree(&dst);
        let _ = std::fs::remove_dir_all(&dst);
    }
    racer.assert_running();
    drop(racer);
    println!(
        "race: copy --live: {runs} runs ({delta} of them --delete passes), {exit0} exited 0, {raced} entries counted as raced; copy without --live: {strict} runs, {strict_fail} reported races"
    );
    assert!(exit0 * 100 >= runs * 95, "only {exit0} of {runs} live copies exited 0");
    // Proof that the runs raced at all (each run races with high odds).
    assert!(raced > 0, "no live copy met a race: the racer did not run against them");
    assert_eq!(fx.stamp(), before, "something outside the tree was read or changed");
}

#[test]
fn manifest_of_a_swapping_tree_holds_only_its_own_content() {
    let fx = Fixture::new("race-manifest");
    let refm = fx.s.join("reference.manifest");
    let (code, _, out) = fx.dockroot(&["manifest".as_ref(), "-q".as_ref(), os(&fx.reference), "-o".as_ref(), os(&refm)]);
    assert_eq!(code, Some(0), "{out}");
    let before = fx.stamp();
    let mut racer = Racer::start(&fx.tree);
    let (runs, mut exit0) = (30, 0);
    for i in 0..runs {
        let m = fx.s.join(&format!("m{i}"));
        let (code, _, out) = fx.dockroot(&["manifest".as_ref(), os(&fx.tree), "-o".as_ref(), os(&m)]);
        if code == Some(0) {
            exit0 += 1;
            let c = run(Command::new("python3").arg(tool("racer.py")).arg("check-manifest").arg(&m).arg(&refm));
            assert!(c.status.success(), "manifest run {i}:\n{}", text(&c));
        } else {
            assert_eq!(code, Some(1), "{out}");
            only_races(&out, &fx.tree);
        }
    }
    racer.assert_running();
    drop(racer);
    println!("race: manifest: {runs} runs, {exit0} exited 0, {} reported races (no --live: each exits 1)", runs - exit0);
    assert_eq!(fx.stamp(), before, "something outside the tree was read or changed");
}

#[test]
fn backup_of_a_swapping_tree_archives_only_its_own_content() {
    let fx = Fixture::new("race-backup");
    let before = fx.stamp();
    let mut racer = Racer::start(&fx.tree);
    let (runs, mut exit0) = (20, 0);
    for i in 0..runs {
        let (a, x, st) = (fx.s.join(&format!("a{i}.tar.zst")), fx.s.join(&format!("x{i}")), fx.s.join("state"));
        let (code, _, out) = fx.dockroot(&[
            "-q".as_ref(),
            "--service".as_ref(),
            "none".as_ref(),
            "--data-root".as_ref(),
            os(&fx.tree),
            "--state-dir".as_ref(),
            os(&st),
            "backup".as_ref(),
            "-o".as_ref(),
            os(&a),
            "--no-config".as_ref(),
            // One pass: a race is an error, as this test pins (the live default counts them).
            "--stop-the-world".as_ref(),
        ]);
        if code == Some(0) {
            exit0 += 1;
            std::fs::create_dir(&x).unwrap();
            ok(Command::new("tar").args(["--zstd", "-xpf"]).arg(&a).arg("-C").arg(&x));
            fx.check_tree(&x.join("data"));
            let _ = std::fs::remove_dir_all(&x);
        } else {
            // backup stops at its first error (exit 2) and leaves no archive.
            assert_eq!(code, Some(2), "{out}");
            only_races(&out, &fx.tree);
            assert!(!a.exists(), "a failed backup left {}", a.display());
        }
        let _ = std::fs::remove_file(&a);
    }
    racer.assert_running();
    drop(racer);
    println!("race: backup: {runs} runs, {exit0} exited 0, {} reported a race (no --live)", runs - exit0);
    assert_eq!(fx.stamp(), before, "something outside the tree was read or changed");
}
