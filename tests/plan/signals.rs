//! SIGTERM, SIGINT and SIGHUP while Docker is stopped (issue 17 item 4):
//! during `backup --stop-the-world`, a `move`'s copy and a `restore`'s swap.
//! Each run must undo its step, start Docker again on the same data, exit 3,
//! and leave nothing for `rollback`. The first signal is acknowledged on
//! stderr; a second SIGINT during the undo is reported and ignored.
//!
//! The fixture's trees are small, so the stopped window is stretched with
//! strace's delay injection instead of gigabytes of data: every `pread64`
//! (the copy's and the archive's reads) or the restore's `syncfs` waits a
//! little. `-f` reaches the worker threads, `-b execve` leaves the dockerd
//! that dockroot starts untraced. The signal goes ~3 s after the journal
//! says Docker stopped (polled, not guessed).

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;

use super::{Daemon, with};
use crate::util::{Scratch, dockroot, text};

/// stderr lines of a running dockroot, with when each arrived.
type Lines = Arc<Mutex<Vec<(Instant, String)>>>;

/// dockroot `args` under strace, each `slow` call delayed by `delay_us`.
fn slowed(g: &[String], args: &[&str], slow: &str, delay_us: u64) -> (Child, Lines) {
    let mut child = Command::new("strace")
        .args(["-f", "-b", "execve", "-o", "/dev/null", "-e"])
        .arg(format!("trace={slow}"))
        .arg("-e")
        .arg(format!("inject={slow}:delay_enter={delay_us}"))
        .arg(crate::util::bin())
        .args(with(g, args))
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let lines: Lines = Arc::default();
    let (err, sink) = (child.stderr.take().unwrap(), lines.clone());
    std::thread::spawn(move || {
        for l in BufReader::new(err).lines().map_while(Result::ok) {
            sink.lock().unwrap().push((Instant::now(), l));
        }
    });
    (child, lines)
}

/// strace and the dockroot it traces, killed if a failed check leaves them
/// running (a dockroot left behind would start the test's dockerd again).
struct Traced {
    strace: Child,
    pid: Pid,
}

impl Drop for Traced {
    fn drop(&mut self) {
        if self.strace.try_wait().ok().flatten().is_none() {
            let _ = kill(self.pid, Signal::SIGKILL);
            let _ = self.strace.kill();
            let _ = self.strace.wait();
        }
    }
}

/// The pid of strace's traced child (dockroot). strace forks short-lived
/// children of its own first (probing ptrace features): the one wanted
/// runs the dockroot binary.
fn traced_pid(strace: &Child) -> Pid {
    let deadline = Instant::now() + Duration::from_secs(30);
    let exe = std::fs::canonicalize(crate::util::bin()).unwrap();
    loop {
        let p = format!("/proc/{0}/task/{0}/children", strace.id());
        for pid in std::fs::read_to_string(p).unwrap_or_default().split_whitespace() {
            if std::fs::read_link(format!("/proc/{pid}/exe")).is_ok_and(|e| e == exe) {
                return Pid::from_raw(pid.parse().unwrap());
            }
        }
        assert!(Instant::now() < deadline, "strace started no dockroot");
        std::thread::sleep(Duration::from_millis(10));
    }
}

fn journal(state: &Path) -> serde_json::Value {
    std::fs::read(state.join("journal.json")).ok().and_then(|b| serde_json::from_slice(&b).ok()).unwrap_or_default()
}

/// Waits until the journal records Docker stopped (step `stop` done).
fn wait_stopped(state: &Path, what: &str) {
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        let j = journal(state);
        if j["steps"].as_array().is_some_and(|a| a.iter().any(|s| s["name"] == "stop" && s["state"] == "done")) {
            return;
        }
        assert!(Instant::now() < deadline, "{what}: Docker was never stopped: {j}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Polls the API for up to 15 s after dockroot's exit.
fn answers_within_15s(d: &Daemon) -> bool {
    let deadline = Instant::now() + Duration::from_secs(15);
    while !d.api().ping() {
        if Instant::now() >= deadline {
            return false;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    true
}

/// Runs `args` slowed at `slow`, sends `sig` 3 s after the stop (a second
/// SIGINT once the first is acknowledged, for SIGINT), and checks the end.
fn signal_while_stopped(d: &Daemon, s: &Scratch, args: &[&str], slow: (&str, u64), sig: Signal) {
    let what = format!("{sig} during `{}`", args.join(" "));
    let state = s.join("state");
    let _ = std::fs::remove_file(state.join("journal.json"));
    let before = d.state();
    let (strace, lines) = slowed(&d.args(s), args, slow.0, slow.1);
    let pid = traced_pid(&strace);
    let mut t = Traced { strace, pid };
    wait_stopped(&state, &what);
    std::thread::sleep(Duration::from_secs(3));
    let sent = Instant::now();
    if let Err(e) = kill(pid, sig) {
        let status = t.strace.wait().unwrap();
        let err: Vec<String> = lines.lock().unwrap().iter().map(|(_, l)| l.clone()).collect();
        panic!("{what}: dockroot ended ({e}, {status}) before the signal:\n{}", err.join("\n"));
    }
    let acked = |needle: &str| lines.lock().unwrap().iter().find(|(_, l)| l.contains(needle)).map(|(t, _)| *t);
    let mut second = false;
    if sig == Signal::SIGINT {
        let deadline = Instant::now() + Duration::from_secs(10);
        while acked("SIGINT received").is_none() && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(20));
        }
        second = kill(pid, Signal::SIGINT).is_ok();
    }
    let status = t.strace.wait().unwrap();
    let exited = Instant::now();
    std::thread::sleep(Duration::from_millis(200)); // the reader's last lines
    let err: Vec<String> = lines.lock().unwrap().iter().map(|(_, l)| l.clone()).collect();
    let err = err.join("\n");
    let ack = acked(&format!("{sig} received")).unwrap_or_else(|| panic!("{what}: no acknowledgement on stderr:\n{err}"));
    eprintln!("{what}: acknowledged {:.2}s after the signal, exit {:?}", ack.duration_since(sent).as_secs_f64(), status.code());
    assert_eq!(status.code(), Some(3), "{what}: {err}");
    if second {
        assert!(err.contains("SIGINT ignored"), "{what}: the second SIGINT was not reported:\n{err}");
    }
    assert!(answers_within_15s(d), "{what}: Docker does not answer 15 s after dockroot's exit:\n{err}");
    eprintln!("{what}: Docker answered {:.2}s after the exit", exited.elapsed().as_secs_f64());
    assert_eq!(d.root_dir(), d.root(), "{what}");
    assert_eq!(d.state(), before, "{what}: images, containers or volumes differ");
    assert_eq!(journal(&state)["outcome"], "rolled-back", "{what}");
    let o = dockroot(with(&d.args(s), &["rollback", "--yes"]));
    assert!(o.status.code() == Some(2) && text(&o).contains("nothing to roll back"), "{what}: rollback had work left: {}", text(&o));
}

const SIGNALS: [Signal; 3] = [Signal::SIGTERM, Signal::SIGINT, Signal::SIGHUP];

#[test]
fn signals_during_backup_stop_the_world() {
    let (s, d, _disk) = super::faults::fixture("sig-backup", false);
    let a = s.join("a.tar.zst").display().to_string();
    let root = d.root().display().to_string();
    for sig in SIGNALS {
        let args = ["backup", "--stop-the-world", "-o", &a, "--no-config", "--data-root", &root, "--threads", "2"];
        signal_while_stopped(&d, &s, &args, ("pread64", 50_000), sig);
        assert!(!Path::new(&a).exists() && !Path::new(&format!("{a}.partial")).exists(), "{sig}: an archive was left");
    }
    d.check_fixture();
}

#[test]
fn signals_during_move_copy() {
    let (s, d, disk) = super::faults::fixture("sig-move", false);
    for sig in SIGNALS {
        let t = disk.mnt.join(format!("docker-{sig}")).display().to_string();
        let args = ["move", "--no-precopy", "--to", &t, "--yes", "--threads", "2"];
        signal_while_stopped(&d, &s, &args, ("pread64", 60_000), sig);
        assert_eq!(std::fs::read_to_string(s.join("fstab")).unwrap(), "# scratch fstab\n", "{sig}");
    }
    d.check_fixture();
}

#[test]
fn signals_during_restore_swap() {
    let (s, d, _disk) = super::faults::fixture("sig-restore", false);
    let root = d.root().display().to_string();
    let a = s.join("a.tar.zst").display().to_string();
    let o = dockroot(with(&d.args(&s), &["-q", "backup", "-o", &a, "--no-config", "--data-root", &root]));
    assert!(o.status.success(), "{}", text(&o));
    // The old data differs from the archive's: a half-done swap shows.
    d.docker(&["volume", "create", "only-in-old-data"]);
    for sig in SIGNALS {
        let args = ["restore", &a, "--yes", "--force", "--data-root", &root];
        signal_while_stopped(&d, &s, &args, ("syncfs", 6_000_000), sig);
    }
    d.check_fixture();
}

/// A move whose stdout and stderr readers are gone (EPIPE on every line):
/// it runs to its end as if they were there, and is rolled back as usual.
#[test]
fn move_with_stdout_and_stderr_to_closed_pipes() {
    let (s, d, disk) = super::faults::fixture("sig-epipe", false);
    let before = d.state();
    let t = disk.mnt.join("docker").display().to_string();
    let o = Command::new(crate::util::bin())
        .args(with(&d.args(&s), &["-v", "move", "--to", &t, "--yes"]))
        .stdout(crate::output::closed_pipe())
        .stderr(crate::output::closed_pipe())
        .status()
        .unwrap();
    assert_eq!(o.code(), Some(0));
    assert_eq!(journal(&s.join("state"))["outcome"], "moved");
    assert_eq!(d.state(), before);
    let o = dockroot(with(&d.args(&s), &["rollback", "--yes"]));
    assert!(o.status.success(), "{}", text(&o));
    assert_eq!(d.state(), before);
}
