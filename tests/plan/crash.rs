//! Crash points: dockroot is killed with SIGKILL immediately before its Nth
//! call of each state-changing system call, in turn, for every N the
//! operation reaches. strace's fault injection does the killing
//! (`-e inject=SYSCALL:signal=KILL:when=N`, without `-f`, so the dockerd it
//! starts runs untraced). A first, untraced-by-fault run counts the calls.
//!
//! After each kill, `rollback` must bring Docker back on the original data
//! with the same images, containers and volumes, the same manifest of its
//! image and volume trees, fstab and daemon.json byte-identical, nothing
//! mounted on the data-root, and no temporary, backup, staging or old-tree
//! names left behind. The next point's run is the same operation run again
//! after that rollback: it must get past the point it was killed at, and the
//! last run (the count) completes.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use super::{Daemon, with};
use crate::util::{Scratch, dockroot, text};

/// The state-changing calls: renames (the journal's commits among them),
/// directory creation, mounts and unmounts.
const SYSCALLS: [&str; 7] = ["rename", "renameat", "renameat2", "mkdir", "mkdirat", "mount", "umount2"];
/// With a supervisor (dockerd started again after each kill, as systemd or
/// socket activation would): every rename, mkdir, mount, umount, symlink and
/// unlink of the main thread.
const SUPERVISED_SYSCALLS: [&str; 11] =
    ["rename", "renameat", "renameat2", "mkdir", "mkdirat", "mount", "umount2", "symlink", "symlinkat", "unlink", "unlinkat"];
/// The supervised runs start dockerd once more per point: beyond this many
/// calls of one kind, points are sampled evenly (first and last included),
/// which keeps each supervised test to a few minutes.
const SUPERVISED_POINTS_PER_CALL: usize = 8;
/// Calls of one kind beyond this many (restore's extraction makes every
/// directory of the archive with mkdirat inside its staging tree, which is
/// one undo) are sampled: the first two, the middle and the last two.
const MAX_POINTS_PER_CALL: usize = 64;

/// What must be the same after every crash and rollback.
#[derive(PartialEq)]
pub(super) struct World {
    root_dir: PathBuf,
    /// dev:ino of the tree at the data-root: the same tree comes back, not a copy or a new one.
    root_id: (u64, u64),
    docker: dockroot::docker::snapshot::DockerState,
    manifest: String,
    fstab: Vec<u8>,
    daemon_json: Vec<u8>,
}

/// Panics naming what differs (the worlds are too large to print whole).
pub(super) fn assert_same(now: &World, then: &World, at: &str) {
    assert_eq!(now.root_dir, then.root_dir, "Docker's root {at}");
    assert_eq!(now.root_id, then.root_id, "the tree at the data-root (dev:ino) {at}");
    assert_eq!(now.docker, then.docker, "images, containers, volumes {at}");
    assert_eq!(String::from_utf8_lossy(&now.fstab), String::from_utf8_lossy(&then.fstab), "fstab {at}");
    assert_eq!(String::from_utf8_lossy(&now.daemon_json), String::from_utf8_lossy(&then.daemon_json), "daemon.json {at}");
    if now.manifest != then.manifest {
        let diff: Vec<_> = now.manifest.lines().zip(then.manifest.lines()).filter(|(a, b)| a != b).take(3).collect();
        panic!("manifest of image/ and the volume differs {at}: {diff:?}");
    }
}

/// Docker runs with the same objects on the same image and volume data
/// (where it runs, fstab and daemon.json may still say the operation's).
pub(super) fn assert_intact(now: &World, then: &World, at: &str) {
    assert_eq!(now.docker, then.docker, "images, containers, volumes {at}");
    assert!(now.manifest == then.manifest, "the image and volume trees differ {at}");
}

pub(super) struct Harness<'a> {
    pub(super) d: &'a Daemon,
    pub(super) s: &'a Scratch,
    pub(super) g: Vec<String>,
    /// The data-root is a bind of this directory, which must show there again.
    pub(super) bound: Option<PathBuf>,
    /// Start dockerd again after each kill, before `rollback`.
    pub(super) supervised: bool,
}

impl Harness<'_> {
    pub(super) fn world(&self) -> World {
        // Not all of volumes/: dockerd rewrites metadata.db at every start.
        let manifest = ["image", "volumes/dockroot-vol"]
            .iter()
            .map(|sub| {
                let o = dockroot(["-q", "manifest", &self.d.root().join(sub).display().to_string()]);
                assert!(o.status.success(), "{}", text(&o));
                String::from_utf8_lossy(&o.stdout).into_owned()
            })
            .collect();
        use std::os::unix::fs::MetadataExt;
        let m = std::fs::metadata(self.d.root()).unwrap();
        World {
            root_dir: self.d.root_dir(),
            root_id: (m.dev(), m.ino()),
            docker: self.d.state(),
            manifest,
            fstab: std::fs::read(self.s.join("fstab")).unwrap(),
            daemon_json: std::fs::read(self.d.dir.join("daemon.json")).unwrap(),
        }
    }

    /// Runs dockroot `args` under strace: killed before the `n`th `sys` call,
    /// or (`kill` None) only counting calls into `census`.
    fn traced(&self, args: &[&str], kill: Option<(&str, usize)>, census: Option<&Path>) -> Output {
        let mut c = Command::new("strace");
        c.arg("-o").arg(census.unwrap_or(Path::new("/dev/null")));
        match kill {
            Some((sys, n)) => c.arg("-e").arg(format!("trace={sys}")).arg("-e").arg(format!("inject={sys}:signal=KILL:when={n}")),
            None => c.arg("-e").arg(format!("trace={}", self.syscalls().join(","))),
        };
        c.arg(crate::util::bin()).args(with(&self.g, args)).output().unwrap()
    }

    /// Rolls back after a kill and checks the world is as before.
    /// Returns false when a supervised rollback refused (the harness stops there).
    pub(super) fn rollback_and_check(&self, w0: &World, at: &str, cleanup: &dyn Fn()) -> bool {
        let restarted = self.supervised && super::world::start_dockerd(self.d);
        let o = dockroot(with(&self.g, &["rollback", "--yes"]));
        // Killed before the journal was first written: nothing to roll back.
        let nothing = o.status.code() == Some(2) && text(&o).contains("nothing to roll back");
        if self.supervised && !o.status.success() && !nothing {
            // Allowed with a supervisor, as long as no tree holding data went.
            eprintln!("{at}: rollback refused (dockerd restarted: {restarted}): {}", text(&o));
            assert!(self.find_tree(w0.root_id).is_some(), "{at}: the pre-operation tree is gone after a refused rollback");
            return false;
        }
        assert!(o.status.success() || nothing, "rollback after the kill {at} (dockerd restarted: {restarted}): {}", text(&o));
        cleanup();
        assert_same(&self.world(), w0, &format!("after the kill {at} and rollback"));
        self.assert_clean(at);
        true
    }

    /// The calls whose points are tried.
    fn syscalls(&self) -> &'static [&'static str] {
        if self.supervised { &SUPERVISED_SYSCALLS } else { &SYSCALLS }
    }

    /// Where the directory with identity `id` is, among the names the
    /// operations use (the daemon's and the scratch directories, the bind's source's).
    fn find_tree(&self, id: (u64, u64)) -> Option<PathBuf> {
        use std::os::unix::fs::MetadataExt;
        let mut dirs = vec![self.d.dir.clone(), self.s.path().to_path_buf()];
        dirs.extend(self.bound.as_ref().and_then(|b| b.parent().map(Path::to_path_buf)));
        dirs.iter()
            .filter_map(|d| std::fs::read_dir(d).ok())
            .flatten()
            .filter_map(|e| e.ok().map(|e| e.path()))
            .find(|p| std::fs::symlink_metadata(p).is_ok_and(|m| (m.dev(), m.ino()) == id))
    }

    /// No mount on the data-root and no name dockroot makes is left.
    fn assert_clean(&self, at: &str) {
        let mounts = std::fs::read_to_string("/proc/self/mountinfo").unwrap();
        let on_root = format!(" {} ", self.d.root().display());
        // The data-root too: a restore onto a whole filesystem stages inside it.
        let mut dirs = vec![self.d.dir.clone(), self.s.path().to_path_buf(), self.s.join("state"), self.d.root()];
        if let Some(src) = &self.bound {
            use std::os::unix::fs::MetadataExt;
            let (a, b) = (std::fs::metadata(self.d.root()).unwrap(), std::fs::metadata(src).unwrap());
            assert_eq!((a.dev(), a.ino()), (b.dev(), b.ino()), "the data-root does not show {} after {at}", src.display());
            dirs.extend(src.parent().map(Path::to_path_buf));
        } else {
            // dockerd bind-mounts its root on itself; the copy (on xfs) must not be there.
            assert!(!mounts.lines().any(|l| l.contains(&on_root) && l.contains(" - xfs ")), "the copy is still mounted after {at}");
        }
        for dir in dirs {
            let names: Vec<String> = std::fs::read_dir(&dir)
                .map(|rd| rd.map(|e| e.unwrap().file_name().to_string_lossy().into_owned()).collect())
                .unwrap_or_default();
            let left: Vec<_> = names
                .iter()
                .filter(|n| ["dockroot-tmp", "dockroot-bak", "dockroot-old", "dockroot-staging", ".partial"].iter().any(|x| n.contains(x)))
                .collect();
            assert!(left.is_empty(), "left in {} after {at}: {left:?}", dir.display());
        }
    }

    /// Counts the calls of a successful run of `args`, rolls it back, then
    /// kills a run at each point in turn. Returns the number of crash points.
    pub(super) fn every_point(&self, name: &str, args: &[&str], cleanup: &dyn Fn()) -> usize {
        let w0 = self.world();
        let census = self.s.join("census");
        let o = self.traced(args, None, Some(&census));
        assert!(o.status.success(), "{name}: the counting run failed: {}", text(&o));
        let log = std::fs::read_to_string(&census).unwrap();
        self.rollback_and_check(&w0, &format!("{name}: after the counting run"), cleanup);
        let mut points = 0;
        let mut summary = Vec::new();
        for sys in self.syscalls() {
            let count = log.lines().filter(|l| l.starts_with(&format!("{sys}("))).count();
            if count == 0 {
                continue;
            }
            let ns: Vec<usize> = if self.supervised {
                sample(count, SUPERVISED_POINTS_PER_CALL)
            } else if count <= MAX_POINTS_PER_CALL {
                (1..=count).collect()
            } else {
                let mut v = vec![1, 2, count / 2, count - 1, count];
                v.dedup();
                v
            };
            summary.push(format!("{sys} {}/{count}", ns.len()));
            for n in ns {
                let at = format!("{name}: before {sys} #{n} of {count}");
                let o = self.traced(args, Some((sys, n)), None);
                if o.status.success() {
                    // Fewer calls this time (e.g. no retry): the run completed.
                    eprintln!("{at}: the run completed before the call");
                    self.rollback_and_check(&w0, &at, cleanup);
                    break;
                }
                use std::os::unix::process::ExitStatusExt;
                assert!(o.status.signal() == Some(9) || o.status.code() == Some(137), "{at}: not killed: {}", text(&o));
                points += 1;
                if !self.rollback_and_check(&w0, &at, cleanup) {
                    eprintln!("{name}: stopped after {points} crash points ({}): a rollback refused", summary.join(", "));
                    return points;
                }
            }
        }
        let who = if self.supervised { " with dockerd started again before each rollback" } else { "" };
        eprintln!("{name}: {points} crash points ({}){who}, each rolled back to the same state", summary.join(", "));
        points
    }
}

/// `n` of the points 1..=count, evenly spread, first and last included.
fn sample(count: usize, n: usize) -> Vec<usize> {
    if count <= n {
        return (1..=count).collect();
    }
    let mut v: Vec<usize> = (0..n).map(|i| 1 + i * (count - 1) / (n - 1)).collect();
    v.dedup();
    v
}

fn move_points(tag: &str, method: &str, supervised: bool) {
    let (s, d, disk) = super::faults::fixture(tag, method == "data-root");
    let h = Harness { d: &d, s: &s, g: d.args(&s), bound: None, supervised };
    let t = disk.mnt.join("docker");
    let ts = t.display().to_string();
    let clean = || {
        // The copy, and any empty tree the supervisor's dockerd made that rollback kept aside.
        let _ = std::fs::remove_dir_all(&t);
        remove_aside(&d.dir);
    };
    let n = h.every_point(&format!("move --method {method}"), &["-q", "move", "--method", method, "--to", &ts, "--yes"], &clean);
    assert!(n > 10, "{n}");
    if supervised {
        return;
    }
    // And once more to the end.
    let o = dockroot(with(&h.g, &["move", "--method", method, "--to", &ts, "--yes"]));
    assert!(o.status.success(), "{}", text(&o));
    d.check_fixture();
}

/// Deletes the trees `rollback` kept aside in `dir` (the test made sure they
/// are the supervisor's dockerd's, holding nothing of the fixture).
fn remove_aside(dir: &Path) {
    for e in std::fs::read_dir(dir).unwrap().flatten() {
        if e.file_name().to_string_lossy().contains(".dockroot-aside-") {
            assert!(!e.path().join("volumes/dockroot-vol").exists(), "{} holds the fixture's volume", e.path().display());
            std::fs::remove_dir_all(e.path()).unwrap();
        }
    }
}

#[test]
fn crash_points_move_bind() {
    move_points("crash-bind", "bind", false);
}

#[test]
fn crash_points_move_data_root() {
    move_points("crash-dr", "data-root", false);
}

/// Issue 17: after each kill, dockerd is started again before `rollback`.
#[test]
fn crash_points_move_bind_supervised() {
    move_points("crash-bind-sv", "bind", true);
}

#[test]
fn crash_points_move_data_root_supervised() {
    move_points("crash-dr-sv", "data-root", true);
}

#[test]
fn crash_points_restore_supervised() {
    restore_points("crash-restore-sv", true);
}

#[test]
fn crash_points_restore() {
    restore_points("crash-restore", false);
}

/// A whole restore that also replaces a non-empty bind source (`--force`,
/// issue 18): after each kill and rollback, the source holds its previous
/// files again and nothing is left beside it.
fn restore_points(tag: &str, supervised: bool) {
    let (s, d, _disk) = super::faults::fixture(tag, false);
    let mut g = d.args(&s);
    g.extend(["--data-root".into(), d.root().display().to_string()]);
    let app = s.join("srv/app");
    std::fs::create_dir_all(app.join("db")).unwrap();
    std::fs::write(app.join("db/rows"), "1\n2\n").unwrap();
    let app_s = app.display().to_string();
    d.docker(&["create", "--name", "bind-user", "--network", "none", "-v", &format!("{app_s}:/data"), "dockroot-test/app:1", "true"]);
    let h = Harness { d: &d, s: &s, g, bound: None, supervised };
    let a = s.join("a.tar.zst").display().to_string();
    let o = dockroot(with(&h.g, &["-q", "backup", "-o", &a, "--no-config"]));
    assert!(o.status.success(), "{}", text(&o));
    let meta = text(&dockroot(["--json", "inspect", &a]));
    assert!(meta.contains(&format!("\"path\":\"{app_s}\"")) || meta.contains(&format!("\"path\": \"{app_s}\"")), "{meta}");
    // Old data differs from the archive's, so a half-done swap cannot pass.
    d.docker(&["volume", "create", "only-in-old-data"]);
    std::fs::write(app.join("db/rows"), "changed\n").unwrap();
    std::fs::write(app.join("after-backup"), "x").unwrap();
    let manifest = || {
        let o = dockroot(["-q", "manifest", &app_s]);
        assert!(o.status.success(), "{}", text(&o));
        o.stdout
    };
    let m0 = manifest();
    let check = || {
        remove_aside(&d.dir);
        assert!(manifest() == m0, "the bind source {app_s} does not hold its previous files");
        let left: Vec<_> = std::fs::read_dir(s.join("srv")).unwrap().flatten().map(|e| e.file_name()).filter(|n| n != "app").collect();
        assert!(left.is_empty(), "left beside the bind source: {left:?}");
    };
    let n = h.every_point("restore", &["-q", "restore", &a, "--yes", "--force"], &check);
    assert!(n > 10, "{n}");
}

/// backup: killed with Docker down, `rollback` starts it again on the same
/// data and removes the partial archive.
#[test]
fn crash_points_backup() {
    let (s, d, _disk) = super::faults::fixture("crash-backup", false);
    let mut g = d.args(&s);
    g.extend(["--data-root".into(), d.root().display().to_string()]);
    let h = Harness { d: &d, s: &s, g, bound: None, supervised: false };
    let a = s.join("a.tar.zst").display().to_string();
    let n = h.every_point("backup", &["-q", "backup", "-o", &a, "--no-config"], &|| {});
    assert!(n > 5, "{n}");
}

/// finalize: killed before its journal write, and before deleting the
/// first, a middle and the last entries of the old tree. Docker keeps
/// running on the new data; a half-deleted old tree can no longer be rolled
/// back to (refused, exit 2), and `finalize` run again completes.
#[test]
fn crash_points_finalize() {
    let (s, d, disk) = super::faults::fixture("crash-fin", false);
    let h = Harness { d: &d, s: &s, g: d.args(&s), bound: None, supervised: false };
    let ts = disk.mnt.join("docker").display().to_string();
    let o = dockroot(with(&h.g, &["-q", "move", "--to", &ts, "--yes"]));
    assert!(o.status.success(), "{}", text(&o));
    let w0 = h.world();
    let j: serde_json::Value = serde_json::from_slice(&std::fs::read(s.join("state/journal.json")).unwrap()).unwrap();
    let old = PathBuf::from(j["old_tree"].as_str().unwrap());
    let entries = walkdir_count(&old);
    let (mut points, mut finished) = (0, false);
    // Each killed run deletes some of the tree, so later counts are of what is left.
    for (sys, n) in [("rename", 1), ("unlinkat", 1), ("unlinkat", entries / 2), ("unlinkat", entries / 4)] {
        let at = format!("finalize: before {sys} #{n}");
        let o = h.traced(&["-q", "finalize", "--yes"], Some((sys, n)), None);
        if o.status.success() {
            eprintln!("{at}: the run completed before the call");
            finished = true;
            break;
        }
        points += 1;
        assert_same(&h.world(), &w0, &at);
        let j: serde_json::Value = serde_json::from_slice(&std::fs::read(s.join("state/journal.json")).unwrap()).unwrap();
        if sys == "unlinkat" {
            assert_eq!(j["outcome"], "finalizing", "{at}");
            let rb = dockroot(with(&h.g, &["rollback", "--yes"]));
            assert_eq!(rb.status.code(), Some(2), "{at}: rollback onto a half-deleted tree must be refused: {}", text(&rb));
            assert!(text(&rb).contains("finalize"), "{}", text(&rb));
        } else {
            // Killed before the journal said finalizing: the move is whole and could still be rolled back.
            assert_eq!(j["outcome"], "moved", "{at}");
            assert!(old.join("image").exists(), "{at}");
        }
    }
    if !finished {
        let o = dockroot(with(&h.g, &["finalize", "--yes"]));
        assert!(o.status.success(), "{}", text(&o));
    }
    assert!(!old.exists() && !s.join("state/journal.json").exists());
    assert_same(&h.world(), &w0, "after finalize");
    d.check_fixture();
    eprintln!("finalize: {points} crash points");
}

fn walkdir_count(p: &Path) -> usize {
    let o = Command::new("find").arg(p).output().unwrap();
    o.stdout.iter().filter(|b| **b == b'\n').count()
}
