//! Bind-mounted app data in a whole-engine backup (issue 18), on a real
//! private dockerd: `status` lists every mount; the backup carries the
//! app-data bind sources as trees of their own (read while Docker runs,
//! the changes again while it is stopped) and names the host plumbing it
//! leaves; a restore after the sources were wiped puts them back byte- and
//! metadata-identical, never touching the plumbing. And an archive written
//! before bind trees existed (format 1) still verifies and restores.

use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::process::Command;

use crate::plan::{Daemon, with};
use crate::util::*;

/// Creates, rewrites, renames and deletes files in /v, forever.
const WRITER: &str = "i=0; while :; do i=$((i+1)); echo $i > /v/w.$((i%30)); mkdir -p /v/d.$((i%5)); echo $i > /v/d.$((i%5))/f; \
                      mv /v/w.$((i%30)) /v/r.$((i%11)); rm -rf /v/d.$(((i+2)%5)); [ $((i%20)) = 0 ] && sleep 0.01; done";

fn sh_in(dir: &Path, script: &str) {
    ok(Command::new("bash").arg("-ec").arg(script).current_dir(dir));
}

/// Size, mode, owner, mtime, content and the `user.app` xattr.
type FileFacts = (u64, u32, u32, u32, i64, i64, Vec<u8>, Option<Vec<u8>>);

/// A file's metadata that a restore must keep (not its inode or ctime).
fn file_facts(p: &Path) -> FileFacts {
    let m = std::fs::symlink_metadata(p).unwrap();
    let x = xattr_get(p, "user.app");
    (m.len(), m.mode(), m.uid(), m.gid(), m.mtime(), m.mtime_nsec(), std::fs::read(p).unwrap(), x)
}

fn xattr_get(p: &Path, name: &str) -> Option<Vec<u8>> {
    let o = Command::new("getfattr").args(["--only-values", "-h", "-n", name]).arg(p).output().unwrap();
    o.status.success().then_some(o.stdout)
}

fn s(p: &Path) -> String {
    p.display().to_string()
}

#[test]
fn bind_sources_come_back_after_a_reinstall_and_plumbing_is_left_alone() {
    let sc = Scratch::new("binds");
    let d = Daemon::start(false);
    let mut g = d.args(&sc);
    g.extend(["--data-root".into(), s(&d.root())]);
    // App data: a directory with hardlinks, an xattr and non-root owners; a config file.
    let (app, conf, wdir) = (sc.join("srv/app/data"), sc.join("etc/app/app.conf"), sc.join("srv/writer"));
    for p in [&app, &wdir, &conf.parent().unwrap().to_path_buf()] {
        std::fs::create_dir_all(p).unwrap();
    }
    sh_in(
        &app,
        "mkdir -p db/sub; for i in $(seq 1 50); do echo row$i > db/sub/r$i; done; echo main > db/main; ln db/main db/main.hard; \
         ln -s main db/link; setfattr -n user.app -v x1 db/main; chown -R 999:998 db; chown 1234:5678 db/sub/r7; chmod 0600 db/sub/r7; \
         touch -d '2001-02-03 04:05:06.123456789' db/sub/r1",
    );
    sh_in(
        conf.parent().unwrap(),
        "printf 'key=1\\n' > app.conf; chown 1000:1000 app.conf; chmod 0640 app.conf; setfattr -n user.app -v c app.conf",
    );
    let expect = sc.join("expect");
    ok(Command::new("cp").arg("-a").arg(&app).arg(&expect));
    let conf_before = file_facts(&conf);
    let localtime = std::fs::symlink_metadata("/etc/localtime").unwrap();
    let sock = d.sock();
    d.docker(&[
        "run",
        "-d",
        "--name",
        "app",
        "--network",
        "none",
        "-v",
        &format!("{}:/data", s(&app)),
        "-v",
        &format!("{}:/etc/app.conf:ro", s(&conf)),
        "-v",
        "/etc/localtime:/etc/localtime:ro",
        "-v",
        &format!("{}:/var/run/docker.sock", s(&sock)),
        "dockroot-test/app:1",
        "sleep",
        "1d",
    ]);
    // A bind source written while the backup runs.
    d.docker(&[
        "run",
        "-d",
        "--name",
        "writer",
        "--network",
        "none",
        "-v",
        &format!("{}:/v", s(&wdir)),
        "dockroot-test/app:1",
        "sh",
        "-c",
        WRITER,
    ]);

    // status: every container's mounts, and each bind source classified with its reason.
    let st = json(&dockroot(with(&g, &["--json", "status"])));
    let c = st["containers"].as_array().unwrap().iter().find(|c| c["name"] == "app").expect("app listed").clone();
    let dests: Vec<&str> = c["mounts"].as_array().unwrap().iter().map(|m| m["destination"].as_str().unwrap()).collect();
    assert_eq!(dests, ["/data", "/etc/app.conf", "/etc/localtime", "/var/run/docker.sock"], "{c}");
    assert_eq!(c["mounts"][1]["read_only"], true, "{c}");
    let class = |p: &str| st["bind_sources"].as_array().unwrap().iter().find(|b| b["path"] == p).map(|b| b["class"].clone());
    assert_eq!(class(&s(&app)), Some("app_data".into()), "{st}");
    assert_eq!(class(&s(&conf)), Some("app_data".into()), "{st}");
    assert_eq!(class("/etc/localtime"), Some("plumbing".into()), "{st}");
    assert_eq!(class(&s(&sock)), Some("plumbing".into()), "{st}");

    // The backup (live, the default) carries the app data and says what it leaves.
    let a = sc.join("a.tar.zst");
    let o = dockroot(with(&g, &["--json", "backup", "-o", &s(&a), "--no-config"]));
    assert!(o.status.success(), "{}", text(&o));
    let j = json(&o);
    let meta = &j["summary"]["meta"];
    let carried: Vec<&str> = meta["binds"].as_array().unwrap().iter().map(|b| b["path"].as_str().unwrap()).collect();
    assert_eq!(carried, [s(&conf), s(&app), s(&wdir)], "{meta}");
    assert_eq!(meta["binds"][0]["kind"], "file");
    let skipped = |p: &str| meta["binds_skipped"].as_array().unwrap().iter().find(|b| b["path"] == p).map(|b| b["reason"].clone());
    assert!(skipped("/etc/localtime").unwrap().as_str().unwrap().contains("host plumbing"), "{meta}");
    assert!(skipped(&s(&sock)).unwrap().as_str().unwrap().contains("socket"), "{meta}");
    assert!(j["summary"]["phases"]["phase1_docker_answered"] == true, "{j}");
    // The writer has no restart policy: it stays stopped, its directory is the stopped state.
    let wexpect = sc.join("wexpect");
    ok(Command::new("cp").arg("-a").arg(&wdir).arg(&wexpect));
    assert!(dockroot(["verify", &s(&a)]).status.success());
    let human = text(&dockroot(["inspect", &s(&a)]));
    assert!(human.contains("bind sources (3 carried, 2 not)") && human.contains("/etc/localtime"), "{human}");

    // "Reinstall": the app's containers stopped, both bind sources and the writer's gone.
    d.docker(&["stop", "-t", "1", "app"]);
    std::fs::remove_dir_all(sc.join("srv")).unwrap();
    std::fs::remove_dir_all(sc.join("etc")).unwrap();
    let o = dockroot(with(&g, &["--json", "restore", &s(&a), "--yes", "--force"]));
    assert!(o.status.success(), "{}", text(&o));
    let r = json(&o);
    assert_eq!(r["summary"]["binds"].as_array().unwrap().len(), 3, "{r}");
    assert_same_tree(&expect, &app);
    assert_same_tree(&wexpect, &wdir);
    assert_eq!(file_facts(&conf), conf_before);
    // Plumbing untouched.
    let lt = std::fs::symlink_metadata("/etc/localtime").unwrap();
    assert_eq!((lt.ino(), lt.mtime(), lt.mtime_nsec()), (localtime.ino(), localtime.mtime(), localtime.mtime_nsec()));
    assert!(std::fs::symlink_metadata(&sock).unwrap().file_type().is_socket_like());
    // The container sees its data.
    d.docker(&["start", "app"]);
    let seen = text(&d.docker(&["exec", "app", "sh", "-c", "cat /data/db/sub/r50 /etc/app.conf"]));
    assert!(seen.contains("row50") && seen.contains("key=1"), "{seen}");
    d.docker(&["rm", "-f", "app", "writer"]);
}

trait SocketLike {
    fn is_socket_like(&self) -> bool;
}

impl SocketLike for std::fs::FileType {
    fn is_socket_like(&self) -> bool {
        std::os::unix::fs::FileTypeExt::is_socket(self)
    }
}

/// An archive of dockroot before bind trees (format 1, a two-phase backup
/// of a small data-root, kept in tests/fixtures) verifies and restores.
#[test]
fn an_archive_written_before_bind_trees_still_restores() {
    require_root();
    let sc = Scratch::new("format1");
    let a: PathBuf = repo().join("tests/fixtures/format1-live.tar.zst");
    let i = json(&dockroot(["--json", "inspect", &s(&a)]));
    assert_eq!((i["meta"]["format"].as_u64(), i["meta"]["two_phase"].as_bool()), (Some(1), Some(true)), "{i}");
    let o = dockroot(["verify", &s(&a)]);
    assert!(o.status.success(), "{}", text(&o));
    let dst = sc.join("dst");
    let o = dockroot(["-q", "--service", "none", "--data-root", &s(&dst), "--state-dir", &s(&sc.join("st")), "restore", &s(&a), "--yes"]);
    assert!(o.status.success(), "{}", text(&o));
    let hello = dst.join("volumes/v/_data/hello.txt");
    let m = std::fs::metadata(&hello).unwrap();
    assert_eq!((std::fs::read_to_string(&hello).unwrap().as_str(), m.uid(), m.gid(), m.nlink()), ("hello\n", 1234, 5678, 2));
    assert_eq!(xattr_get(&dst.join("image/overlay2/l1"), "user.k").as_deref(), Some(&b"val"[..]));
    assert_eq!(std::fs::read_link(dst.join("image/overlay2/l1/link")).unwrap(), Path::new("f"));
}
