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
    std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.file_name().unwrap().to_string_lossy().contains(infix))
        .collect()
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

/// Creates app data at `dir` (hardlinks, an xattr, non-root owners) and a
/// config file `conf` next to it.
fn app_data(dir: &Path, conf: &Path) {
    std::fs::create_dir_all(dir).unwrap();
    crate::util::sh(&format!(
        "cd '{}' && mkdir -p db && seq 1 300 >db/rows && echo main >db/main && ln db/main db/main.hard && setfattr -n user.app -v x db/main \
         && chown -R 999:998 db && printf 'key=1\\n' >'{}' && chown 1000:1000 '{1}' && chmod 0640 '{1}'",
        dir.display(),
        conf.display()
    ));
}

fn file_facts(p: &Path) -> (u32, u32, u32, Vec<u8>) {
    use std::os::unix::fs::MetadataExt;
    let m = std::fs::symlink_metadata(p).unwrap();
    (m.mode(), m.uid(), m.gid(), std::fs::read(p).unwrap())
}

/// `restore --bind` and `extract --bind` (issue 18 item 4): one bind source
/// back from a whole backup while every container that does not mount it
/// keeps running; a directory and a file; refused while its users run and
/// for a path the archive did not carry; `rollback` of each; and onto a
/// host where the source and its parents are gone.
#[test]
fn restore_and_extract_one_bind_source_while_docker_runs() {
    let s = Scratch::new("pieces-bind");
    let d = Daemon::start(false);
    let g = d.args(&s);
    let (app, conf) = (s.join("srv/app/data"), s.join("srv/app/app.conf"));
    app_data(&app, &conf);
    let (expect, conf0) = (s.join("expect"), file_facts(&conf));
    crate::util::ok(Command::new("cp").arg("-a").arg(&app).arg(&expect));
    let (app_s, conf_s) = (app.display().to_string(), conf.display().to_string());
    let run = ["run", "-d", "--name", "app", "--network", "none", "--restart", "unless-stopped", "--stop-timeout", "2"];
    let vols = ["-v", &format!("{app_s}:/data"), "-v", &format!("{conf_s}:/etc/app.conf:ro")];
    d.docker(&[&run[..], &vols[..], &["dockroot-test/app:1", "sleep", "1d"]].concat());
    let a = s.join("a.tar.zst").display().to_string();
    must(dockroot(with(&g, &["-q", "backup", "-o", &a, "--no-config"])));
    let runner = inspect(&d, "{{.Id}} {{.State.StartedAt}}", "dockroot-runner");
    // The app's data changes after the backup.
    crate::util::sh(&format!("cd '{app_s}' && echo new >db/new && seq 5 9 >db/rows && printf 'key=2\\n' >'{conf_s}'"));

    // extract: the files, compared with the original by treecmp.py; a file bind is a directory holding it.
    let out = s.join("out");
    must(dockroot(["-q", "extract", &a, "--bind", &app_s, "-o", &out.display().to_string()]));
    assert_same_tree(&expect, &out);
    let out2 = s.join("out2");
    must(dockroot(["-q", "extract", &a, "--bind", &conf_s, "-o", &out2.display().to_string()]));
    assert_eq!(file_facts(&out2.join("app.conf")), conf0);

    // A path the archive did not carry: refused, naming what it carries.
    let o = dockroot(with(&g, &["restore", &a, "--bind", "/srv/nothing", "--yes"]));
    assert_eq!(o.status.code(), Some(2), "{}", text(&o));
    assert!(text(&o).contains(&app_s) && text(&o).contains("carries no bind source"), "{}", text(&o));
    // Its user runs: refused with its name; nothing changes.
    let o = dockroot(with(&g, &["restore", &a, "--bind", &app_s, "--yes"]));
    assert_eq!(o.status.code(), Some(2), "{}", text(&o));
    assert!(text(&o).contains("app") && text(&o).contains("--stop-containers"), "{}", text(&o));
    assert!(app.join("db/new").exists());

    let j = json(&must(dockroot(with(&g, &["--json", "restore", &a, "--bind", &app_s, "--stop-containers", "--yes"]))));
    assert_eq!(j["summary"]["restarted"][0], "app", "{j}");
    assert_eq!(j["summary"]["existing"], "non_empty", "{j}");
    assert_same_tree(&expect, &app);
    assert_eq!(inspect(&d, "{{.State.Running}}", "app"), "true");
    assert_eq!(String::from_utf8_lossy(&d.docker(&["exec", "app", "cat", "/data/db/main"]).stdout), "main\n");
    assert_eq!(inspect(&d, "{{.Id}} {{.State.StartedAt}}", "dockroot-runner"), runner, "another container was touched");
    let old = kept(app.parent().unwrap(), "data.dockroot-old-");
    assert_eq!(old.len(), 1, "{old:?}");
    assert!(old[0].join("db/new").exists());
    must(dockroot(with(&g, &["rollback", "--yes"])));
    assert_eq!(std::fs::read_to_string(app.join("db/new")).unwrap(), "new\n");
    assert!(kept(app.parent().unwrap(), "dockroot-").is_empty());
    assert_eq!(inspect(&d, "{{.State.Running}}", "app"), "true");

    // A file bind: the file comes back (its empty staging directory stays for a rollback).
    must(dockroot(with(&g, &["-q", "restore", &a, "--bind", &conf_s, "--stop-containers", "--yes"])));
    assert_eq!(file_facts(&conf), conf0);
    assert_eq!(String::from_utf8_lossy(&d.docker(&["exec", "app", "cat", "/etc/app.conf"]).stdout), "key=1\n");
    let old = kept(app.parent().unwrap(), "app.conf.dockroot-old-");
    assert_eq!(std::fs::read_to_string(&old[0]).unwrap(), "key=2\n");
    must(dockroot(with(&g, &["rollback", "--yes"])));
    assert_eq!(std::fs::read_to_string(&conf).unwrap(), "key=2\n");
    assert!(kept(app.parent().unwrap(), "dockroot-").is_empty());

    // The source and its parents gone (the app stopped): they are made, and a rollback removes them again.
    d.docker(&["stop", "-t", "1", "app"]);
    std::fs::remove_dir_all(s.join("srv")).unwrap();
    let j = json(&must(dockroot(with(&g, &["--json", "restore", &a, "--bind", &app_s, "--yes"]))));
    assert_eq!(j["summary"]["existing"], "absent", "{j}");
    assert_same_tree(&expect, &app);
    must(dockroot(with(&g, &["rollback", "--yes"])));
    assert!(!s.join("srv").exists(), "the parents the restore made outlived its rollback");
    d.docker(&["rm", "-f", "app"]);
}

/// Killed before each rename, mkdir, mount and umount2 of a
/// `restore --bind --stop-containers`, then `rollback`: the source's
/// previous files, the same containers running, nothing left beside it.
#[test]
fn crash_points_restore_bind() {
    let (s, d, _disk) = super::faults::fixture("crash-bind", false);
    let g = d.args(&s);
    let (app, conf) = (s.join("srv/app/data"), s.join("srv/app/app.conf"));
    app_data(&app, &conf);
    let app_s = app.display().to_string();
    let run = ["run", "-d", "--name", "bind-user", "--network", "none", "--restart", "unless-stopped", "--stop-timeout", "2"];
    d.docker(&[&run[..], &["-v", &format!("{app_s}:/data"), "dockroot-test/app:1", "sleep", "1d"]].concat());
    let a = s.join("a.tar.zst").display().to_string();
    must(dockroot(with(&g, &["-q", "backup", "-o", &a, "--no-config"])));
    // The previous files differ from the archive's, so a half-done swap cannot pass.
    std::fs::write(app.join("after-backup"), "x").unwrap();
    let manifest = || text(&must(dockroot(["-q", "manifest", &app_s])));
    let m0 = manifest();
    let check = || {
        assert_eq!(manifest(), m0, "the bind source's files after the rollback");
        let left = kept(app.parent().unwrap(), "dockroot-");
        assert!(left.is_empty(), "left beside the bind source: {left:?}");
    };
    let h = Harness { d: &d, s: &s, g, bound: None, supervised: false };
    let n = h.every_point("restore --bind", &["-q", "restore", &a, "--bind", &app_s, "--stop-containers", "--yes"], &check);
    assert!(n > 10, "{n}");
    d.docker(&["rm", "-f", "bind-user"]);
}

/// The space check counts the bind sources (issue 18 item 2): a bind
/// source on a small disk that has no room left for its staged copy
/// refuses `restore --bind` and the whole restore, naming the disk and
/// the source, before anything changes.
#[test]
fn a_bind_source_without_room_for_its_staged_copy_is_refused() {
    let s = Scratch::new("pieces-room");
    let d = Daemon::start(false);
    let g = d.args(&s);
    let disk = crate::util::LoopFs::new(&s, "ext4", "96M");
    let app = disk.mnt.join("app");
    std::fs::create_dir(&app).unwrap();
    crate::util::sh(&format!("head -c 40M /dev/urandom >'{}/blob'", app.display()));
    let app_s = app.display().to_string();
    d.docker(&["create", "--name", "app", "--network", "none", "-v", &format!("{app_s}:/data"), "dockroot-test/app:1", "true"]);
    let a = s.join("a.tar.zst").display().to_string();
    must(dockroot(with(&g, &["-q", "backup", "-o", &a, "--no-config"])));
    // The disk fills up: 40 MiB cannot be staged beside the source any more.
    crate::util::sh(&format!("head -c 30M /dev/zero >'{}/filler'", disk.mnt.display()));
    let m0 = text(&must(dockroot(["-q", "manifest", &app_s])));
    for args in [vec!["restore", &a, "--bind", &app_s, "--yes"], vec!["restore", &a, "--force", "--yes"]] {
        let o = dockroot(with(&g, &args));
        assert_eq!(o.status.code(), Some(2), "{args:?}: {}", text(&o));
        let t = text(&o);
        assert!(t.contains("not enough space") && t.contains(&disk.mnt.display().to_string()) && t.contains(&app_s), "{t}");
        assert_eq!(text(&must(dockroot(["-q", "manifest", &app_s]))), m0);
        assert!(kept(&disk.mnt, "dockroot-").is_empty());
    }
    d.docker(&["rm", "app"]);
}

/// Bind-mounted app data on Docker 28.5 (the sid guest, issue 18): the
/// live backup carries the app's directory and config file and names the
/// plumbing it leaves; after a "reinstall" (both sources gone) a whole
/// restore puts them back with their owners, modes, times, hardlinks and
/// xattr; then `restore --bind` of the directory while the other
/// containers keep running.
#[test]
fn bind_sources_on_docker_28() {
    crate::util::require_root();
    let s = Scratch::new("sid-binds");
    let out = s.join("out");
    std::fs::create_dir(&out).unwrap();
    let h = crate::modern_engine::sid(&s, "sidbinds", "overlay2", &out);
    crate::modern_engine::populate(&h);
    h.ok("mkdir -p /srv/app/data/db /etc/app && cd /srv/app/data && seq 1 300 >db/rows && echo main >db/main && ln db/main db/main.hard \
          && setfattr -n user.app -v x db/main && chown -R 999:998 db && touch -d '2001-02-03 04:05:06.123456789' db/rows \
          && printf 'key=1\\n' >/etc/app/app.conf && chown 1000:1000 /etc/app/app.conf && chmod 0640 /etc/app/app.conf");
    // Every fact a restore must keep, one line per entry (not inodes or
    // ctimes; nor /etc/app's times: a file bind's directory is not carried).
    let facts = "cd /srv/app && find data /etc/app/app.conf -printf '%p %y %m %U %G %s %n %T@\\n' | sort && getfattr -h -d -R data 2>/dev/null \
                 && sha256sum data/db/rows /etc/app/app.conf";
    let before = h.ok(facts);
    h.ok("docker run -d --name app --network none --restart unless-stopped --stop-timeout 2 -v /srv/app/data:/data \
          -v /etc/app/app.conf:/etc/app.conf:ro -v /etc/localtime:/etc/localtime:ro -v /run/docker.sock:/var/run/docker.sock \
          dockroot-test/app:1 sleep 1d >/dev/null");
    let j: serde_json::Value = serde_json::from_str(&h.ok("dockroot --json backup -o /mnt/out/a.tar.zst --no-config")).unwrap();
    let meta = &j["summary"]["meta"];
    let carried: Vec<&str> = meta["binds"].as_array().unwrap().iter().map(|b| b["path"].as_str().unwrap()).collect();
    assert_eq!(carried, ["/etc/app/app.conf", "/srv/app/data"], "{meta}");
    let skipped: Vec<&str> = meta["binds_skipped"].as_array().unwrap().iter().map(|b| b["path"].as_str().unwrap()).collect();
    assert!(skipped.contains(&"/etc/localtime") && skipped.contains(&"/run/docker.sock"), "{meta}");

    // "Reinstall": the app's data and config gone; the whole restore brings them back.
    h.ok("docker stop -t 1 app >/dev/null && rm -rf /srv/app /etc/app");
    h.ok("dockroot -q restore /mnt/out/a.tar.zst --force --yes");
    assert_eq!(h.ok(facts), before);
    h.ok("docker start app >/dev/null");
    assert_eq!(h.ok("docker exec app sh -c 'cat /data/db/main /etc/app.conf'"), "main\nkey=1\n");

    // One bind source back while the other containers keep running.
    h.ok("echo new >/srv/app/data/db/new && seq 5 9 >/srv/app/data/db/rows");
    let runner = h.ok("docker inspect -f '{{.Id}} {{.State.StartedAt}}' dockroot-runner");
    let o = h.sh("dockroot restore /mnt/out/a.tar.zst --bind /srv/app/data --yes");
    assert_eq!(o.status.code(), Some(2), "{}", text(&o));
    assert!(text(&o).contains("used by running containers: app"), "{}", text(&o));
    h.ok("dockroot -q restore /mnt/out/a.tar.zst --bind /srv/app/data --stop-containers --yes");
    h.ok("rm -rf /srv/app/data.dockroot-old-*");
    assert_eq!(h.ok(facts), before);
    assert_eq!(h.ok("docker inspect -f '{{.Id}} {{.State.StartedAt}}' dockroot-runner"), runner);
    assert_eq!(h.ok("docker inspect -f '{{.State.Running}}' app").trim(), "true");
}
