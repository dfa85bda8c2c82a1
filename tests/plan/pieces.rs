//! Pieces back from a whole backup (issue 18 item 4), on a real private
//! dockerd: `extract --volume|--path` compared with the original by
//! treecmp.py; `restore --volume` while other containers keep running
//! (refused while the volume's users run, then with `--stop-containers`),
//! `--as NEWNAME`, `rollback` of each; a kill at every rename, mkdir,
//! mount and umount2 of `restore --volume`, each rolled back; an archive
//! written by dockroot before this change (tests/data); and Docker 28.5 in
//! the sid guest.

use std::path::{Path, PathBuf};
use std::process::Command;

use super::crash::Harness;
use super::{Daemon, with};
use crate::util::{Scratch, assert_same_tree, dockroot, fidelity_tree, json, text};

fn must(o: std::process::Output) -> std::process::Output {
    assert!(o.status.success(), "dockroot failed: {}", text(&o));
    o
}

fn data(d: &Daemon, volume: &str) -> PathBuf {
    d.root().join("volumes").join(volume).join("_data")
}

/// `docker inspect -f FORMAT NAME`, trimmed.
fn inspect(d: &Daemon, format: &str, name: &str) -> String {
    String::from_utf8_lossy(&d.docker(&["inspect", "-f", format, name]).stdout).trim().to_string()
}

/// Names in `dir` that contain `infix`.
fn kept(dir: &Path, infix: &str) -> Vec<PathBuf> {
    std::fs::read_dir(dir).unwrap().map(|e| e.unwrap().path()).filter(|p| p.to_string_lossy().contains(infix)).collect()
}

/// A running container `name` that mounts `volume` and restarts with Docker.
fn user(d: &Daemon, name: &str, volume: &str, cmd: &[&str]) {
    let run = ["run", "-d", "--name", name, "--network", "none", "--restart", "unless-stopped", "--stop-timeout", "2", "-v", volume];
    d.docker(&[&run[..], &["dockroot-test/app:1"], cmd].concat());
}

fn wait_running(d: &Daemon, name: &str) {
    for _ in 0..100 {
        if inspect(d, "{{.State.Status}}", name) == "running" {
            return;
        }
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    panic!("{name} is not running: {}", inspect(d, "{{.State.Status}}", name));
}

#[test]
fn extract_a_volume_and_a_path_match_the_original() {
    let s = Scratch::new("pieces-extract");
    let d = Daemon::start(false);
    d.docker(&["volume", "create", "fid"]);
    fidelity_tree(&data(&d, "fid"));
    let g = d.args(&s);
    let a = s.join("a.tar.zst").display().to_string();
    must(dockroot(with(&g, &["-q", "backup", "-o", &a, "--no-config"])));

    let out = s.join("fid");
    let o = must(dockroot(with(&g, &["--json", "extract", &a, "--volume", "fid", "-o", &out.display().to_string()])));
    let j = json(&o);
    assert_eq!(j["ok"], true, "{j}");
    assert!(j["summary"]["entries"].as_u64().unwrap() > 20, "{j}");
    assert_same_tree(&data(&d, "fid"), &out);

    // --path, absolute below the archived data-root, of a subtree with a hardlink group.
    let sub = data(&d, "fid").join("hardlinks");
    let out2 = s.join("hl");
    must(dockroot(["extract", &a, "--path", &sub.display().to_string(), "-o", &out2.display().to_string()]));
    assert_same_tree(&sub, &out2);

    // Refused: a non-empty directory, a volume the archive lacks, a hardlink group cut in two.
    let o = dockroot(["extract", &a, "--volume", "fid", "-o", &out.display().to_string()]);
    assert_eq!(o.status.code(), Some(2), "{}", text(&o));
    assert!(text(&o).contains("not empty"), "{}", text(&o));
    let o = dockroot(["extract", &a, "--volume", "nope", "-o", &s.join("nope").display().to_string()]);
    assert_eq!(o.status.code(), Some(2), "{}", text(&o));
    assert!(text(&o).contains("has no data/volumes/nope/_data"), "{}", text(&o));
    let o = dockroot(["extract", &a, "--path", "volumes/fid/_data/hardlinks/b", "-o", &s.join("cut").display().to_string()]);
    assert_ne!(o.status.code(), Some(0), "{}", text(&o));
    assert!(text(&o).contains("hardlink"), "{}", text(&o));
    // No engine was touched: the fixture still runs.
    d.check_fixture();
}

#[test]
fn restore_a_volume_while_other_containers_keep_running() {
    let s = Scratch::new("pieces-restore");
    let d = Daemon::start(false);
    let g = d.args(&s);
    d.docker(&["volume", "create", "--label", "app=db", "appdata"]);
    d.docker(&["volume", "create", "--opt", "type=tmpfs", "--opt", "device=tmpfs", "tmpvol"]);
    user(
        &d,
        "app",
        "appdata:/data",
        &[
            "sh",
            "-c",
            "test -e /data/ready || { echo one >/data/a && mkdir /data/d && seq 1 5000 >/data/d/n && touch /data/ready; }; exec sleep 1d",
        ],
    );
    let vol = data(&d, "appdata");
    for _ in 0..100 {
        if vol.join("ready").exists() {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    d.docker(&["exec", "dockroot-runner", "sh", "-c", "echo kept >/root/r.txt"]);
    let m0 = s.join("m0").display().to_string();
    must(dockroot(["-q", "manifest", &vol.display().to_string(), "-o", &m0]));
    let a = s.join("a.tar.zst").display().to_string();
    must(dockroot(with(&g, &["-q", "backup", "-o", &a, "--no-config"])));
    let runner = inspect(&d, "{{.Id}} {{.State.StartedAt}}", "dockroot-runner");
    let app_started = inspect(&d, "{{.State.StartedAt}}", "app");
    // The data changes after the backup (app is started again by its restart policy).
    wait_running(&d, "app");
    d.docker(&["exec", "app", "sh", "-c", "echo two >/data/a && rm -r /data/d && echo new >/data/b"]);

    let j = json(&must(dockroot(["--json", "inspect", &a])));
    let vols = j["meta"]["volumes"].as_array().unwrap();
    let app = vols.iter().find(|v| v["name"] == "appdata").unwrap();
    assert_eq!(app["labels"]["app"], "db", "{j}");
    assert_eq!(app["users"][0], "app", "{j}");
    assert_eq!(j["volume_sizes"]["appdata"]["entries"], 5, "{j}");
    let t = text(&must(dockroot(["inspect", &a])));
    assert!(t.contains("appdata (5 entries") && t.contains("used by app"), "{t}");

    // Its user runs: refused, with its name; nothing changes.
    let o = dockroot(with(&g, &["restore", &a, "--volume", "appdata", "--yes"]));
    assert_eq!(o.status.code(), Some(2), "{}", text(&o));
    assert!(text(&o).contains("app") && text(&o).contains("--stop-containers"), "{}", text(&o));
    assert_eq!(std::fs::read_to_string(vol.join("a")).unwrap(), "two\n");
    // A volume whose data is not in the data-root: refused.
    let o = dockroot(with(&g, &["restore", &a, "--volume", "tmpvol", "--yes"]));
    assert_eq!(o.status.code(), Some(2), "{}", text(&o));
    assert!(text(&o).contains("mounts `tmpfs`"), "{}", text(&o));

    let o = must(dockroot(with(&g, &["--json", "restore", &a, "--volume", "appdata", "--stop-containers", "--yes"])));
    let j = json(&o);
    assert_eq!(j["summary"]["restarted"][0], "app", "{j}");
    must(dockroot(["verify", &vol.display().to_string(), "--manifest", &m0]));
    assert_eq!(inspect(&d, "{{.State.Running}}", "app"), "true");
    assert_ne!(inspect(&d, "{{.State.StartedAt}}", "app"), app_started);
    assert_eq!(String::from_utf8_lossy(&d.docker(&["exec", "app", "cat", "/data/a"]).stdout), "one\n");
    // Every other container kept running: same id, same start, same data.
    assert_eq!(inspect(&d, "{{.Id}} {{.State.StartedAt}}", "dockroot-runner"), runner);
    assert_eq!(String::from_utf8_lossy(&d.docker(&["exec", "dockroot-runner", "cat", "/root/r.txt"]).stdout), "kept\n");
    let old = kept(vol.parent().unwrap(), "_data.dockroot-old-");
    assert_eq!(old.len(), 1, "{old:?}");
    assert_eq!(std::fs::read_to_string(old[0].join("b")).unwrap(), "new\n");

    // rollback of the finished restore: the previous files are back, under the running user.
    must(dockroot(with(&g, &["rollback", "--yes"])));
    assert_eq!(std::fs::read_to_string(vol.join("a")).unwrap(), "two\n");
    assert!(kept(vol.parent().unwrap(), "dockroot-").is_empty());
    assert_eq!(inspect(&d, "{{.State.Running}}", "app"), "true");
    assert_eq!(inspect(&d, "{{.Id}} {{.State.StartedAt}}", "dockroot-runner"), runner);

    // --as: a new volume with the archived labels; rollback removes it.
    must(dockroot(with(&g, &["restore", &a, "--volume", "appdata", "--as", "appcopy", "--yes"])));
    assert_eq!(inspect(&d, "{{.Labels.app}}", "appcopy"), "db");
    must(dockroot(["verify", &data(&d, "appcopy").display().to_string(), "--manifest", &m0]));
    let rb = must(dockroot(with(&g, &["rollback", "--yes"])));
    let o = Command::new("docker")
        .arg("-H")
        .arg(format!("unix://{}", d.sock().display()))
        .args(["volume", "inspect", "appcopy"])
        .output()
        .unwrap();
    assert!(!o.status.success(), "appcopy outlived the rollback: {}\n{}", text(&rb), text(&o));
    assert_eq!(inspect(&d, "{{.Id}} {{.State.StartedAt}}", "dockroot-runner"), runner);
}

/// Killed before each rename, mkdir, mount and umount2 of a
/// `restore --volume --stop-containers`, then `rollback`: the volume's
/// previous files, the same containers running, nothing left behind; and
/// of a `restore --volume --as NEWNAME`: no new volume left.
#[test]
fn crash_points_restore_volume() {
    let (s, d, _disk) = super::faults::fixture("crash-vol", false);
    let g = d.args(&s);
    user(&d, "vol-user", "dockroot-vol:/v", &["sleep", "1d"]);
    let a = s.join("a.tar.zst").display().to_string();
    must(dockroot(with(&g, &["-q", "backup", "-o", &a, "--no-config"])));
    // The previous files differ from the archive's, so a half-done swap cannot pass.
    std::fs::write(data(&d, "dockroot-vol").join("after-backup"), "x").unwrap();
    let h = Harness { d: &d, s: &s, g, bound: None, supervised: false };
    let n = h.every_point("restore --volume", &["-q", "restore", &a, "--volume", "dockroot-vol", "--stop-containers", "--yes"], &|| {});
    assert!(n > 10, "{n}");
    // Into a new volume: each rollback removes the volume it created.
    let n = h.every_point("restore --volume --as", &["-q", "restore", &a, "--volume", "dockroot-vol", "--as", "restored", "--yes"], &|| {});
    assert!(n > 10, "{n}");
}

/// An archive written by dockroot before `restore --volume` existed (main
/// at f6dbcf9: meta.json names the volumes but records no options, labels
/// or users) still gives its volumes back.
#[test]
fn an_archive_of_an_older_dockroot_gives_its_volumes_back() {
    let s = Scratch::new("pieces-old");
    let a = crate::util::repo().join("tests/data/old-main.tar.zst").display().to_string();
    let want = s.join("want");
    std::fs::create_dir(&want).unwrap();
    std::fs::write(want.join("hello.txt"), "from an old archive\n").unwrap();
    let out = s.join("out");
    must(dockroot(["extract", &a, "--volume", "oldvol", "-o", &out.display().to_string()]));
    assert_eq!(std::fs::read_to_string(out.join("hello.txt")).unwrap(), "from an old archive\n");
    let t = text(&must(dockroot(["inspect", &a])));
    assert!(t.contains("oldvol (3 entries"), "{t}");

    let d = Daemon::start_in(false, None, None, &[]);
    let g = d.args(&s);
    let o = must(dockroot(with(&g, &["restore", &a, "--volume", "oldvol", "--as", "back", "--yes"])));
    assert!(text(&o).contains("plain local volume"), "{}", text(&o));
    assert_eq!(std::fs::read_to_string(data(&d, "back").join("hello.txt")).unwrap(), "from an old archive\n");
}

/// The same on Debian sid's Docker 28.5 under systemd (scripts/lib/sid-host.sh):
/// one volume back while the other containers keep running, its users
/// refused then stopped and started again, `--as` with the archived
/// labels, and `extract --volume`.
#[test]
fn restore_a_volume_on_docker_28() {
    crate::util::require_root();
    let s = Scratch::new("sid-vol");
    let out = s.join("out");
    std::fs::create_dir(&out).unwrap();
    let h = crate::modern_engine::sid(&s, "sidvol", "overlay2", &out);
    crate::modern_engine::populate(&h);
    h.ok("docker volume create --label app=db appdata >/dev/null && docker run -d --name app --network none --restart unless-stopped \
          --stop-timeout 2 -v appdata:/data dockroot-test/app:1 sh -c 'test -e /data/a || echo one >/data/a; exec sleep 1d' >/dev/null");
    let running = |name: &str| format!("until [ \"$(docker inspect -f '{{{{.State.Status}}}}' {name})\" = running ]; do sleep 0.1; done");
    h.ok(&format!("{} && until [ -e /var/lib/docker/volumes/appdata/_data/a ]; do sleep 0.1; done", running("app")));
    h.ok("dockroot -q backup -o /mnt/out/a.tar.zst --no-config");
    h.ok(&format!("{} && docker exec app sh -c 'echo two >/data/a'", running("app")));
    let runner = h.ok("docker inspect -f '{{.Id}} {{.State.StartedAt}}' dockroot-runner");

    let o = h.sh("dockroot restore /mnt/out/a.tar.zst --volume appdata --yes");
    assert_eq!(o.status.code(), Some(2), "{}", text(&o));
    assert!(text(&o).contains("used by running containers: app"), "{}", text(&o));
    h.ok("dockroot -q restore /mnt/out/a.tar.zst --volume appdata --stop-containers --yes");
    assert_eq!(h.ok("docker exec app cat /data/a"), "one\n");
    assert_eq!(h.ok("docker inspect -f '{{.Id}} {{.State.StartedAt}}' dockroot-runner"), runner);

    h.ok("dockroot -q restore /mnt/out/a.tar.zst --volume appdata --as copy --yes");
    assert_eq!(h.ok("docker volume inspect -f '{{.Labels.app}}' copy").trim(), "db");
    h.ok("dockroot -q extract /mnt/out/a.tar.zst --volume appdata -o /root/x");
    assert_eq!(h.ok("cat /root/x/a /var/lib/docker/volumes/copy/_data/a"), "one\none\n");
}
