//! Off the host and across a fleet (issue 21), with real parts: a private
//! dockerd, restic repositories (a local one, and a REST one served on
//! loopback by `rclone serve restic`), the hooks around the stop, and the
//! node-exporter metrics file.

use std::collections::BTreeMap;
use std::net::TcpListener;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::backup::{Daemon, have_docker, short_dir};
use crate::util::*;

const PASSWORD: &str = "dockroot-test";

/// `restic` with the test password and its cache in the scratch directory.
fn restic(s: &Scratch, repo: &str, args: &[&str]) -> String {
    let o = ok(Command::new("restic")
        .args(["--repo", repo])
        .args(args)
        .env("RESTIC_PASSWORD", PASSWORD)
        .env("RESTIC_CACHE_DIR", s.join("cache")));
    String::from_utf8_lossy(&o.stdout).into_owned()
}

/// dockroot with the restic environment.
fn dr(s: &Scratch, args: &[String]) -> std::process::Output {
    run(Command::new(bin()).args(args).env("RESTIC_PASSWORD", PASSWORD).env("RESTIC_CACHE_DIR", s.join("cache")))
}

fn must(o: std::process::Output) -> std::process::Output {
    assert!(o.status.success(), "dockroot failed:\n{}", text(&o));
    o
}

/// The snapshots of a repository: (id, tags).
fn snapshots(s: &Scratch, repo: &str) -> Vec<(String, Vec<String>)> {
    let v: serde_json::Value = serde_json::from_str(&restic(s, repo, &["snapshots", "--json"])).unwrap();
    v.as_array()
        .map(|a| {
            a.iter()
                .map(|x| {
                    let tags =
                        x["tags"].as_array().map(|t| t.iter().map(|t| t.as_str().unwrap().to_string()).collect()).unwrap_or_default();
                    (x["id"].as_str().unwrap().to_string(), tags)
                })
                .collect()
        })
        .unwrap_or_default()
}

/// `rclone serve restic` on a free loopback port; killed on drop.
struct RestServer {
    child: Child,
    url: String,
}

impl RestServer {
    fn start(dir: &Path) -> RestServer {
        std::fs::create_dir_all(dir).unwrap();
        let port = TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
        let child = Command::new("rclone")
            .args(["serve", "restic", "--addr", &format!("127.0.0.1:{port}")])
            .arg(dir)
            .env("RCLONE_CONFIG", "/nonexistent/rclone.conf")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("rclone is missing: run scripts/setup.sh");
        let t = Instant::now();
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(t.elapsed() < Duration::from_secs(20), "rclone serve restic did not listen on {port}");
            std::thread::sleep(Duration::from_millis(50));
        }
        RestServer { child, url: format!("rest:http://127.0.0.1:{port}/") }
    }
}

impl Drop for RestServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A private dockerd's daemon arguments for dockroot, as strings.
fn daemon_args(dm: &Daemon, state: &Path) -> Vec<String> {
    dm.args(state)
}

/// Backup to a REST repository, two changes, retention, a wipe, restore of
/// `latest` and of a named snapshot: identical Docker state each time.
#[test]
fn restic_repository_backup_wipe_restore_latest_and_named_and_retention() {
    require_root();
    assert!(have_docker(), "dockerd and docker are required");
    let s = Scratch::new("restic-docker");
    let server = RestServer::start(&s.join("rest"));
    let repo = server.url.clone();
    restic(&s, &repo, &["init"]);
    let dir = short_dir("rs");
    let dm = Daemon::start(dir.path());
    ok(Command::new("bash").arg(script("docker-fixture.sh")).arg("populate").arg(dm.sock()));
    let state = s.join("state");
    let backup = |keep: Option<&str>| {
        let mut a = daemon_args(&dm, &state);
        a.extend(["--json".into(), "backup".into(), "--restic".into(), repo.clone(), "--no-config".into()]);
        if let Some(k) = keep {
            a.extend(["--keep-last".into(), k.into()]);
        }
        json(&must(dr(&s, &a)))
    };
    // Night 1.
    let state_a = dm.lists();
    let j1 = backup(None);
    let r1 = &j1["summary"]["restic"];
    let id1 = r1["snapshot"].as_str().unwrap().to_string();
    let tags: Vec<String> = r1["tags"].as_array().unwrap().iter().map(|t| t.as_str().unwrap().to_string()).collect();
    assert!(tags.contains(&"dockroot".to_string()), "{tags:?}");
    assert!(tags.iter().any(|t| t.starts_with("host=")) && tags.iter().any(|t| t == "store=overlay2"), "{tags:?}");
    assert!(tags.iter().any(|t| t.starts_with("engine=20.10")), "{tags:?}");
    assert!(r1["file"].as_str().unwrap().starts_with("dockroot-") && r1["verified_entries"].as_u64().unwrap() > 100, "{r1}");
    assert_eq!(dm.lists(), state_a, "Docker must come back after the backup");
    // Night 2 and 3, each after a change, keeping the last two.
    dm.docker(&["volume", "create", "night2"]);
    let state_b = dm.lists();
    let id2 = backup(Some("2"))["summary"]["restic"]["snapshot"].as_str().unwrap().to_string();
    dm.docker(&["volume", "create", "night3"]);
    let state_c = dm.lists();
    let j3 = backup(Some("2"));
    let id3 = j3["summary"]["restic"]["snapshot"].as_str().unwrap().to_string();
    assert_eq!(j3["summary"]["restic"]["forgotten"], serde_json::json!([id1]), "{j3}");
    let left: Vec<String> = snapshots(&s, &repo).into_iter().map(|(id, _)| id).collect();
    assert_eq!(left.len(), 2, "{left:?}");
    assert!(left.contains(&id2) && left.contains(&id3), "{left:?} vs {id2} {id3}");

    // verify and inspect read from the repository.
    let v = must(dr(&s, &["verify".into(), format!("restic:{repo}:latest")]));
    assert!(text(&v).contains("OK:"), "{}", text(&v));
    let i = json(&must(dr(&s, &["--json".into(), "inspect".into(), format!("restic:{repo}:{}", &id2[..8])])));
    assert!(i["meta"]["docker"]["volumes"].as_array().unwrap().iter().any(|v| v == "night2"), "{i}");

    // The reinstall: the data-root is gone; restore `latest`.
    dm.stop();
    let root = dir.path().join("root");
    std::fs::remove_dir_all(&root).unwrap();
    let restore = |target: &Path, source: String| {
        must(dr(
            &s,
            &[
                "-q".into(),
                "--service".into(),
                "none".into(),
                "--data-root".into(),
                target.display().to_string(),
                "--state-dir".into(),
                state.display().to_string(),
                "restore".into(),
                source,
                "--yes".into(),
            ],
        ))
    };
    restore(&root, format!("restic:{repo}:latest"));
    let dm = Daemon::start(dir.path());
    assert_eq!(dm.lists(), state_c, "latest must bring back night 3");
    dm.stop();
    // A named snapshot onto another data-root.
    let dir2 = short_dir("rs2");
    restore(&dir2.path().join("root"), format!("restic:{repo}:{id2}"));
    let d2 = Daemon::start(dir2.path());
    assert_eq!(d2.lists(), state_b, "snapshot {id2} must bring back night 2");
    d2.stop();
}

/// A backup killed halfway leaves no snapshot; the next one is whole and
/// alone. A wrong password fails before anything is written.
#[test]
fn killed_restic_backup_leaves_no_snapshot() {
    require_root();
    let s = Scratch::new("restic-kill");
    let repo = s.join("repo").display().to_string();
    restic(&s, &repo, &["init"]);
    let src = s.join("src");
    fidelity_tree(&src);
    // Enough incompressible data that the kill lands mid-stream.
    let mut x: u64 = 7;
    for i in 0..48 {
        let mut v = vec![0u8; 4 << 20];
        for c in v.chunks_mut(8) {
            x = x.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
            c.copy_from_slice(&x.to_le_bytes()[..c.len()]);
        }
        std::fs::create_dir_all(src.join(format!("blobs/{}", i % 6))).unwrap();
        std::fs::write(src.join(format!("blobs/{}/b{i}", i % 6)), v).unwrap();
    }
    let args: Vec<String> = [
        "--service",
        "none",
        "--data-root",
        src.to_str().unwrap(),
        "--state-dir",
        s.join("st").to_str().unwrap(),
        "backup",
        "--restic",
        &repo,
        "--no-config",
    ]
    .iter()
    .map(|a| a.to_string())
    .collect();
    let mut child = Command::new(bin())
        .args(&args)
        .env("RESTIC_PASSWORD", PASSWORD)
        .env("RESTIC_CACHE_DIR", s.join("cache"))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    // Wait for restic to be receiving, then kill dockroot outright.
    let t = Instant::now();
    let restic_pid = loop {
        let o = run(Command::new("pgrep").args(["-P", &child.id().to_string(), "restic"]));
        if let Some(pid) = String::from_utf8_lossy(&o.stdout).lines().next().map(str::to_string) {
            break pid;
        }
        assert!(t.elapsed() < Duration::from_secs(60), "restic never started");
        std::thread::sleep(Duration::from_millis(20));
    };
    std::thread::sleep(Duration::from_millis(400));
    let _ = child.kill();
    let _ = child.wait();
    let t = Instant::now();
    while Path::new(&format!("/proc/{restic_pid}")).exists() {
        assert!(t.elapsed() < Duration::from_secs(30), "restic outlived the killed dockroot");
        std::thread::sleep(Duration::from_millis(50));
    }
    // restic may leave a stale lock behind; it must not leave a snapshot.
    let _ = restic(&s, &repo, &["unlock"]);
    assert_eq!(snapshots(&s, &repo), Vec::new(), "a killed backup left a snapshot");

    // A wrong password: a clear failure, nothing saved.
    let o = run(Command::new(bin()).args(&args).env("RESTIC_PASSWORD", "wrong").env("RESTIC_CACHE_DIR", s.join("cache")));
    assert!(!o.status.success() && text(&o).contains("restic"), "{}", text(&o));
    assert!(!text(&o).contains("panicked"), "{}", text(&o));

    // The next backup is whole, verified and the only snapshot.
    let o = must(dr(&s, &args));
    assert!(text(&o).contains("read back from the repository"), "{}", text(&o));
    let snaps = snapshots(&s, &repo);
    assert_eq!(snaps.len(), 1, "{snaps:?}");
    assert!(snaps[0].1.contains(&"dockroot".to_string()) && !snaps[0].1.iter().any(|t| t.contains("partial")), "{snaps:?}");
    let dst = s.join("restored");
    must(dr(
        &s,
        &[
            "-q",
            "--service",
            "none",
            "--data-root",
            dst.to_str().unwrap(),
            "--state-dir",
            s.join("st").to_str().unwrap(),
            "restore",
            &format!("restic:{repo}"),
            "--yes",
        ]
        .iter()
        .map(|a| a.to_string())
        .collect::<Vec<_>>(),
    ));
    assert_same_tree(&src, &dst);
}

/// Parses Prometheus' text exposition format, strictly enough to catch a
/// torn or malformed file: HELP/TYPE comments, then `name{labels} value`
/// samples whose family was declared. Returns (name, labels, value).
fn parse_prometheus(text: &str) -> Vec<(String, BTreeMap<String, String>, f64)> {
    let mut declared = std::collections::HashSet::new();
    let mut out = Vec::new();
    assert!(text.ends_with('\n'), "the file must end with a newline");
    for line in text.lines() {
        if let Some(rest) = line.strip_prefix("# ") {
            let mut it = rest.splitn(3, ' ');
            let (kind, name) = (it.next().unwrap(), it.next().unwrap());
            assert!(kind == "HELP" || kind == "TYPE", "bad comment {line:?}");
            if kind == "TYPE" {
                assert!(matches!(it.next(), Some("gauge" | "counter")), "bad type {line:?}");
                declared.insert(name.to_string());
            }
            continue;
        }
        let (series, value) = line.rsplit_once(' ').unwrap_or_else(|| panic!("no value in {line:?}"));
        let (name, labels) = match series.split_once('{') {
            Some((n, l)) => (n, l.strip_suffix('}').unwrap_or_else(|| panic!("unclosed labels in {line:?}"))),
            None => (series, ""),
        };
        assert!(name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') && !name.is_empty(), "bad name {line:?}");
        assert!(declared.contains(name), "sample before its TYPE: {line:?}");
        let mut map = BTreeMap::new();
        for kv in labels.split(',').filter(|s| !s.is_empty()) {
            let (k, v) = kv.split_once('=').unwrap_or_else(|| panic!("bad label in {line:?}"));
            map.insert(k.to_string(), v.strip_prefix('"').and_then(|v| v.strip_suffix('"')).unwrap().to_string());
        }
        out.push((name.to_string(), map, value.parse::<f64>().unwrap_or_else(|_| panic!("bad value in {line:?}"))));
    }
    out
}

fn sample(m: &[(String, BTreeMap<String, String>, f64)], name: &str, op: &str) -> Option<f64> {
    m.iter().find(|(n, l, _)| n == name && l.get("operation").map(String::as_str) == Some(op)).map(|x| x.2)
}

/// Hooks and metrics on a real dockerd: a failing --pre-stop aborts with
/// Docker never stopped; --post-start runs with Docker answering;
/// --on-failure runs on a failed move; the metrics file parses and is
/// replaced atomically, keeping the last success across a failure.
#[test]
fn hooks_around_the_stop_and_metrics() {
    require_root();
    assert!(have_docker(), "dockerd and docker are required");
    let s = Scratch::new("hooks");
    let dir = short_dir("hk");
    let dm = Daemon::start(dir.path());
    dm.docker(&["volume", "create", "v1"]);
    let pid = std::fs::read_to_string(dir.path().join("pid")).unwrap();
    let state = s.join("state");
    let metrics = s.join("metrics/dockroot.prom");
    std::fs::create_dir_all(metrics.parent().unwrap()).unwrap();
    let base = |extra: &[String]| {
        let mut a = dm.args(&state);
        a.extend(["--metrics-file".into(), metrics.display().to_string()]);
        a.extend(extra.iter().cloned());
        a
    };
    let archive = s.join("a.tar.zst");
    let backup = |hooks: &[String]| {
        let mut a = base(hooks);
        a.extend([
            "--json".into(),
            "backup".into(),
            "--stop-the-world".into(),
            "-o".into(),
            archive.display().to_string(),
            "--no-config".into(),
        ]);
        dr(&s, &a)
    };

    // A failing pre-stop: refused, Docker never stopped (same daemon pid), no archive.
    let o = backup(&["--pre-stop".into(), "echo dump failed >&2; exit 7".into()]);
    assert_eq!(o.status.code(), Some(2), "{}", text(&o));
    assert!(text(&o).contains("--pre-stop") && text(&o).contains("dump failed") && text(&o).contains("exit code 7"), "{}", text(&o));
    assert_eq!(std::fs::read_to_string(dir.path().join("pid")).unwrap(), pid, "the daemon was stopped");
    assert!(!archive.exists());
    let m = parse_prometheus(&std::fs::read_to_string(&metrics).unwrap());
    assert_eq!(sample(&m, "dockroot_last_exit_code", "backup"), Some(2.0));
    assert_eq!(sample(&m, "dockroot_last_success_timestamp_seconds", "backup"), None);

    // pre-stop and post-start around a good backup; post-start sees Docker answering.
    let seen = s.join("post-start.txt");
    let post = format!("docker -H unix://{} volume ls -q > {}", dm.sock().display(), seen.display());
    let o = backup(&["--pre-stop".into(), "echo dumping".into(), "--post-start".into(), post]);
    assert!(o.status.success(), "{}", text(&o));
    assert_eq!(std::fs::read_to_string(&seen).unwrap().trim(), "v1");
    let j = json(&o);
    let hooks = j["hooks"].as_array().unwrap();
    assert_eq!(hooks.len(), 2, "{j}");
    assert_eq!((hooks[0]["point"].as_str(), hooks[0]["exit_code"].as_i64()), (Some("pre-stop"), Some(0)));
    assert_eq!(hooks[0]["output"], "dumping\n");
    assert_eq!(hooks[1]["point"], "post-start");
    let ino1 = std::fs::metadata(&metrics).unwrap().ino();
    let m = parse_prometheus(&std::fs::read_to_string(&metrics).unwrap());
    let success = sample(&m, "dockroot_last_success_timestamp_seconds", "backup").expect("a success time");
    assert_eq!(sample(&m, "dockroot_last_exit_code", "backup"), Some(0.0));
    assert!(sample(&m, "dockroot_bytes", "backup").unwrap() > 0.0 && sample(&m, "dockroot_downtime_seconds", "backup").is_some());

    // A failed move runs --on-failure with the exit code; the backup's samples stay.
    let pid = std::fs::read_to_string(dir.path().join("pid")).unwrap();
    let flag = s.join("failed.txt");
    let busy = s.join("busy");
    std::fs::create_dir_all(busy.join("x")).unwrap();
    let mut a = base(&["--on-failure".into(), format!("echo $DOCKROOT_COMMAND $DOCKROOT_EXIT_CODE > {}", flag.display())]);
    a.extend(["move".into(), "--to".into(), busy.display().to_string(), "--yes".into()]);
    let o = dr(&s, &a);
    assert!(!o.status.success(), "{}", text(&o));
    let code = o.status.code().unwrap();
    assert_eq!(std::fs::read_to_string(&flag).unwrap().trim(), format!("move {code}"));
    let text2 = std::fs::read_to_string(&metrics).unwrap();
    let m = parse_prometheus(&text2);
    assert_eq!(sample(&m, "dockroot_last_exit_code", "move"), Some(code as f64));
    assert_eq!(sample(&m, "dockroot_last_success_timestamp_seconds", "backup"), Some(success));
    // Replaced by rename, never rewritten in place, and no temporary left.
    assert_ne!(std::fs::metadata(&metrics).unwrap().ino(), ino1, "the metrics file was rewritten in place");
    let names: Vec<PathBuf> = std::fs::read_dir(metrics.parent().unwrap()).unwrap().map(|e| e.unwrap().path()).collect();
    assert_eq!(names, std::slice::from_ref(&metrics), "temporary files left beside the metrics file");
    assert_eq!(std::fs::read_to_string(dir.path().join("pid")).unwrap(), pid, "a refused move stopped Docker");
    dm.stop();
}
