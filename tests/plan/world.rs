//! The world moves between dockroot's steps (issue 17): the user deletes the
//! kept old tree, a supervisor starts dockerd again, config management puts
//! the old `data-root` back. `rollback` and `finalize` must then refuse
//! (exit 4, nothing changed, Docker running) rather than bring Docker up
//! empty or delete the tree it runs on. Each test ran against the binary
//! before issue 17 and failed there (`DOCKROOT_TEST_BIN`, see tests/util.rs).

use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::process::Command;

use super::{Daemon, with};
use crate::util::{dockroot, ok, script, text};

/// Exit code of a refusal that changed nothing because the world differs
/// from the journal.
const REFUSED_UNSAFE: i32 = 4;

fn journal(s: &crate::util::Scratch) -> serde_json::Value {
    serde_json::from_slice(&std::fs::read(s.join("state/journal.json")).unwrap()).unwrap()
}

fn id(p: &Path) -> (u64, u64) {
    let m = std::fs::metadata(p).unwrap();
    (m.dev(), m.ino())
}

/// Restarts the private dockerd as its supervisor would (same flags).
pub(super) fn restart_dockerd(d: &Daemon) {
    ok(Command::new("bash").arg(script("dockerd.sh")).arg("stop").arg(&d.dir));
    start_dockerd(d);
}

/// Starts the private dockerd as systemd or socket activation would,
/// unless it runs; `data-root` in daemon.json decides how it is passed.
pub(super) fn start_dockerd(d: &Daemon) -> bool {
    if d.api().ping() {
        return false;
    }
    let cfg = std::fs::read_to_string(d.dir.join("daemon.json")).unwrap_or_default();
    let mut c = Command::new("bash");
    c.arg(script("dockerd.sh")).arg("start").arg(&d.dir);
    if cfg.contains("\"data-root\"") {
        c.env("DOCKROOT_DATA_ROOT_IN_JSON", "1");
    }
    let o = c.output().unwrap();
    assert!(o.status.success(), "the supervisor could not start dockerd: {}", text(&o));
    true
}

fn assert_refused(o: &std::process::Output, what: &str, words: &[&str]) {
    assert_eq!(o.status.code(), Some(REFUSED_UNSAFE), "{what} must be refused: {}", text(o));
    for w in words {
        assert!(text(o).contains(w), "{what}: the message should name {w}: {}", text(o));
    }
}

/// A finished restore, the kept `.dockroot-old-*` deleted by the user, then
/// `rollback`: refused, Docker still runs on the restored data. (Before:
/// exit 0 and Docker came up with no images.)
#[test]
fn world_rollback_of_a_restore_whose_old_tree_was_deleted_is_refused() {
    let (s, d, _disk) = super::faults::fixture("world-restore", false);
    let mut g = d.args(&s);
    g.extend(["--data-root".into(), d.root().display().to_string()]);
    let a = s.join("a.tar.zst").display().to_string();
    let o = dockroot(with(&g, &["-q", "backup", "-o", &a, "--no-config"]));
    assert!(o.status.success(), "{}", text(&o));
    d.docker(&["volume", "create", "only-in-old-data"]);
    let o = dockroot(with(&g, &["-q", "restore", &a, "--yes", "--force"]));
    assert!(o.status.success(), "{}", text(&o));
    let restored = d.state();
    let old = PathBuf::from(journal(&s)["old_tree"].as_str().unwrap());
    std::fs::remove_dir_all(&old).unwrap();

    let o = dockroot(with(&g, &["rollback", "--yes"]));
    assert_refused(&o, "rollback after the old tree was deleted", &[&old.display().to_string(), "nothing was changed"]);
    assert_eq!(d.root_dir(), d.root());
    assert_eq!(d.state(), restored, "Docker runs on the restored data");
    d.check_fixture();
    assert!(!text(&d.docker(&["volume", "ls", "-q"])).contains("only-in-old-data"));
}

/// The same after a finished bind move (not finalized): refused, Docker
/// still runs on the copy through the bind mount.
#[test]
fn world_rollback_of_a_bind_move_whose_old_tree_was_deleted_is_refused() {
    let (s, d, disk) = super::faults::fixture("world-bind", false);
    let g = d.args(&s);
    let target = disk.mnt.join("docker");
    let o = dockroot(with(&g, &["-q", "move", "--method", "bind", "--to", &target.display().to_string(), "--yes"]));
    assert!(o.status.success(), "{}", text(&o));
    let moved = d.state();
    let fstab = std::fs::read(s.join("fstab")).unwrap();
    let old = PathBuf::from(journal(&s)["old_tree"].as_str().unwrap());
    std::fs::remove_dir_all(&old).unwrap();
    // As if the move had finished two days ago: the rollback says so, and
    // says what it replaces, and only --yes confirms it.
    let mut j = journal(&s);
    j["finished_at"] = serde_json::json!(j["finished_at"].as_u64().expect("finished_at recorded") - 2 * 86_400);
    std::fs::write(s.join("state/journal.json"), serde_json::to_vec(&j).unwrap()).unwrap();
    let o = dockroot(with(&g, &["rollback"]));
    assert_eq!(o.status.code(), Some(2), "{}", text(&o));
    assert!(text(&o).contains("finished 2 days ago") && text(&o).contains("--yes") && text(&o).contains("images"), "{}", text(&o));

    let o = dockroot(with(&g, &["rollback", "--yes"]));
    assert_refused(&o, "rollback after the old tree was deleted", &[&old.display().to_string(), "nothing was changed"]);
    assert_eq!(d.root_dir(), d.root());
    assert_eq!(d.state(), moved);
    assert_eq!(id(&d.root()), id(&target), "the data-root still shows the copy");
    assert_eq!(std::fs::read(s.join("fstab")).unwrap(), fstab, "fstab untouched");
    d.check_fixture();
    assert_eq!(journal(&s)["outcome"], "moved", "the move can still be finalized");
    let o = dockroot(with(&g, &["finalize", "--yes"]));
    assert!(o.status.success(), "{}", text(&o));
    d.check_fixture();
}

/// A data-root move, then config management puts the old `data-root` back
/// in daemon.json and restarts Docker on the old tree: `finalize` refuses
/// and deletes nothing. (Before: it deleted most of the tree Docker ran on.)
#[test]
fn world_finalize_refuses_to_delete_the_tree_docker_runs_on() {
    let (s, d, disk) = super::faults::fixture("world-fin", true);
    let g = d.args(&s);
    let json0 = std::fs::read(d.dir.join("daemon.json")).unwrap();
    let before = d.state();
    let target = disk.mnt.join("docker");
    let o = dockroot(with(&g, &["-q", "move", "--method", "data-root", "--to", &target.display().to_string(), "--yes"]));
    assert!(o.status.success(), "{}", text(&o));
    assert_eq!(d.root_dir(), target);
    std::fs::write(d.dir.join("daemon.json"), &json0).unwrap();
    restart_dockerd(&d);
    assert_eq!(d.root_dir(), d.root(), "config management brought Docker back on the old tree");

    let o = dockroot(with(&g, &["finalize", "--yes"]));
    assert_refused(&o, "finalize while Docker runs on the old tree", &[&d.root().display().to_string(), "nothing was"]);
    assert_eq!(d.state(), before);
    d.check_fixture();
    assert!(d.root().join("image").is_dir());
}

/// Something mounted inside the old tree (a tmpfs here): `finalize` refuses
/// before deleting anything, and deletes the tree once it is unmounted.
#[test]
fn world_finalize_never_deletes_across_a_mount() {
    let (s, d, disk) = super::faults::fixture("world-mnt", false);
    let g = d.args(&s);
    let o = dockroot(with(&g, &["-q", "move", "--to", &disk.mnt.join("docker").display().to_string(), "--yes"]));
    assert!(o.status.success(), "{}", text(&o));
    let old = PathBuf::from(journal(&s)["old_tree"].as_str().unwrap());
    let mnt = old.join("volumes/dockroot-vol/_data/tmpfs");
    std::fs::create_dir_all(&mnt).unwrap();
    ok(Command::new("mount").args(["-t", "tmpfs", "tmpfs"]).arg(&mnt));
    std::fs::write(mnt.join("precious"), "keep").unwrap();
    let entries = walk_count(&old);

    let o = dockroot(with(&g, &["finalize", "--yes"]));
    let refused = o.status.code() == Some(REFUSED_UNSAFE);
    let kept = std::fs::read_to_string(mnt.join("precious")).ok();
    let left = walk_count(&old);
    ok(Command::new("umount").arg(&mnt));
    assert!(refused && text(&o).contains(&mnt.display().to_string()), "finalize must refuse and name the mount: {}", text(&o));
    assert_eq!(kept.as_deref(), Some("keep"), "the tmpfs's content is untouched");
    assert_eq!(left, entries, "nothing of the old tree was deleted");
    let o = dockroot(with(&g, &["finalize", "--yes"]));
    assert!(o.status.success(), "{}", text(&o));
    assert!(!old.exists());
    d.check_fixture();
}

fn walk_count(p: &Path) -> usize {
    let o = Command::new("find").arg(p).arg("-xdev").output().unwrap();
    o.stdout.iter().filter(|b| **b == b'\n').count()
}
