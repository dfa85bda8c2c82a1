//! `backup --snapshot`: Docker is stopped only while the data-root is
//! snapshotted (btrfs) or cloned (reflink) on its own loop-mounted
//! filesystem; the archive is read from that capture with Docker running.
//! Real private dockerd (overlay2 on xfs and on a btrfs subvolume, the btrfs
//! storage driver for the refused case), restores compared with treecmp and
//! with the engine's state, and kills at every state-changing call.

use std::path::Path;
use std::process::Command;

use super::crash::Harness;
use super::{Daemon, with};
use crate::util::{LoopFs, Scratch, assert_same_tree, dockroot, fidelity_tree, json, ok, text};

fn must(o: std::process::Output) -> std::process::Output {
    assert!(o.status.success(), "dockroot failed: {}", text(&o));
    o
}

/// Leftover captures next to `tree` (none may survive a backup or a rollback).
fn captures_beside(tree: &Path) -> Vec<String> {
    std::fs::read_dir(tree.parent().unwrap())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with(".dockroot-snap-"))
        .collect()
}

fn subvolume(path: &Path) {
    ok(Command::new("btrfs").args(["-q", "subvolume", "create"]).arg(path));
}

/// Backs up the daemon `d` (data-root `root`) with `--snapshot method`,
/// checks the report, the journal and that Docker came back with the same
/// state; then restores the archive onto a fresh directory and checks a
/// dockerd there has the same images, containers and volumes, and runs.
fn round_trip(s: &Scratch, d: &Daemon, root: &Path, method: &str) {
    let before = d.state();
    let g = d.args(s);
    let a = s.join(&format!("{method}.tar.zst"));
    let o = must(dockroot(with(&g, &["--json", "backup", "-o", &a.display().to_string(), "--no-config", "--snapshot", method])));
    let j = json(&o);
    let sum = &j["summary"];
    assert_eq!(sum["snapshot"], method, "{j}");
    let (down, total) = (sum["downtime_seconds"].as_f64().unwrap(), sum["seconds"].as_f64().unwrap());
    assert!(down > 0.0 && down < total, "downtime {down} of {total}");
    eprintln!("{method}: Docker down {down:.2}s of {total:.2}s");
    let journal: serde_json::Value = serde_json::from_slice(&std::fs::read(s.join("state/journal.json")).unwrap()).unwrap();
    assert_eq!((journal["outcome"].as_str(), journal["snapshot"].as_str()), (Some("done"), Some(method)), "{journal}");
    assert_eq!(journal["downtime_seconds"].as_f64(), Some(down));
    assert_eq!(captures_beside(root), Vec::<String>::new(), "the snapshot is deleted after the archive");
    assert_eq!(d.state(), before, "Docker came back with the same objects");
    d.check_fixture();
    let meta = json(&must(dockroot(["--json", "inspect", &a.display().to_string()])));
    assert_eq!(meta["meta"]["snapshot"], method, "{meta}");
    must(dockroot(["-q", "verify", &a.display().to_string()]));

    // A fresh data-root from the archive holds the same engine.
    let fresh = s.join(&format!("restored-{method}"));
    let st = s.join("state-restore");
    must(dockroot([
        "-q",
        "--service",
        "none",
        "--data-root",
        &fresh.display().to_string(),
        "--state-dir",
        &st.display().to_string(),
        "restore",
        &a.display().to_string(),
        "--yes",
    ]));
    let d2 = Daemon::start_in(false, None, Some(&fresh), &[]);
    assert_eq!(d2.state(), before, "the restored engine's images, containers and volumes");
    d2.check_fixture();
}

/// The fidelity tree (every entry type and metadata kind) archived from
/// each kind of snapshot (`--service none`: only the capture and the
/// journal) restores identical to the source; a nested subvolume refuses
/// `--snapshot btrfs` and leaves nothing behind.
#[test]
fn snapshot_backups_of_the_fidelity_tree_restore_identical() {
    crate::util::require_root();
    let s = Scratch::new("snap-fid");
    let xfs = LoopFs::new(&s, "xfs", "2G");
    let btrfs = LoopFs::new(&s, "btrfs", "2G");
    let x = xfs.mnt.join("docker");
    fidelity_tree(&x);
    let b = btrfs.mnt.join("docker");
    subvolume(&b);
    fidelity_tree(&b.join("t"));
    let st = s.join("state").display().to_string();
    for (tree, method) in [(&x, "reflink"), (&b, "btrfs"), (&b, "reflink")] {
        let a = s.join(&format!("{method}.tar.zst")).display().to_string();
        let _ = std::fs::remove_file(&a);
        let g = ["--service", "none", "--data-root", &tree.display().to_string(), "--state-dir", &st];
        let o = must(dockroot(g.iter().copied().chain(["--json", "backup", "-o", &a, "--no-config", "--snapshot", method])));
        assert_eq!(json(&o)["summary"]["snapshot"], method);
        assert_eq!(captures_beside(tree), Vec::<String>::new());
        let r = s.join(&format!("r-{method}-{}", tree.parent().unwrap().file_name().unwrap().to_string_lossy()));
        must(dockroot(["-q", "--service", "none", "--data-root", &r.display().to_string(), "--state-dir", &st, "restore", &a, "--yes"]));
        assert_same_tree(tree, &r);
    }
    // auto with --service none stops nothing: no snapshot, and it says why.
    let o = must(dockroot([
        "--json",
        "--service",
        "none",
        "--data-root",
        &x.display().to_string(),
        "--state-dir",
        &st,
        "backup",
        "-o",
        &s.join("auto.tar").display().to_string(),
        "--no-config",
        "--compress",
        "none",
    ]));
    let sum = &json(&o)["summary"];
    assert_eq!(sum["snapshot"], "none");
    assert!(sum["snapshot_skipped"].as_str().unwrap().contains("service none"), "{sum}");

    let nested = b.join("t/nested");
    subvolume(&nested);
    let o = dockroot([
        "--service",
        "none",
        "--data-root",
        &b.display().to_string(),
        "--state-dir",
        &st,
        "backup",
        "-o",
        &s.join("n.tar.zst").display().to_string(),
        "--no-config",
        "--snapshot",
        "btrfs",
    ]);
    assert_eq!(o.status.code(), Some(2), "{}", text(&o));
    assert!(text(&o).contains("nested btrfs subvolume"), "{}", text(&o));
    assert_eq!(captures_beside(&b), Vec::<String>::new());
    ok(Command::new("btrfs").args(["-q", "subvolume", "delete"]).arg(&nested));
}

/// overlay2 on a loop-mounted xfs (reflink=1): `--snapshot reflink`.
#[test]
fn snapshot_backup_reflink_on_xfs_round_trip() {
    let s = Scratch::new("snap-xfs");
    std::fs::write(s.join("fstab"), "").unwrap();
    let disk = LoopFs::new(&s, "xfs", "3G");
    let root = disk.mnt.join("docker");
    let d = Daemon::start_in(false, None, Some(&root), &[]).populate();
    round_trip(&s, &d, &root, "reflink");
}

/// overlay2 on a btrfs subvolume: `--snapshot btrfs` (read-only snapshot).
#[test]
fn snapshot_backup_btrfs_subvolume_round_trip() {
    let s = Scratch::new("snap-btrfs");
    std::fs::write(s.join("fstab"), "").unwrap();
    let disk = LoopFs::new(&s, "btrfs", "3G");
    let root = disk.mnt.join("docker");
    subvolume(&root);
    let d = Daemon::start_in(false, None, Some(&root), &[]).populate();
    round_trip(&s, &d, &root, "btrfs");
}

/// The btrfs storage driver keeps layers in nested subvolumes that a
/// snapshot of the data-root lacks: `--snapshot btrfs` is refused before
/// Docker is stopped, and `auto` clones instead.
#[test]
fn btrfs_storage_driver_refuses_btrfs_snapshot_and_auto_clones() {
    let s = Scratch::new("snap-drv");
    std::fs::write(s.join("fstab"), "").unwrap();
    let disk = LoopFs::new(&s, "btrfs", "3G");
    let root = disk.mnt.join("docker");
    subvolume(&root);
    let d = Daemon::start_in(false, None, Some(&root), &[("DOCKROOT_STORAGE_DRIVER", "btrfs")]).populate();
    let g = d.args(&s);
    let a = s.join("a.tar.zst").display().to_string();
    let o = dockroot(with(&g, &["backup", "-o", &a, "--no-config", "--snapshot", "btrfs"]));
    assert_eq!(o.status.code(), Some(2), "{}", text(&o));
    assert!(text(&o).contains("btrfs storage driver"), "{}", text(&o));
    assert!(!Path::new(&a).exists() && !s.join("state/journal.json").exists(), "refused before anything happened");
    let o = must(dockroot(with(&g, &["--json", "backup", "-o", &a, "--no-config"])));
    assert_eq!(json(&o)["summary"]["snapshot"], "reflink", "{}", text(&o));
    assert_eq!(captures_beside(&root), Vec::<String>::new());
    d.check_fixture();
}

/// On ext4 `auto` finds no way to snapshot and archives with Docker stopped.
#[test]
fn snapshot_auto_on_ext4_falls_back_to_a_stopped_backup() {
    let s = Scratch::new("snap-ext4");
    let d = Daemon::start(false);
    let a = s.join("a.tar.zst").display().to_string();
    let o = must(dockroot(with(&d.args(&s), &["--json", "backup", "-o", &a, "--no-config"])));
    let sum = &json(&o)["summary"];
    assert_eq!(sum["snapshot"], "none", "{sum}");
    assert!(sum["snapshot_skipped"].as_str().unwrap().contains("cannot clone"), "{sum}");
}

/// Killed in the archive step (Docker already running again on its data,
/// the clone still there), at its start and while it writes: `rollback`
/// deletes the clone and the partial archive and leaves Docker running;
/// then every state-changing call of a snapshot backup is a kill point,
/// each rolled back to the same engine with no capture left.
#[test]
fn snapshot_backup_killed_at_every_point_is_rolled_back() {
    let s = Scratch::new("snap-crash");
    std::fs::write(s.join("fstab"), "").unwrap();
    let disk = LoopFs::new(&s, "xfs", "3G");
    let root = disk.mnt.join("docker");
    let d = Daemon::start_in(false, None, Some(&root), &[]).populate();
    let g = d.args(&s);
    let a = s.join("a.tar.zst").display().to_string();
    let args = ["-q", "backup", "-o", &a, "--no-config", "--snapshot", "reflink"];
    let o = Command::new(crate::util::bin()).args(with(&g, &args)).env("DOCKROOT_TEST_CRASH_AT", "archive").output().unwrap();
    assert!(!o.status.success(), "the crash hook did not fire: {}", text(&o));
    assert_eq!(captures_beside(&root).len(), 1, "the clone is there after the kill");
    assert!(d.api().ping(), "Docker runs again before the archive is read");
    must(dockroot(with(&g, &["rollback", "--yes"])));
    assert_eq!(captures_beside(&root), Vec::<String>::new(), "rollback deleted the clone");
    d.check_fixture();

    // SIGKILL in the middle of reading the clone: a volume with 192 MiB of
    // random data keeps the archive busy long enough to be caught writing.
    d.docker(&["volume", "create", "big"]);
    ok(Command::new("sh").arg("-c").arg(format!("head -c 192M /dev/urandom > {}", root.join("volumes/big/_data/blob").display())));
    let partial = s.join("a.tar.zst.partial");
    let mut child = Command::new(crate::util::bin()).args(with(&g, &args)).spawn().unwrap();
    while !partial.metadata().is_ok_and(|m| m.len() > 8 << 20) {
        assert!(child.try_wait().unwrap().is_none(), "the backup ended before it could be killed in its archive step");
        std::thread::sleep(std::time::Duration::from_millis(10));
    }
    child.kill().unwrap();
    child.wait().unwrap();
    assert_eq!(captures_beside(&root).len(), 1, "the clone is there after the kill");
    assert!(d.api().ping(), "Docker runs during the archive step");
    must(dockroot(with(&g, &["rollback", "--yes"])));
    assert!(!partial.exists() && captures_beside(&root).is_empty(), "rollback removed the partial archive and the clone");
    d.check_fixture();

    let h = Harness { d: &d, s: &s, g, bound: None, supervised: false };
    let no_capture = || assert_eq!(captures_beside(&root), Vec::<String>::new(), "a capture survived the rollback");
    let n = h.every_point("backup --snapshot reflink", &args, &no_capture);
    assert!(n > 5, "{n}");
}
