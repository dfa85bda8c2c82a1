//! The layouts people run (issue 19), each on real parts: status, backup,
//! wipe, restore and a bind move with identical state (images, containers,
//! volume contents, `docker diff`). A private dockerd (scripts/lib/dockerd.sh)
//! with the btrfs storage driver on a btrfs loop disk, and with userns-remap.

use std::path::Path;
use std::process::Command;

use crate::plan::{Daemon, with};
use crate::util::{Scratch, dockroot, json, ok, script, text};

mod btrfs;
mod docker_ce;
mod snap;
mod userns;

/// What must be identical after a restore or a move: the daemon's objects
/// (container states left out: a restore restarts them), every container's
/// `docker diff`, and the volume's files with their hashes.
#[derive(Debug, PartialEq, Eq)]
struct Snapshot {
    objects: String,
    diffs: Vec<(String, String)>,
    volume: String,
}

fn out(d: &Daemon, args: &[&str]) -> String {
    text(&d.docker(args))
}

fn snapshot(d: &Daemon) -> Snapshot {
    let mut s = d.state();
    for c in &mut s.containers {
        c.state.clear();
    }
    let names: Vec<String> = out(d, &["ps", "-a", "--format", "{{.Names}}"]).lines().map(String::from).collect();
    // `docker diff` lists in no fixed order.
    let sorted = |t: String| {
        let mut l: Vec<&str> = t.lines().collect();
        l.sort();
        l.join("\n")
    };
    let mut diffs: Vec<(String, String)> =
        names.into_iter().map(|n| (sorted(out(d, &["diff", &n])), n)).map(|(diff, n)| (n, diff)).collect();
    diffs.sort();
    let volume = out(
        d,
        &["run", "--rm", "--network", "none", "-v", "dockroot-vol:/v", "dockroot-test/app:1", "sh", "-c", "cd /v && ls -ln && sha256sum *"],
    );
    Snapshot { objects: format!("{s:?}"), diffs, volume }
}

/// A new container from an image runs, and the old exited one starts.
fn containers_work(d: &Daemon, at: &str) {
    let o = out(d, &["run", "--rm", "--network", "none", "dockroot-test/app:1", "cat", "/opt/data/c.txt"]);
    assert_eq!(o.trim(), "new c", "{at}: a new container from the app image");
    let o = Command::new("docker")
        .arg("-H")
        .arg(format!("unix://{}", d.sock().display()))
        .args(["start", "dockroot-stopped"])
        .output()
        .unwrap();
    assert!(o.status.success(), "{at}: the old container does not start: {}", text(&o));
    d.docker(&["wait", "dockroot-stopped"]);
    let running = out(d, &["inspect", "-f", "{{.State.Running}}", "dockroot-runner"]);
    assert_eq!(running.trim(), "true", "{at}: the runner (restart unless-stopped) is not running");
}

/// `dockerd.sh start` again on the daemon's directory, with the `env` it
/// was started with (after a wipe and a restore with `--service none`).
fn restart(d: &Daemon, env: &[(&str, &str)]) {
    ok(Command::new("bash").arg(script("dockerd.sh")).arg("start").arg(&d.dir).envs(env.iter().copied()));
}

fn stop(d: &Daemon) {
    ok(Command::new("bash").arg(script("dockerd.sh")).arg("stop").arg(&d.dir));
}

/// `dockroot --json status` against the daemon.
fn status(s: &Scratch, d: &Daemon) -> serde_json::Value {
    let o = dockroot(with(&d.args(s), &["--json", "status"]));
    assert!(o.status.success(), "{}", text(&o));
    json(&o)
}

fn must(o: std::process::Output) -> std::process::Output {
    assert!(o.status.success(), "dockroot failed: {}", text(&o));
    o
}

fn arg(p: &Path) -> String {
    p.display().to_string()
}
