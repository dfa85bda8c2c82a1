//! Faults inside the switch and around the stop: a crash (abort, as kill -9)
//! right inside the switch steps, then `rollback` and a fresh `move`.

use std::process::{Command, Output};

use super::{Daemon, with};
use crate::util::{LoopFs, Scratch, dockroot, text};

/// Runs `dockroot move` with the test-only crash hook set at `step`.
fn move_crashing_at(g: &[String], target: &str, step: &str) -> Output {
    Command::new(crate::util::bin())
        .args(with(g, &["-q", "move", "--to", target, "--yes"]))
        .env("DOCKROOT_TEST_CRASH_AT", step)
        .output()
        .unwrap()
}

fn journal(s: &Scratch) -> serde_json::Value {
    serde_json::from_slice(&std::fs::read(s.join("state/journal.json")).unwrap()).unwrap()
}

/// kill -9 (abort) inside the switch: once after the rename (the bind mount
/// started), once after the fstab line was written (start started). Each
/// time `rollback` brings Docker back on the old data with the same state,
/// the volume's checksums intact and fstab restored; then a new `move` works.
#[test]
fn plan_crash_in_switch_then_rollback_and_move_again() {
    let s = Scratch::new("plan-crash");
    let d = Daemon::start(false);
    let disk = LoopFs::new(&s, "xfs", "3G");
    let fstab0 = "# scratch fstab\n";
    std::fs::write(s.join("fstab"), fstab0).unwrap();
    let g = d.args(&s);
    let before = d.state();
    let json0 = std::fs::read(d.dir.join("daemon.json")).unwrap();

    for (i, step) in ["mount", "start"].iter().enumerate() {
        let t = disk.mnt.join(format!("docker{i}")).display().to_string();
        let o = move_crashing_at(&g, &t, step);
        assert!(!o.status.success(), "crash hook at {step} did not fire: {}", text(&o));
        let j = journal(&s);
        assert_eq!(j["outcome"], "in-progress", "{j}");
        assert!(j["steps"].as_array().unwrap().iter().any(|x| x["name"] == *step && x["state"] == "started"), "{j}");
        assert!(j["steps"].as_array().unwrap().iter().any(|x| x["name"] == "rename" && x["state"] == "done"), "{j}");
        assert!(!d.api().ping(), "Docker should be down after the crash at {step}");
        if *step == "start" {
            assert!(std::fs::read_to_string(s.join("fstab")).unwrap().contains("bind"));
        }

        let o = dockroot(with(&g, &["rollback", "--yes"]));
        assert!(o.status.success(), "rollback after crash at {step}: {}", text(&o));
        assert_eq!(d.root_dir(), d.root());
        assert_eq!(d.state(), before, "state after crash at {step} + rollback");
        d.check_fixture();
        assert_eq!(std::fs::read_to_string(s.join("fstab")).unwrap(), fstab0);
        assert_eq!(std::fs::read(d.dir.join("daemon.json")).unwrap(), json0);
        let mounts = std::fs::read_to_string("/proc/self/mountinfo").unwrap();
        let on_root = format!(" {} ", d.root().display());
        assert!(!mounts.lines().any(|l| l.contains(&on_root) && l.contains(" - xfs ")), "target still mounted:\n{mounts}");
        assert_eq!(journal(&s)["outcome"], "rolled-back");
    }

    // The move runs again from the start and succeeds.
    let t = disk.mnt.join("docker-again").display().to_string();
    let o = dockroot(with(&g, &["move", "--to", &t, "--yes"]));
    assert!(o.status.success(), "{}", text(&o));
    assert_eq!(d.state(), before);
    d.check_fixture();
    assert!(std::fs::read_to_string(s.join("fstab")).unwrap().contains(&t));
}
