//! Live backups of a real private dockerd (the offline fixture) while a
//! container keeps creating, renaming and deleting files in a volume; kills
//! in phase 1 and in phase 2.

use std::path::Path;
use std::process::Command;

use super::{dockroot_restore, gnu_restore};
use crate::plan::{Daemon, with};
use crate::util::*;

/// Creates, rewrites, renames and deletes files and directories in the volume, forever.
const WRITER: &str = "i=0; while :; do i=$((i+1)); echo $i > /v/w.$((i%50)); mkdir -p /v/d.$((i%7)); \
                      echo $i > /v/d.$((i%7))/f.$((i%5)); mv /v/w.$((i%50)) /v/r.$((i%13)); rm -rf /v/d.$(((i+3)%7)); \
                      [ $((i%20)) = 0 ] && sleep 0.01; done";

/// A scratch dir, a populated private daemon and dockroot's options for it.
fn daemon(tag: &str) -> (Scratch, Daemon, Vec<String>) {
    let s = Scratch::new(tag);
    let d = Daemon::start(false);
    let mut g = d.args(&s);
    g.extend(["--data-root".into(), d.root().display().to_string()]);
    (s, d, g)
}

fn journal(state: &Path) -> serde_json::Value {
    serde_json::from_slice(&std::fs::read(state.join("journal.json")).unwrap()).unwrap()
}

#[test]
fn live_backup_of_a_writing_container_restores_the_stopped_state() {
    let (s, d, g) = daemon("live-docker");
    let before = d.state();
    d.docker(&["run", "-d", "--name", "writer", "--network", "none", "-v", "dockroot-vol:/v", "dockroot-test/app:1", "sh", "-c", WRITER]);
    let a = s.join("live.tar.zst");
    let o = dockroot(with(&g, &["--json", "backup", "-o", &a.display().to_string(), "--no-config"]));
    assert!(o.status.success(), "{}", text(&o));
    let j = json(&o);
    let p = &j["summary"]["phases"];
    eprintln!("live backup: {p}, downtime {}", j["summary"]["downtime_seconds"]);
    assert!(p["phase1"]["entries"].as_u64().unwrap() > 100 && p["phase2"]["entries"].as_u64().unwrap() > 0, "{j}");
    assert!(j["summary"]["downtime_seconds"].as_f64().unwrap() > 0.0);
    let jr = journal(&s.join("state"));
    assert_eq!((jr["outcome"].as_str(), &jr["phases"]), (Some("done"), p), "{jr}");
    // Docker is back with what it had (the writer, without a restart policy, is stopped).
    let mut now = d.state();
    now.containers.retain(|c| !c.names.iter().any(|n| n.contains("writer")));
    assert_eq!(now.images, before.images);
    assert_eq!(now.volumes, before.volumes);

    // verify FILE, inspect (human and JSON) on the two-phase archive.
    let o = dockroot(["verify", &a.display().to_string()]);
    assert!(o.status.success(), "{}", text(&o));
    let o = dockroot(["inspect", &a.display().to_string()]);
    assert!(text(&o).contains("phases:") && text(&o).contains("deleted"), "{}", text(&o));
    let ij = json(&dockroot(["--json", "inspect", &a.display().to_string()]));
    assert_eq!(ij["phases"]["deleted"], p["phase2"]["deleted"], "{ij}");

    // dockroot's extractor gives the final manifest (the stopped state, checked
    // by `verify --manifest`), and GNU tar plus the deletion command the same tree.
    dockroot_restore(&a, &s.join("x"));
    gnu_restore(&a, &s.join("gnu"));
    assert_same_tree(&s.join("x"), &s.join("gnu/data"));

    // --stop-the-world: one pass, no phases.
    let b = s.join("stw.tar.zst");
    let o = dockroot(with(&g, &["--json", "backup", "-o", &b.display().to_string(), "--no-config", "--stop-the-world"]));
    assert!(o.status.success(), "{}", text(&o));
    assert!(json(&o)["summary"]["phases"].is_null());
    let ij = json(&dockroot(["--json", "inspect", &b.display().to_string()]));
    assert!(ij["phases"].is_null() && ij["meta"]["two_phase"].is_null(), "{ij}");
    assert!(dockroot(["verify", &b.display().to_string()]).status.success());
    d.docker(&["rm", "-f", "writer"]);
    d.check_fixture();
}

/// A backup killed (SIGABRT, through the test-only crash hook) in phase 1,
/// with part of the archive written, and at the start of phase 2, with
/// Docker stopped: no archive under the final name, only `FILE.partial`;
/// `rollback` leaves Docker running on the same data and removes it.
#[test]
fn killed_live_backup_leaves_only_a_partial_and_docker_running() {
    let (s, d, g) = daemon("live-kill");
    let before = d.state();
    let a = s.join("a.tar.zst");
    let partial = s.join("a.tar.zst.partial");
    for (at, docker_up) in [("phase 1 data", true), ("archive", false)] {
        let o = Command::new(bin())
            .args(with(&g, &["-q", "backup", "-o", &a.display().to_string(), "--no-config"]))
            .env("DOCKROOT_TEST_CRASH_AT", at)
            .output()
            .unwrap();
        use std::os::unix::process::ExitStatusExt;
        assert_eq!(o.status.signal(), Some(libc::SIGABRT), "not killed at {at}: {}", text(&o));
        assert!(!a.exists(), "killed at {at}: an archive under the final name");
        assert!(partial.exists(), "killed at {at}: no partial archive");
        assert_eq!(d.api().ping(), docker_up, "killed at {at}");
        let jr = journal(&s.join("state"));
        assert_eq!(jr["outcome"], "in-progress", "{jr}");
        let o = dockroot(with(&g, &["rollback", "--yes"]));
        assert!(o.status.success(), "rollback after the kill at {at}: {}", text(&o));
        assert!(d.api().ping() && !partial.exists() && !a.exists(), "after the kill at {at} and rollback");
        assert_eq!(d.state(), before, "after the kill at {at} and rollback");
    }
    // And then a backup completes.
    let o = dockroot(with(&g, &["-q", "backup", "-o", &a.display().to_string(), "--no-config"]));
    assert!(o.status.success() && a.exists(), "{}", text(&o));
    d.check_fixture();
}
