//! `dockroot backup` / `restore` / `inspect` / `verify ARCHIVE` end to end:
//! against a real private dockerd (scripts/lib/dockerd.sh) filled with the
//! offline fixture, and on the fidelity tree with `--service none`.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use crate::util::*;
use dockroot::archive::WriterOptions;
use dockroot::manifest::Body;
use dockroot::plan::backup::meta::BackupMeta;
use dockroot::plan::backup::write_archive;
use dockroot::util::display::display;

/// A private dockerd in a short directory under /tmp; stopped on drop.
pub(crate) struct Daemon {
    pub(crate) dir: PathBuf,
}

impl Daemon {
    pub(crate) fn start(dir: &Path) -> Daemon {
        ok(Command::new("bash").arg(script("dockerd.sh")).arg("start").arg(dir));
        Daemon { dir: dir.to_path_buf() }
    }
    pub(crate) fn stop(&self) {
        ok(Command::new("bash").arg(script("dockerd.sh")).arg("stop").arg(&self.dir));
    }
    pub(crate) fn sock(&self) -> PathBuf {
        self.dir.join("sock")
    }
    pub(crate) fn docker(&self, args: &[&str]) -> String {
        let o = ok(Command::new("docker").arg("-H").arg(format!("unix://{}", self.sock().display())).args(args));
        String::from_utf8_lossy(&o.stdout).into_owned()
    }
    /// Images, containers (without state) and volumes, sorted, as text.
    pub(crate) fn lists(&self) -> String {
        let mut parts = Vec::new();
        for args in [
            &["images", "--no-trunc", "--format", "{{.ID}} {{.Repository}}:{{.Tag}}"][..],
            &["ps", "-a", "--no-trunc", "--format", "{{.ID}} {{.Names}} {{.Image}}"][..],
            &["volume", "ls", "--format", "{{.Name}}"][..],
        ] {
            let mut l: Vec<String> = self.docker(args).lines().map(str::to_owned).collect();
            l.sort();
            parts.push(l.join("\n"));
        }
        parts.join("\n--\n")
    }
    pub(crate) fn args(&self, state: &Path) -> Vec<String> {
        vec![
            "--service".into(),
            format!("pidfile:{}", self.dir.join("pid").display()),
            "--data-root".into(),
            self.dir.join("root").display().to_string(),
            "--docker-socket".into(),
            self.sock().display().to_string(),
            "--state-dir".into(),
            state.display().to_string(),
        ]
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        let _ = Command::new("bash").arg(script("dockerd.sh")).arg("stop").arg(&self.dir).status();
    }
}

pub(crate) fn have_docker() -> bool {
    let ok = |p: &str| Command::new(p).arg("--version").output().is_ok_and(|o| o.status.success());
    ok("dockerd") && ok("docker")
}

pub(crate) fn short_dir(tag: &str) -> tempfile::TempDir {
    tempfile::Builder::new().prefix(tag).tempdir_in("/tmp").unwrap()
}

fn d(args: &[&dyn AsRef<std::ffi::OsStr>]) -> std::process::Output {
    dockroot(args.iter().map(|a| a.as_ref()))
}

fn must(o: std::process::Output) -> std::process::Output {
    assert!(o.status.success(), "dockroot failed: {}", text(&o));
    o
}

/// (a) Backup a live private dockerd, restore over it (pidfile: stop, swap,
/// start, health check), then restore a stopped-daemon backup onto a fresh
/// ext4 loop filesystem and run the restored engine.
#[test]
fn docker_round_trip_onto_a_fresh_ext4() {
    require_root();
    assert!(have_docker(), "dockerd and docker are required (apt-get install docker.io)");
    let s = Scratch::new("bk-docker");
    let dir = short_dir("bk");
    let dm = Daemon::start(dir.path());
    ok(Command::new("bash").arg(script("docker-fixture.sh")).arg("populate").arg(dm.sock()));
    let before = dm.lists();
    let state = s.join("state");
    let a1 = s.join("a1.tar.zst");
    let t = std::time::Instant::now();
    let mut args = dm.args(&state);
    args.extend(["-q".into(), "backup".into(), "-o".into(), a1.display().to_string(), "--no-config".into()]);
    must(dockroot(&args));
    eprintln!("backup of the fixture: {:.1}s, {} bytes", t.elapsed().as_secs_f64(), std::fs::metadata(&a1).unwrap().len());
    assert_eq!(dm.lists(), before, "Docker must come back after the backup with the same objects");

    // inspect --json lists what the daemon had.
    let j = json(&must(d(&[&"--json", &"inspect", &a1])));
    assert_eq!(j["meta"]["docker"]["volumes"], serde_json::json!(["dockroot-vol"]));
    assert!(j["meta"]["docker"]["images"].as_array().unwrap().len() >= 2);
    assert!(j["meta"]["engine_version"].is_string());

    // Restore over the running daemon's data-root: refused without --force, then done with it.
    let mut r = dm.args(&state);
    r.extend(["restore".into(), a1.display().to_string(), "--yes".into()]);
    let o = dockroot(&r);
    assert!(!o.status.success() && text(&o).contains("not empty"), "{}", text(&o));
    r.push("--force".into());
    let t = std::time::Instant::now();
    must(dockroot(&r));
    eprintln!("restore over the live daemon: {:.1}s", t.elapsed().as_secs_f64());
    assert_eq!(dm.lists(), before);
    let journal: serde_json::Value = serde_json::from_slice(&std::fs::read(state.join("journal.json")).unwrap()).unwrap();
    assert_eq!(journal["outcome"], "done", "{journal}");

    // Stopped daemon: back it up with --service none and restore onto ext4.
    dm.stop();
    let a2 = s.join("a2.tar.zst");
    let root = dir.path().join("root");
    must(d(&[&"-q", &"--service", &"none", &"--data-root", &root, &"backup", &"-o", &a2, &"--no-config"]));
    must(d(&[&"verify", &a2]));
    let fs = LoopFs::new(&s, "ext4", "2G");
    let newroot = fs.mnt.join("docker");
    must(d(&[&"-q", &"--service", &"none", &"--data-root", &newroot, &"--state-dir", &state, &"restore", &a2, &"--yes"]));
    assert_same_tree(&root, &newroot);

    // A dockerd on the restored tree has the same objects, runs the app image and has the volume data.
    let dir2 = short_dir("bk2");
    std::os::unix::fs::symlink(&newroot, dir2.path().join("root")).unwrap();
    let d2 = Daemon::start(dir2.path());
    assert_eq!(d2.lists(), before);
    let out = d2.docker(&[
        "run",
        "--rm",
        "--network",
        "none",
        "-v",
        "dockroot-vol:/vol",
        "dockroot-test/app:1",
        "sh",
        "-c",
        "cat /vol/hello.txt; cd /vol && sha256sum -c SHA256SUMS",
    ]);
    assert!(out.starts_with("dockroot volume\n") && out.contains("OK"), "{out}");
    d2.stop();
}

fn fidelity_archive(s: &Scratch) -> (PathBuf, PathBuf) {
    let src = s.join("src");
    fidelity_tree(&src);
    let a = s.join("f.tar.zst");
    must(d(&[&"-q", &"--service", &"none", &"--data-root", &src, &"backup", &"-o", &a, &"--no-config"]));
    (src, a)
}

/// (b) Every entry type and metadata kind survives backup and restore.
#[test]
fn fidelity_tree_round_trip() {
    require_root();
    let s = Scratch::new("bk-fid");
    let (src, a) = fidelity_archive(&s);
    let dst = s.join("restored/dr");
    must(d(&[&"-q", &"--service", &"none", &"--data-root", &dst, &"--state-dir", &s.join("st"), &"restore", &a, &"--yes"]));
    assert_same_tree(&src, &dst);
    // Without a TTY and without --yes, restore refuses (exit 2) and changes nothing.
    let dst2 = s.join("restored2");
    let o = d(&[&"--service", &"none", &"--data-root", &dst2, &"restore", &a]);
    assert_eq!(o.status.code(), Some(2), "{}", text(&o));
    assert!(!dst2.exists());
}

/// The streaming paths end to end on 30k small files laid out as image
/// layers (scripts/mksmall.py, as `bench.sh --small`): copy, backup, verify
/// and restore, each under a 512 open-files limit (the walk's old fixed
/// window of 8192 open files hit EMFILE there), each compared with the
/// source by the independent treecmp.py. The spooled manifests leave
/// nothing in TMPDIR.
#[test]
fn thirty_thousand_small_files_stream_through_copy_backup_verify_restore() {
    require_root();
    let s = Scratch::new("bk-scale");
    let src = s.join("src/docker");
    ok(Command::new("python3").arg(repo().join("scripts/mksmall.py")).arg(&src).arg("30000"));
    let tmp = s.join("tmp");
    std::fs::create_dir(&tmp).unwrap();
    let limited = |args: &[&dyn AsRef<std::ffi::OsStr>]| {
        let mut c = Command::new("prlimit");
        c.arg("--nofile=512:512").arg(bin()).env("TMPDIR", &tmp);
        c.args(args.iter().map(|a| a.as_ref()));
        must(run(&mut c))
    };
    let copy = s.join("copy");
    limited(&[&"-q", &"copy", &src, &copy, &"--manifest", &s.join("copy.manifest")]);
    assert_same_tree(&src, &copy);
    std::fs::remove_dir_all(&copy).unwrap();
    let a = s.join("small.tar.zst");
    let none = s.join("none.sock");
    limited(&[&"-q", &"--service", &"none", &"--docker-socket", &none, &"--data-root", &src, &"backup", &"-o", &a, &"--no-config"]);
    let v = json(&limited(&[&"--json", &"verify", &a]));
    assert_eq!(v["ok"], true, "{v}");
    assert!(v["entries"].as_u64().unwrap() > 30_000, "{v}");
    let dst = s.join("restored/docker");
    limited(&[
        &"-q",
        &"--service",
        &"none",
        &"--docker-socket",
        &none,
        &"--data-root",
        &dst,
        &"--state-dir",
        &s.join("st"),
        &"restore",
        &a,
        &"--yes",
    ]);
    assert_same_tree(&src, &dst);
    let left: Vec<_> = std::fs::read_dir(&tmp).unwrap().map(|e| e.unwrap().file_name()).collect();
    assert!(left.is_empty(), "temporary files left in TMPDIR: {left:?}");
}

/// (c) `backup -o - | restore -`.
#[test]
fn stream_backup_into_restore() {
    require_root();
    let s = Scratch::new("bk-stream");
    let src = s.join("src");
    fidelity_tree(&src);
    let dst = s.join("dst");
    let mut b = Command::new(bin())
        .args(["-q", "--service", "none", "--data-root"])
        .arg(&src)
        .args(["backup", "-o", "-", "--no-config"])
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let r = Command::new(bin())
        .args(["-q", "--service", "none", "--data-root"])
        .arg(&dst)
        .arg("--state-dir")
        .arg(s.join("st"))
        .args(["restore", "-", "--yes"])
        .stdin(b.stdout.take().unwrap())
        .output()
        .unwrap();
    assert!(r.status.success(), "{}", text(&r));
    assert!(b.wait().unwrap().success(), "backup -o - failed");
    assert_same_tree(&src, &dst);
}

/// (d) A truncated or bit-flipped archive is refused before anything changes.
#[test]
fn damaged_archives_are_refused_before_anything_changes() {
    require_root();
    let s = Scratch::new("bk-damage");
    let (_src, a) = fidelity_archive(&s);
    let bytes = std::fs::read(&a).unwrap();
    let dst = s.join("dst");
    std::fs::create_dir(&dst).unwrap();
    std::fs::write(dst.join("keep"), b"old data").unwrap();
    let trunc = s.join("trunc.tar.zst");
    std::fs::write(&trunc, &bytes[..bytes.len() * 2 / 3]).unwrap();
    let mut flipped = bytes.clone();
    let i = flipped.len() / 2;
    flipped[i] ^= 0x10;
    let flip = s.join("flip.tar.zst");
    std::fs::write(&flip, &flipped).unwrap();
    for bad in [&trunc, &flip] {
        let o = d(&[&"verify", bad]);
        assert!(!o.status.success(), "verify accepted {}", bad.display());
        let o = d(&[&"--service", &"none", &"--data-root", &dst, &"--state-dir", &s.join("st"), &"restore", bad, &"--yes", &"--force"]);
        assert!(!o.status.success(), "restore accepted {}", bad.display());
        let names: Vec<_> = std::fs::read_dir(s.path()).unwrap().map(|e| e.unwrap().file_name().to_string_lossy().into_owned()).collect();
        assert!(!names.iter().any(|n| n.contains("dockroot-staging") || n.contains("dockroot-old")), "{names:?}");
        assert_eq!(std::fs::read(dst.join("keep")).unwrap(), b"old data");
        assert_eq!(std::fs::read_dir(&dst).unwrap().count(), 1);
    }
}

/// (d') An archive whose members differ from its manifest: `verify` names the
/// path and the field and exits 1, `restore` refuses it before anything changes.
#[test]
fn damaged_members_fail_verify_and_restore() {
    require_root();
    let s = Scratch::new("bk-members");
    let src = s.join("src");
    fidelity_tree(&src);
    let a = s.join("lying.tar.zst");
    let meta = serde_json::to_vec(&meta_for(&src)).unwrap();
    let mut altered = None;
    crate::archive::write_archive_with(&src, &a, &meta, &[], &mut |mut r| {
        if let (None, Body::File { blake3, size, .. }) = (&altered, &mut r.body)
            && *size > 0
        {
            blake3[7] ^= 0x40;
            altered = Some(display(&r.path));
        }
        vec![r]
    });
    let altered = altered.expect("the fidelity tree has files");
    let o = d(&[&"verify", &a]);
    assert_eq!(o.status.code(), Some(1), "{}", text(&o));
    let line = format!("differs: {altered}: content: expected ");
    assert!(text(&o).contains(&line) && text(&o).contains(", found ") && text(&o).contains("FAILED: 1 differences"), "{}", text(&o));
    let j = json(&d(&[&"--json", &"verify", &a]));
    assert_eq!(j["ok"], false, "{j}");
    assert_eq!(j["differences"].as_array().unwrap().len(), 1, "{j}");
    assert_eq!(j["differences"][0]["path"], altered.as_str());
    assert_eq!(j["differences"][0]["field"], "content");
    let dst = s.join("dst");
    std::fs::create_dir(&dst).unwrap();
    std::fs::write(dst.join("keep"), b"old data").unwrap();
    let o = d(&[&"--service", &"none", &"--data-root", &dst, &"--state-dir", &s.join("st"), &"restore", &a, &"--yes", &"--force"]);
    assert_eq!(o.status.code(), Some(2), "{}", text(&o));
    assert!(text(&o).contains("differs from the archive's manifest") && text(&o).contains(&altered), "{}", text(&o));
    assert_eq!(std::fs::read_dir(&dst).unwrap().count(), 1);
    assert_eq!(std::fs::read(dst.join("keep")).unwrap(), b"old data");
    // The same tree archived faithfully verifies clean (exit 0, no differences).
    let good = s.join("good.tar.zst");
    must(d(&[&"-q", &"--service", &"none", &"--data-root", &src, &"backup", &"-o", &good, &"--no-config"]));
    let j = json(&must(d(&[&"--json", &"verify", &good])));
    assert_eq!((j["ok"].clone(), j["differences"].clone()), (serde_json::json!(true), serde_json::json!([])), "{j}");
}

/// (e) An archive from a newer engine is refused unless --allow-downgrade
/// (--force does not do it); one from an older engine is restored, with a word.
#[test]
fn newer_engine_archive_needs_allow_downgrade() {
    require_root();
    let s = Scratch::new("bk-engine");
    let src = s.join("src");
    std::fs::create_dir_all(src.join("image")).unwrap();
    std::fs::write(src.join("image/x"), b"x").unwrap();
    let meta = BackupMeta {
        format: 1,
        tool: "dockroot".into(),
        tool_version: "0".into(),
        engine_version: Some("999.0.0-fake".into()),
        storage_driver: Some("overlay2".into()),
        data_root: src.clone(),
        hostname: "h".into(),
        created: "20260101T000000Z".into(),
        entries: 3,
        bytes: 1,
        allocated: None,
        docker: None,
        engine: None,
        snapshot: None,
        two_phase: false,
        rootless: None,
        containerd_tree: None,
        userns: None,
        volumes: None,
        binds: vec![],
        binds_skipped: vec![],
    };
    let a = s.join("fake.tar.zst");
    let f = std::fs::File::create(&a).unwrap();
    write_archive(f, &data_tree(&src), &meta, &[], &WriterOptions::default(), &dockroot::progress::Silent).unwrap();
    let dst = s.join("dst");
    let st = s.join("st");
    for extra in [&[][..], &["--force"][..]] {
        let mut args: Vec<&dyn AsRef<std::ffi::OsStr>> =
            vec![&"--service", &"none", &"--data-root", &dst, &"--state-dir", &st, &"restore", &a, &"--yes"];
        args.extend(extra.iter().map(|e| e as &dyn AsRef<std::ffi::OsStr>));
        let o = d(&args);
        assert!(!o.status.success() && text(&o).contains("999.0.0-fake") && text(&o).contains("--allow-downgrade"), "{}", text(&o));
        assert!(!dst.exists());
    }
    must(d(&[&"-q", &"--service", &"none", &"--data-root", &dst, &"--state-dir", &st, &"restore", &a, &"--yes", &"--allow-downgrade"]));
    assert_same_tree(&src, &dst);

    // An older engine's archive: restored without any flag, and the user is told.
    let old = s.join("old.tar.zst");
    let meta = BackupMeta { engine_version: Some("1.2.3-fake".into()), ..meta };
    write_archive(
        std::fs::File::create(&old).unwrap(),
        &data_tree(&src),
        &meta,
        &[],
        &WriterOptions::default(),
        &dockroot::progress::Silent,
    )
    .unwrap();
    let dst2 = s.join("dst2");
    let o = must(d(&[&"--service", &"none", &"--data-root", &dst2, &"--state-dir", &st, &"restore", &old, &"--yes"]));
    assert!(text(&o).contains("cannot go back to Docker 1.2.3-fake"), "{}", text(&o));
    assert_same_tree(&src, &dst2);
}

/// This daemon's containerd and shims (they name DIR/exec/containerd/).
fn containerd_processes(dir: &Path) -> Vec<String> {
    let key = format!("{}/exec/containerd/", dir.display());
    let mut found = Vec::new();
    for e in std::fs::read_dir("/proc").unwrap().flatten() {
        let cmd = std::fs::read(e.path().join("cmdline")).unwrap_or_default();
        let cmd = String::from_utf8_lossy(&cmd).replace('\0', " ");
        if cmd.contains(&key) {
            found.push(format!("{} {cmd}", e.file_name().to_string_lossy()));
        }
    }
    found
}

/// A containerd-shim-runc-v2 and its `sleep 1d` outlived their daemon after
/// scripts/test.sh: a dockerd that dies without stopping its containers
/// (SIGKILL, as dockerd.sh does after 30 s on a loaded machine) leaves the
/// shim running, re-parented to init. `dockerd.sh stop` must reap them and
/// the container's mounts.
#[test]
fn shim_and_sleep_outlived_their_killed_daemon() {
    require_root();
    assert!(have_docker(), "dockerd and docker are required (apt-get install docker.io)");
    let dir = short_dir("shim");
    let dm = Daemon::start(dir.path());
    let fixtures = std::env::var("DOCKROOT_FIXTURES").unwrap_or_else(|_| "/var/tmp/dockroot-fixtures".into());
    dm.docker(&["import", &format!("{fixtures}/busybox-base.tar"), "bb:1"]);
    dm.docker(&["run", "-d", "--network", "none", "--stop-timeout", "2", "bb:1", "sleep", "1d"]);
    let pid: i32 = std::fs::read_to_string(dir.path().join("pid")).unwrap().trim().parse().unwrap();
    ok(Command::new("kill").args(["-KILL", &pid.to_string()]));
    while std::fs::read_to_string(format!("/proc/{pid}/stat")).is_ok_and(|s| !s.contains(") Z ")) {
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    let dir = std::fs::canonicalize(dir.path()).unwrap();
    assert!(containerd_processes(&dir).iter().any(|p| p.contains("containerd-shim")), "no shim survived: the premise changed");
    dm.stop();
    assert_eq!(containerd_processes(&dir), Vec::<String>::new(), "processes of the killed daemon survived dockerd.sh stop");
    let mounts = std::fs::read_to_string("/proc/self/mountinfo").unwrap();
    let left: Vec<&str> = mounts.lines().filter(|l| l.contains(&format!(" {}/", dir.display()))).collect();
    assert!(left.is_empty(), "mounts left below {}: {left:#?}", dir.display());
}

/// `inspect` sliced bytes 0..12 of ids from meta.json and panicked on a
/// crafted multibyte id; it must print them cut by characters.
#[test]
fn inspect_panicked_on_a_crafted_multibyte_container_id() {
    use dockroot::docker::snapshot::{ContainerState, DockerState, ImageState};
    let s = Scratch::new("bk-mbid");
    let src = s.join("src");
    std::fs::create_dir(&src).unwrap();
    // Byte 12 falls inside a character in both ids.
    let evil = format!("a{}", "\u{e9}".repeat(40));
    let mut meta = meta_for(&src);
    meta.docker = Some(DockerState {
        images: vec![ImageState { id: format!("sha256:{}\u{20ac}", "a".repeat(11)), tags: vec!["x:1".into()] }],
        containers: vec![ContainerState {
            id: evil.clone(),
            names: vec!["c".into()],
            image: "x:1".into(),
            state: "exited".into(),
            restart_policy: "no".into(),
        }],
        volumes: vec![],
    });
    let a = s.join("mb.tar.zst");
    let f = std::fs::File::create(&a).unwrap();
    write_archive(f, &data_tree(&src), &meta, &[], &WriterOptions::default(), &dockroot::progress::Silent).unwrap();
    let o = must(d(&[&"inspect", &a]));
    let out = text(&o);
    assert!(out.contains(&format!("  a{} c x:1", "\u{e9}".repeat(11))), "{out}");
    assert!(out.contains(&format!("{}\u{20ac} x:1", "a".repeat(11))), "{out}");
}

/// (f) inspect --json and verify on an archive; --keep prunes a directory.
#[test]
fn inspect_verify_and_keep() {
    require_root();
    let s = Scratch::new("bk-inspect");
    let (_src, a) = fidelity_archive(&s);
    let j = json(&must(d(&[&"--json", &"inspect", &a])));
    assert_eq!(j["meta"]["tool"], "dockroot");
    assert!(j["meta"]["entries"].as_u64().unwrap() > 10);
    assert_eq!(j["size"].as_u64().unwrap(), std::fs::metadata(&a).unwrap().len());
    let v = json(&must(d(&[&"--json", &"verify", &a])));
    assert_eq!(v["ok"], true);
    // --keep 2 in a directory: three backups leave the newest two.
    let dir = s.join("backups");
    std::fs::create_dir(&dir).unwrap();
    let src = s.join("small");
    std::fs::create_dir(&src).unwrap();
    std::fs::write(dir.join("dockroot-old-20000101T000000Z.tar.zst"), b"x").unwrap();
    std::fs::write(dir.join("unrelated.tar.zst"), b"x").unwrap();
    for _ in 0..2 {
        must(d(&[
            &"-q",
            &"--service",
            &"none",
            &"--data-root",
            &src,
            &"backup",
            &"-o",
            &format!("{}/", dir.display()),
            &"--keep",
            &"2",
            &"--no-config",
        ]));
        std::thread::sleep(std::time::Duration::from_millis(1100));
    }
    let mut names: Vec<String> = std::fs::read_dir(&dir).unwrap().map(|e| e.unwrap().file_name().to_string_lossy().into_owned()).collect();
    names.sort();
    assert_eq!(names.len(), 3, "{names:?}");
    assert!(names.contains(&"unrelated.tar.zst".to_string()) && !names.iter().any(|n| n.contains("20000101")), "{names:?}");
    assert!(!names.iter().any(|n| n.ends_with(".partial")));
}

/// `--keep` deletes nothing until the new archive is on disk and reads
/// back clean (issue 17 item 5). The test-only hook damages one byte of the
/// new archive after its rename, as a failing disk would: the read-back
/// fails, the error says why, and every older archive is still there.
#[test]
fn keep_prunes_nothing_when_the_new_archive_fails_its_read_back() {
    require_root();
    let s = Scratch::new("bk-keep-bad");
    let (src, a) = fidelity_archive(&s);
    let dir = s.join("backups");
    std::fs::create_dir(&dir).unwrap();
    let old: Vec<PathBuf> = (1..=3).map(|i| dir.join(format!("dockroot-h-2000010{i}T000000Z.tar.zst"))).collect();
    for p in &old {
        std::fs::copy(&a, p).unwrap();
    }
    let (st, out) = (s.join("st"), format!("{}/", dir.display()));
    let args: [&dyn AsRef<std::ffi::OsStr>; 12] =
        [&"--service", &"none", &"--data-root", &src, &"--state-dir", &st, &"backup", &"-o", &out, &"--keep", &"2", &"--no-config"];
    let o = run(Command::new(bin()).args(args).env("DOCKROOT_TEST_DAMAGE_ARCHIVE", "1"));
    let msg = text(&o);
    assert!(!o.status.success(), "a backup whose archive fails its read-back succeeded: {msg}");
    assert!(msg.contains("read-back") && msg.contains("kept"), "{msg}");
    for p in &old {
        assert!(p.exists(), "{} was deleted: {msg}", p.display());
    }
    // Without the damage the same backup prunes down to two.
    must(run(Command::new(bin()).args(args)));
    let n = std::fs::read_dir(&dir).unwrap().filter(|e| e.as_ref().unwrap().file_name().to_string_lossy().ends_with(".tar.zst")).count();
    assert_eq!(n, 2, "{:?}", std::fs::read_dir(&dir).unwrap().map(|e| e.unwrap().file_name()).collect::<Vec<_>>());
}

/// (6) A failure after the stop is undone: here the step after the swap
/// fails (injected) on a data-root that is a mount point, whose contents
/// were swapped (issue 8; before, the swap itself failed with EBUSY). The old
/// data stays, the staging tree is removed and the journal says `undone`.
#[test]
fn failed_swap_is_undone() {
    require_root();
    let s = Scratch::new("bk-undo");
    let (_src, a) = fidelity_archive(&s);
    let fs = LoopFs::new(&s, "ext4", "256M");
    std::fs::write(fs.mnt.join("keep"), b"old data").unwrap();
    let st = s.join("st");
    let args: [&dyn AsRef<std::ffi::OsStr>; 10] =
        [&"--service", &"none", &"--data-root", &fs.mnt, &"--state-dir", &st, &"restore", &a, &"--yes", &"--force"];
    let o = run(Command::new(bin()).args(args.iter().map(|a| a.as_ref())).env("DOCKROOT_TEST_FAIL_AT", "start"));
    assert!(!o.status.success(), "{}", text(&o));
    assert!(text(&o).contains("undone"), "{}", text(&o));
    assert_eq!(std::fs::read(fs.mnt.join("keep")).unwrap(), b"old data");
    for dir in [s.path(), fs.mnt.as_path()] {
        let names: Vec<_> = std::fs::read_dir(dir).unwrap().map(|e| e.unwrap().file_name().to_string_lossy().into_owned()).collect();
        assert!(!names.iter().any(|n| n.contains("dockroot-staging") || n.contains("dockroot-old")), "{names:?}");
    }
    let j: serde_json::Value = serde_json::from_slice(&std::fs::read(st.join("journal.json")).unwrap()).unwrap();
    assert_eq!(j["outcome"], "rolled-back", "{j}");
    assert!(j["steps"].as_array().unwrap().iter().any(|x| x["name"] == "swap" && x["state"] == "undone"), "{j}");
}

/// (g) The shipped service and timer in a real systemd host (nspawn): the
/// service writes a verified archive and Docker runs again afterwards.
#[test]
fn systemd_backup_service_writes_a_verified_archive() {
    require_root();
    let s = Scratch::new("bk-systemd");
    let root = s.join("host");
    ok(Command::new("bash").arg(script("systemd-host.sh")).arg("copy").arg(&root));
    std::fs::copy(bin(), root.join("usr/local/bin/dockroot")).unwrap();
    // restic is dynamically linked to libc only: the host's runs in the bookworm guest.
    std::fs::copy("/usr/bin/restic", root.join("usr/local/bin/restic")).unwrap();
    for u in ["dockroot-backup.service", "dockroot-backup.timer", "dockroot-failure@.service"] {
        std::fs::copy(repo().join("systemd").join(u), root.join("etc/systemd/system").join(u)).unwrap();
    }
    std::fs::write(root.join("etc/default/dockroot-backup"), "DOCKROOT_BACKUP_KEEP=2\n").unwrap();
    let name = format!("dockroot-bk-{}", std::process::id());
    let o = ok(Command::new("bash").arg(script("systemd-host.sh")).arg("boot").arg(&root).arg(&name));
    let pid = String::from_utf8_lossy(&o.stdout).trim().to_string();
    struct Host(String);
    impl Drop for Host {
        fn drop(&mut self) {
            let _ = Command::new("bash").arg(script("systemd-host.sh")).arg("stop").arg(&self.0).status();
        }
    }
    let host = Host(pid.clone());
    let inside = |cmd: &str| {
        let o = run(Command::new("bash").arg(script("systemd-host.sh")).args(["exec", &pid, "sh", "-c", cmd]));
        (o.status.success(), text(&o))
    };
    // The first start after the backup fails once (a flaky dockerd start):
    // dockroot must retry and leave Docker running.
    let dropin = root.join("etc/systemd/system/docker.service.d");
    std::fs::create_dir_all(&dropin).unwrap();
    std::fs::write(
        dropin.join("flaky-once.conf"),
        "[Service]\nExecStartPre=/bin/sh -c 'test ! -e /run/armed || test -e /run/failed-once || { touch /run/failed-once; exit 1; }'\n",
    )
    .unwrap();
    let (okv, out) = inside(
        "docker volume create bkvol && mkdir -p /etc/docker && echo '{}' > /etc/docker/daemon.json && systemctl daemon-reload && systemctl enable --now dockroot-backup.timer && touch /run/armed",
    );
    assert!(okv, "{out}");
    let t = std::time::Instant::now();
    let (okv, out) = inside("systemctl start dockroot-backup.service");
    assert!(
        okv,
        "{out}\n{}",
        inside("journalctl -u dockroot-backup.service -u docker.service -u docker.socket -u containerd.service --no-pager | tail -80").1
    );
    eprintln!("dockroot-backup.service in nspawn: {:.1}s", t.elapsed().as_secs_f64());
    let (okv, out) = inside("ls /var/backups/dockroot/");
    assert!(okv && out.lines().filter(|l| l.starts_with("dockroot-") && l.ends_with(".tar.zst")).count() == 1, "{out}");
    let (okv, out) = inside(
        "dockroot verify /var/backups/dockroot/dockroot-*.tar.zst && dockroot --json inspect /var/backups/dockroot/dockroot-*.tar.zst",
    );
    assert!(okv, "{out}");
    assert!(out.contains("\"bkvol\""), "{out}");
    let (okv, out) = inside(
        "test -e /run/failed-once && systemctl is-active docker.service && systemctl show -p NextElapseUSecRealtime dockroot-backup.timer",
    );
    assert!(okv && out.contains("active") && !out.contains("NextElapseUSecRealtime=\n"), "{out}");

    // Off the host: the repository, retention and metrics from /etc/default.
    let (okv, out) = inside(
        "mkdir -p /etc/dockroot /var/lib/node-exporter && echo secret > /etc/dockroot/restic-password \
         && RESTIC_PASSWORD_FILE=/etc/dockroot/restic-password restic -q -r /var/backups/restic init \
         && printf '%s\\n' DOCKROOT_RESTIC_REPOSITORY=/var/backups/restic 'DOCKROOT_RESTIC_KEEP=--keep-last 1' \
            RESTIC_PASSWORD_FILE=/etc/dockroot/restic-password DOCKROOT_METRICS_FILE=/var/lib/node-exporter/dockroot.prom \
            'DOCKROOT_NOTIFY=touch /run/notified' >> /etc/default/dockroot-backup \
         && systemctl start dockroot-backup.service && systemctl start dockroot-backup.service \
         && RESTIC_PASSWORD_FILE=/etc/dockroot/restic-password restic -r /var/backups/restic snapshots --json --tag dockroot \
         && grep -E '^dockroot_last_exit_code\\{operation=\"backup\"\\} 0$' /var/lib/node-exporter/dockroot.prom",
    );
    assert!(okv, "{out}\n{}", inside("journalctl -u dockroot-backup.service --no-pager | tail -40").1);
    let snaps: serde_json::Value = serde_json::from_str(out.lines().find(|l| l.starts_with('[')).unwrap()).unwrap();
    assert_eq!(snaps.as_array().unwrap().len(), 1, "--keep-last 1 leaves one snapshot: {snaps}");
    // A failed run starts the failure unit, which logs and notifies.
    let (okv, out) = inside(
        "sed -i 's|^DOCKROOT_RESTIC_REPOSITORY=.*|DOCKROOT_RESTIC_REPOSITORY=/nonexistent/repo|' /etc/default/dockroot-backup && systemctl start dockroot-backup.service",
    );
    assert!(!okv, "a backup into a missing repository succeeded: {out}");
    let (okv, out) = inside(
        "for i in $(seq 100); do test -e /run/notified && break; sleep 0.1; done; test -e /run/notified \
         && journalctl -t dockroot --no-pager | grep 'dockroot-backup.service failed' \
         && systemctl is-active docker.service && grep -E '^dockroot_last_exit_code\\{operation=\"backup\"\\} [1-9]' /var/lib/node-exporter/dockroot.prom",
    );
    assert!(okv, "{out}\n{}", inside("systemctl status 'dockroot-failure@*' --no-pager; journalctl --no-pager | tail -30").1);
    drop(host);
}

fn meta_for(src: &Path) -> BackupMeta {
    BackupMeta {
        format: 1,
        tool: "dockroot".into(),
        tool_version: "0".into(),
        engine_version: None,
        storage_driver: None,
        data_root: src.to_path_buf(),
        hostname: "h".into(),
        created: "20260101T000000Z".into(),
        entries: 2,
        bytes: 1,
        allocated: None,
        docker: None,
        engine: None,
        snapshot: None,
        two_phase: false,
        rootless: None,
        containerd_tree: None,
        userns: None,
        volumes: None,
        binds: vec![],
        binds_skipped: vec![],
    }
}

fn restore_opts(src: &Path, dst: &Path, host: &Path, st: &Path) -> dockroot::plan::restore::RestoreOptions {
    dockroot::plan::restore::RestoreOptions {
        source: src.to_path_buf(),
        data_root: Some(dst.to_path_buf()),
        service: dockroot::service::ServiceKind::None,
        api: dockroot::docker::api::DockerApi::new("/nonexistent.sock"),
        state_dir: st.to_path_buf(),
        force: false,
        allow_downgrade: false,
        with_config: true,
        host_root: host.to_path_buf(),
        daemon_json: host.join("etc/docker/daemon.json"),
        dockerd: "dockerd".into(),
        threads: 2,
        timing: Default::default(),
        shared_store: false,
        rootless: None,
        remap_ids: false,
    }
}

/// `--with-config` writes only /etc/docker files and docker.service drop-ins
/// (keeping backups of what it replaces); any other name undoes the restore.
#[test]
fn with_config_restores_docker_files_and_rejects_others() {
    require_root();
    let s = Scratch::new("bk-config");
    let src = s.join("src");
    std::fs::create_dir_all(&src).unwrap();
    std::fs::write(src.join("f"), b"data").unwrap();
    let cfg = s.join("daemon.json");
    std::fs::write(&cfg, b"{\"log-level\":\"warn\"}").unwrap();
    let host = s.join("host");
    std::fs::create_dir_all(host.join("etc/docker")).unwrap();
    std::fs::write(host.join("etc/docker/daemon.json"), b"{}").unwrap();
    let good = s.join("good.tar.zst");
    let config = vec![
        (b"etc/docker/daemon.json".to_vec(), cfg.clone()),
        (b"etc/systemd/system/docker.service.d/override.conf".to_vec(), cfg.clone()),
    ];
    write_archive(
        std::fs::File::create(&good).unwrap(),
        &data_tree(&src),
        &meta_for(&src),
        &config,
        &WriterOptions::default(),
        &dockroot::progress::Silent,
    )
    .unwrap();
    let dst = s.join("dst");
    let r = dockroot::plan::restore::restore(&restore_opts(&good, &dst, &host, &s.join("st")), &dockroot::progress::Silent).unwrap();
    assert_eq!(r.config_restored.len(), 2);
    assert_eq!(std::fs::read(host.join("etc/docker/daemon.json")).unwrap(), b"{\"log-level\":\"warn\"}");
    assert!(host.join("etc/systemd/system/docker.service.d/override.conf").is_file());
    let backups = std::fs::read_dir(host.join("etc/docker"))
        .unwrap()
        .filter(|e| e.as_ref().unwrap().file_name().to_string_lossy().contains(".dockroot-bak-"))
        .count();
    assert_eq!(backups, 1, "the replaced daemon.json is kept");
    assert_same_tree(&src, &dst);

    let bad = s.join("bad.tar.zst");
    write_archive(
        std::fs::File::create(&bad).unwrap(),
        &data_tree(&src),
        &meta_for(&src),
        &[(b"etc/passwd".to_vec(), cfg)],
        &WriterOptions::default(),
        &dockroot::progress::Silent,
    )
    .unwrap();
    let dst2 = s.join("dst2");
    let e = dockroot::plan::restore::restore(&restore_opts(&bad, &dst2, &host, &s.join("st")), &dockroot::progress::Silent).unwrap_err();
    assert!(e.to_string().contains("etc/passwd") && e.to_string().contains("undone"), "{e}");
    assert!(!dst2.exists() && !host.join("etc/passwd").exists());
}

/// (6) A failed health check after the swap is undone: Docker is stopped,
/// the previous data-root is put back and Docker starts on it again.
#[test]
fn failed_health_check_restarts_docker_on_the_old_data() {
    require_root();
    assert!(have_docker(), "dockerd and docker are required (apt-get install docker.io)");
    let s = Scratch::new("bk-health");
    let dir = short_dir("bkh");
    let dm = Daemon::start(dir.path());
    dm.docker(&["volume", "create", "v1"]);
    dm.stop();
    // The archive's meta claims a volume its data does not hold.
    let root = dir.path().join("root");
    let mut meta = meta_for(&root);
    meta.engine_version = dockroot::docker::facts::engine_version(Path::new("dockerd")).ok().map(|v| v.version);
    meta.docker = Some(dockroot::docker::snapshot::DockerState::new(vec![], vec![], vec!["v1".into(), "ghost".into()]));
    let a = s.join("lying.tar.zst");
    write_archive(
        std::fs::File::create(&a).unwrap(),
        &data_tree(&root),
        &meta,
        &[],
        &WriterOptions::default(),
        &dockroot::progress::Silent,
    )
    .unwrap();
    let dm = Daemon::start(dir.path());
    dm.docker(&["volume", "create", "only-in-old-data"]);
    let state = s.join("st");
    let mut r = dm.args(&state);
    r.extend(["restore".into(), a.display().to_string(), "--yes".into(), "--force".into()]);
    let o = dockroot(&r);
    assert!(!o.status.success(), "{}", text(&o));
    assert!(text(&o).contains("ghost") && text(&o).contains("undone"), "{}", text(&o));
    let vols = dm.docker(&["volume", "ls", "--format", "{{.Name}}"]);
    assert!(vols.contains("only-in-old-data"), "Docker must run on the old data again: {vols}");
    let names: Vec<_> = std::fs::read_dir(dir.path()).unwrap().map(|e| e.unwrap().file_name().to_string_lossy().into_owned()).collect();
    assert!(!names.iter().any(|n| n.contains("dockroot-staging") || n.contains("dockroot-old")), "{names:?}");
    let j: serde_json::Value = serde_json::from_slice(&std::fs::read(state.join("journal.json")).unwrap()).unwrap();
    assert_eq!(j["outcome"], "rolled-back", "{j}");
}

/// (6b) A restore killed with Docker down, as its swap began (every other
/// crash point is in tests/crash.rs), is undone by `dockroot rollback`: the
/// old data-root is back, the staging tree is gone and Docker runs on the old
/// data again. A new restore is refused until then.
#[test]
fn interrupted_restore_is_rolled_back() {
    require_root();
    assert!(have_docker(), "dockerd and docker are required (apt-get install docker.io)");
    let s = Scratch::new("bk-crash");
    let dir = short_dir("bkc");
    let dm = Daemon::start(dir.path());
    dm.docker(&["volume", "create", "in-archive"]);
    let state = s.join("st");
    let a = s.join("a.tar.zst");
    let mut b = dm.args(&state);
    b.extend(["backup".into(), "-o".into(), a.display().to_string(), "--no-config".into()]);
    must(dockroot(&b));
    dm.docker(&["volume", "create", "only-in-old-data"]);
    let mut r = dm.args(&state);
    r.extend(["restore".into(), a.display().to_string(), "--yes".into(), "--force".into()]);
    let o = run(Command::new(bin()).args(&r).env("DOCKROOT_TEST_CRASH_AT", "swap"));
    assert!(!o.status.success(), "the crash hook did not fire: {}", text(&o));
    // Killed with Docker down, the swap journaled as started.
    assert!(!dockroot::docker::api::DockerApi::new(dm.sock()).ping());
    let o = dockroot(&r);
    assert!(!o.status.success() && text(&o).contains("dockroot rollback"), "{}", text(&o));
    let mut rb = dm.args(&state);
    rb.extend(["rollback".into(), "--yes".into()]);
    let o = dockroot(&rb);
    assert!(o.status.success(), "{}", text(&o));
    assert!(text(&o).contains("interrupted restore") && text(&o).contains("started again"), "{}", text(&o));
    let vols = dm.docker(&["volume", "ls", "--format", "{{.Name}}"]);
    assert!(vols.contains("only-in-old-data"), "Docker must run on the old data again: {vols}");
    let names: Vec<_> = std::fs::read_dir(dir.path()).unwrap().map(|e| e.unwrap().file_name().to_string_lossy().into_owned()).collect();
    assert!(!names.iter().any(|n| n.contains("dockroot-staging") || n.contains("dockroot-old")), "{names:?}");
    let j: serde_json::Value = serde_json::from_slice(&std::fs::read(state.join("journal.json")).unwrap()).unwrap();
    assert_eq!(j["outcome"], "rolled-back", "{j}");
    // Now the restore goes through, and Docker runs on the archive's data.
    let o = dockroot(&r);
    assert!(o.status.success(), "{}", text(&o));
    let vols = dm.docker(&["volume", "ls", "--format", "{{.Name}}"]);
    assert!(vols.contains("in-archive") && !vols.contains("only-in-old-data"), "{vols}");
    dm.stop();
}

mod parallel;
