//! Faults inside the switch and around the stop: a crash (abort, as kill -9)
//! right inside the switch steps, then `rollback` and a fresh `move`.

use std::process::{Command, Output};

use super::{Daemon, with};
use crate::util::{LoopFs, Scratch, dockroot, text};

/// Runs `dockroot move` with the test-only crash hook set at `step`.
fn move_crashing_at(g: &[String], target: &str, step: &str) -> Output {
    move_with_hook(g, target, "DOCKROOT_TEST_CRASH_AT", step)
}

/// Runs `dockroot move` with a test-only hook variable set.
fn move_with_hook(g: &[String], target: &str, var: &str, value: &str) -> Output {
    Command::new(crate::util::bin()).args(with(g, &["-q", "move", "--to", target, "--yes"])).env(var, value).output().unwrap()
}

/// The scratch fstab every test starts from.
const FSTAB0: &str = "# scratch fstab\n";

/// A scratch directory with [`FSTAB0`], a populated private daemon and a 3G xfs target disk.
pub(super) fn fixture(tag: &str, root_in_json: bool) -> (Scratch, Daemon, LoopFs) {
    let s = Scratch::new(tag);
    let d = Daemon::start(root_in_json);
    let disk = LoopFs::new(&s, "xfs", "3G");
    std::fs::write(s.join("fstab"), FSTAB0).unwrap();
    (s, d, disk)
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
    let (s, d, disk) = fixture("plan-crash", false);
    let fstab0 = FSTAB0;
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

/// A dockerd that will not stop (SIGSTOPped, so SIGTERM is not acted on):
/// the move fails naming the pid and what to do, nothing is switched, the
/// journal is closed, exit 3 (failed and undone). After SIGCONT the pending
/// SIGTERM ends dockerd; started again, it runs on the old data with nothing
/// lost, and a move works.
#[test]
fn plan_daemon_that_will_not_stop() {
    use nix::sys::signal::{Signal, kill};
    use nix::unistd::Pid;
    let s = Scratch::new("plan-nostop");
    let d = Daemon::start(false);
    let disk = LoopFs::new(&s, "xfs", "3G");
    let fstab0 = "# scratch fstab\n";
    std::fs::write(s.join("fstab"), fstab0).unwrap();
    let g = d.args(&s);
    let before = d.state();
    let t = disk.mnt.join("docker").display().to_string();
    let pid: i32 = std::fs::read_to_string(d.dir.join("pid")).unwrap().trim().parse().unwrap();

    // SIGSTOP dockerd while the precopy runs (it needs no API); the stop
    // that follows then sends a SIGTERM that is not acted on.
    let child = Command::new(crate::util::bin())
        .args(with(&g, &["move", "--to", &t, "--yes"]))
        .env("DOCKROOT_STOP_TIMEOUT", "3")
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    loop {
        let j = std::fs::read_to_string(s.join("state/journal.json")).unwrap_or_default();
        let v: serde_json::Value = serde_json::from_str(&j).unwrap_or_default();
        if v["steps"].as_array().is_some_and(|a| a.iter().any(|x| x["name"] == "precopy")) {
            break;
        }
        assert!(std::time::Instant::now() < deadline, "move never reached the precopy");
        std::thread::sleep(std::time::Duration::from_millis(1));
    }
    kill(Pid::from_raw(pid), Signal::SIGSTOP).unwrap();
    let o = child.wait_with_output().unwrap();
    let msg = text(&o);
    kill(Pid::from_raw(pid), Signal::SIGCONT).unwrap();
    eprintln!("{msg}");
    // 3: failed and undone, Docker runs on the old data.
    assert_eq!(o.status.code(), Some(3), "{msg}");
    assert!(msg.contains(&format!("pid {pid}")) && msg.contains("did not exit"), "{msg}");
    assert!(msg.contains("kill it yourself") && msg.contains("undone"), "{msg}");
    assert_eq!(std::fs::read_to_string(s.join("fstab")).unwrap(), fstab0);
    assert_eq!(journal(&s)["outcome"], "rolled-back");
    assert!(d.root().join("overlay2").is_dir(), "data-root was renamed");
    // dockroot never starts a second dockerd next to the live one.
    let out = crate::util::sh(&format!("pgrep -f '[d]ockerd --config-file {}/' | wc -l", d.dir.display()));
    assert_eq!(text(&out).trim(), "1", "{}", text(&out));

    // The SIGTERM sent by dockroot is pending: after SIGCONT dockerd exits.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    while kill(Pid::from_raw(pid), None).is_ok() && std::path::Path::new(&format!("/proc/{pid}/status")).exists() {
        let st = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
        if st.contains("State:\tZ") {
            break;
        }
        assert!(std::time::Instant::now() < deadline, "dockerd did not exit after SIGCONT");
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    crate::util::ok(Command::new("bash").arg(crate::util::script("dockerd.sh")).arg("start").arg(&d.dir));
    assert_eq!(d.root_dir(), d.root());
    assert_eq!(d.state(), before);
    d.check_fixture();

    // The partial copy left in the target must be deleted (or another target chosen).
    let t2 = disk.mnt.join("docker2").display().to_string();
    let o = dockroot(with(&g, &["move", "--to", &t2, "--yes"]));
    assert!(o.status.success(), "{}", text(&o));
    assert_eq!(d.state(), before);
    d.check_fixture();
}

/// live-restore with a running container: refused before Docker is stopped,
/// exit 2, Docker untouched; after `docker stop` of the container the move
/// succeeds (the self-bind mount of the data-root that dockerd leaves behind
/// with live-restore is handled).
#[test]
fn plan_live_restore_refuses_then_moves() {
    let s = Scratch::new("plan-live");
    let d = Daemon::start_with_config(false, Some("{\"live-restore\": true}\n"));
    let disk = LoopFs::new(&s, "xfs", "3G");
    std::fs::write(s.join("fstab"), "# scratch fstab\n").unwrap();
    let g = d.args(&s);
    let t = disk.mnt.join("docker").display().to_string();
    let before = d.state();

    let o = dockroot(with(&g, &["move", "--to", &t, "--yes"]));
    let msg = text(&o);
    assert_eq!(o.status.code(), Some(2), "{msg}");
    assert!(msg.contains("live-restore") && msg.contains("docker stop") && msg.contains("\"live-restore\": false"), "{msg}");
    assert!(msg.contains(&d.dir.join("daemon.json").display().to_string()), "{msg}");
    assert!(d.api().ping());
    assert_eq!(d.state(), before);
    assert!(!std::path::Path::new(&t).exists(), "nothing may be copied before the refusal");

    d.docker(&["stop", "dockroot-runner"]);
    let stopped = d.state();
    let o = dockroot(with(&g, &["move", "--to", &t, "--yes"]));
    assert!(o.status.success(), "{}", text(&o));
    assert_eq!(d.root_dir(), d.root());
    assert_eq!(d.state(), stopped);
    let mounts = std::fs::read_to_string("/proc/self/mountinfo").unwrap();
    let on_root = format!(" {} ", d.root().display());
    assert!(mounts.lines().any(|l| l.contains(&on_root) && l.contains(" - xfs ")), "target not mounted on the data-root:\n{mounts}");

    // Rollback too needs no running container with live-restore.
    let o = dockroot(with(&g, &["rollback", "--yes"]));
    assert!(o.status.success(), "{}", text(&o));
    assert_eq!(d.root_dir(), d.root());
    assert_eq!(d.state(), stopped);
    d.docker(&["start", "dockroot-runner"]);
    d.check_fixture();
}

/// `move --resume` after a crash in the switch: the pre-move state is
/// restored from the journal, then the move runs again to the same target.
#[test]
fn plan_resume_after_crash() {
    let s = Scratch::new("plan-resume");
    let d = Daemon::start(false);
    let disk = LoopFs::new(&s, "xfs", "3G");
    std::fs::write(s.join("fstab"), "# scratch fstab\n").unwrap();
    let g = d.args(&s);
    let before = d.state();
    let t = disk.mnt.join("docker").display().to_string();

    let o = dockroot(with(&g, &["move", "--resume", "--yes"]));
    assert_eq!(o.status.code(), Some(2), "{}", text(&o));
    assert!(text(&o).contains("nothing to resume"), "{}", text(&o));

    let o = move_crashing_at(&g, &t, "fstab");
    assert!(!o.status.success(), "{}", text(&o));
    assert_eq!(journal(&s)["outcome"], "in-progress");
    let o = dockroot(with(&g, &["move", "--to", &t, "--yes"]));
    assert_eq!(o.status.code(), Some(2), "{}", text(&o));
    assert!(text(&o).contains("--resume"), "{}", text(&o));

    let o = dockroot(with(&g, &["move", "--resume", "--yes"]));
    assert!(o.status.success(), "{}", text(&o));
    assert!(text(&o).contains("undone"), "{}", text(&o));
    assert_eq!(journal(&s)["outcome"], "moved");
    assert_eq!(d.root_dir(), d.root());
    assert_eq!(d.state(), before);
    d.check_fixture();
    let fstab = std::fs::read_to_string(s.join("fstab")).unwrap();
    assert_eq!(fstab.matches(&t).count(), 2, "{fstab}");
    let mounts = std::fs::read_to_string("/proc/self/mountinfo").unwrap();
    let on_root = format!(" {} ", d.root().display());
    assert!(mounts.lines().any(|l| l.contains(&on_root) && l.contains(" - xfs ")), "{mounts}");
}

/// Exit codes 3 and 4: a move whose health check fails is undone (exit 3,
/// Docker on the old data); when undoing its fstab edit fails too, exit 4
/// names the journal and `rollback`, which then puts everything back.
#[test]
fn plan_exit_3_when_undone_and_4_when_the_undo_fails() {
    let (s, d, disk) = fixture("plan-exit", false);
    let fstab0 = FSTAB0;
    let g = d.args(&s);
    let before = d.state();
    let run_failing = |target: &str, at: &str| move_with_hook(&g, target, "DOCKROOT_TEST_FAIL_AT", at);
    let o = run_failing(&disk.mnt.join("a").display().to_string(), "health");
    assert_eq!(o.status.code(), Some(3), "{}", text(&o));
    assert!(text(&o).contains("the move was undone"), "{}", text(&o));
    assert_eq!(d.root_dir(), d.root());
    assert_eq!(d.state(), before);
    assert_eq!(std::fs::read_to_string(s.join("fstab")).unwrap(), fstab0);

    let o = run_failing(&disk.mnt.join("b").display().to_string(), "health,undo:fstab");
    assert_eq!(o.status.code(), Some(4), "{}", text(&o));
    assert!(text(&o).contains("undoing the move failed too") && text(&o).contains("dockroot rollback"), "{}", text(&o));
    let o = dockroot(with(&g, &["rollback", "--yes"]));
    assert!(o.status.success(), "{}", text(&o));
    assert_eq!(d.root_dir(), d.root());
    assert_eq!(d.state(), before);
    assert_eq!(std::fs::read_to_string(s.join("fstab")).unwrap(), fstab0);
    d.check_fixture();
}
