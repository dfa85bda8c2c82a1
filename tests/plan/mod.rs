//! `move`, `rollback`, `finalize` against a real private dockerd (pidfile
//! service mode, scratch fstab, daemon.json and state dir) onto loop-mounted
//! filesystems. Each test starts its own daemon with the offline fixture
//! (images with whiteouts, an opaque dir and a file capability, a volume, a
//! running container with a restart policy).

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::{Duration, Instant};

use dockroot::docker::api::DockerApi;
use dockroot::docker::snapshot::DockerState;

mod bind_restore;
mod crash;
mod faults;
mod iofaults;
mod pieces;
mod precopy;
mod signals;
mod snapshot;
mod world;

use crate::util::{LoopFs, Scratch, dockroot, json, ok, run, script, text};

/// A private dockerd under a short /tmp dir, populated; stopped on drop.
pub(crate) struct Daemon {
    pub(crate) dir: PathBuf,
}

impl Daemon {
    pub(crate) fn start(root_in_json: bool) -> Daemon {
        Self::start_with_config(root_in_json, None)
    }

    /// Like [`Daemon::start`], with `config` as the initial daemon.json.
    pub(crate) fn start_with_config(root_in_json: bool, config: Option<&str>) -> Daemon {
        Self::start_in(root_in_json, config, None, &[]).populate()
    }

    /// Like [`Daemon::start`], with the data-root in `root` (`DIR/root` is
    /// a symlink to it; dockerd resolves it) and extra environment for
    /// dockerd.sh (e.g. `DOCKROOT_STORAGE_DRIVER`).
    pub(crate) fn start_in(root_in_json: bool, config: Option<&str>, root: Option<&Path>, env: &[(&str, &str)]) -> Daemon {
        crate::util::require_root();
        let dir = tempfile::Builder::new().prefix("dp").tempdir_in("/tmp").unwrap().keep();
        if let Some(cfg) = config {
            std::fs::write(dir.join("daemon.json"), cfg).unwrap();
        }
        if let Some(r) = root {
            std::fs::create_dir_all(r).unwrap();
            std::os::unix::fs::symlink(r, dir.join("root")).unwrap();
        }
        let mut c = Command::new("bash");
        c.arg(script("dockerd.sh")).arg("start").arg(&dir);
        if root_in_json {
            c.env("DOCKROOT_DATA_ROOT_IN_JSON", "1");
        }
        c.envs(env.iter().copied());
        ok(&mut c);
        Daemon { dir }
    }

    /// Fills the daemon with the offline fixture.
    pub(crate) fn populate(self) -> Daemon {
        ok(Command::new("bash").arg(script("docker-fixture.sh")).arg("populate").arg(self.sock()));
        self
    }

    pub(crate) fn sock(&self) -> PathBuf {
        self.dir.join("sock")
    }
    pub(crate) fn root(&self) -> PathBuf {
        self.dir.join("root")
    }
    pub(crate) fn api(&self) -> DockerApi {
        DockerApi::new(self.sock())
    }
    pub(crate) fn state(&self) -> DockerState {
        DockerState::capture(&self.api()).unwrap()
    }
    pub(crate) fn root_dir(&self) -> PathBuf {
        self.api().info().unwrap().docker_root_dir
    }

    pub(crate) fn docker(&self, args: &[&str]) -> Output {
        ok(Command::new("docker").arg("-H").arg(format!("unix://{}", self.sock().display())).args(args))
    }

    /// The global options pointing dockroot at this daemon and at scratch config files.
    pub(crate) fn args(&self, s: &Scratch) -> Vec<String> {
        let p = |x: PathBuf| x.display().to_string();
        vec![
            "--service".into(),
            format!("pidfile:{}", self.dir.join("pid").display()),
            "--docker-socket".into(),
            p(self.sock()),
            "--state-dir".into(),
            p(s.join("state")),
            "--fstab".into(),
            p(s.join("fstab")),
            "--daemon-config".into(),
            p(self.dir.join("daemon.json")),
        ]
    }

    /// Checks what the fixture put in: files deleted in the app image stay
    /// deleted, the opaque dir hides the base's files, the volume's data is
    /// intact, the runner runs.
    pub(crate) fn check_fixture(&self) {
        let out = self.docker(&[
            "run",
            "--rm",
            "--network",
            "none",
            "-v",
            "dockroot-vol:/v",
            "dockroot-test/app:1",
            "sh",
            "-c",
            "test ! -e /usr/share/doc/base/README && test ! -e /opt/data/a.txt && cd /v && sha256sum -c SHA256SUMS && cat hello.txt",
        ]);
        assert!(text(&out).contains("dockroot volume"), "{}", text(&out));
        let running = self.docker(&["inspect", "-f", "{{.State.Running}}", "dockroot-runner"]);
        assert_eq!(String::from_utf8_lossy(&running.stdout).trim(), "true");
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        let _ = Command::new("bash").arg(script("dockerd.sh")).arg("stop").arg(&self.dir).status();
        let _ = Command::new("bash")
            .arg("-c")
            .arg(format!("grep -o ' {}[^ ]*' /proc/self/mountinfo | sort -r | xargs -r -n1 umount -l", self.dir.display()))
            .status();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

pub(crate) fn with(args: &[String], more: &[&str]) -> Vec<String> {
    let mut v: Vec<String> = more.iter().map(|s| s.to_string()).collect();
    v.extend(args.iter().cloned());
    v
}

/// The file capability of the app image's /bin/netcap survived the move.
fn assert_cap_below(root: &Path) {
    let out = run(Command::new("getcap").arg("-r").arg(root.join("overlay2")));
    assert!(text(&out).contains("cap_net_raw"), "no file capability below {}: {}", root.display(), text(&out));
}

#[test]
fn plan_move_bind_then_rollback() {
    let s = Scratch::new("plan-bind");
    let d = Daemon::start(false);
    let disk = LoopFs::new(&s, "xfs", "3G");
    std::fs::write(s.join("fstab"), "# scratch fstab\n").unwrap();
    let target = disk.mnt.join("docker");
    let g = d.args(&s);
    let before = d.state();
    let t = target.display().to_string();

    let o = dockroot(with(&g, &["--json", "status", "--to", &t]));
    assert!(o.status.success(), "{}", text(&o));
    let st = json(&o);
    assert_eq!(st["data_root"], d.root().display().to_string());
    assert_eq!(st["target"]["fs_type"], "xfs");
    assert_eq!(st["target"]["probe"]["d_type"], true);
    assert_eq!(st["target"]["in_fstab"], false);
    assert_eq!(st["running_containers"], 1);

    // --dry-run prints the plan and changes nothing.
    let o = dockroot(with(&g, &["move", "--to", &t, "--dry-run"]));
    assert!(o.status.success(), "{}", text(&o));
    assert!(text(&o).contains("mount --bind"), "{}", text(&o));
    assert!(!target.exists() && !s.join("state/journal.json").exists());
    assert_eq!(std::fs::read_to_string(s.join("fstab")).unwrap(), "# scratch fstab\n");
    assert_eq!(d.state(), before);

    // Without a TTY and without --yes: refused.
    let o = dockroot(with(&g, &["move", "--to", &t]));
    assert_eq!(o.status.code(), Some(2), "{}", text(&o));

    let start = Instant::now();
    let o = dockroot(with(&g, &["--json", "move", "--to", &t, "--yes"]));
    assert!(o.status.success(), "{}", text(&o));
    let v = json(&o);
    eprintln!("move took {:?}, downtime {}", start.elapsed(), v["result"]["downtime_seconds"]);
    assert_eq!(d.root_dir(), d.root());
    assert_eq!(d.state(), before);
    d.check_fixture();
    assert_cap_below(&target);
    let fstab = std::fs::read_to_string(s.join("fstab")).unwrap();
    assert!(fstab.contains(&format!("{t} {} none bind,x-systemd.requires-mounts-for={t} 0 0", d.root().display())), "{fstab}");
    let old = PathBuf::from(v["result"]["old_tree"].as_str().unwrap());
    assert!(old.join("overlay2").is_dir());

    // A second move while this one is not finalized is refused.
    let o = dockroot(with(&g, &["move", "--to", &format!("{t}2"), "--yes"]));
    assert_eq!(o.status.code(), Some(2), "{}", text(&o));
    assert!(text(&o).contains("dockroot rollback"), "{}", text(&o));

    let o = dockroot(with(&g, &["rollback", "--yes"]));
    assert!(o.status.success(), "{}", text(&o));
    assert_eq!(d.root_dir(), d.root());
    assert!(!old.exists());
    // dockerd bind-mounts its data-root on itself; the target's xfs must be gone from there.
    let mounts = std::fs::read_to_string("/proc/self/mountinfo").unwrap();
    let on_root = format!(" {} ", d.root().display());
    assert!(!mounts.lines().any(|l| l.contains(&on_root) && l.contains(" - xfs ")), "target still mounted:\n{mounts}");
    assert!(!std::fs::read_to_string(s.join("fstab")).unwrap().contains("bind"));
    assert_eq!(d.state(), before);
    d.check_fixture();
}

#[test]
fn plan_move_data_root_then_finalize() {
    let s = Scratch::new("plan-dr");
    let d = Daemon::start(true);
    let disk = LoopFs::new(&s, "ext4", "3G");
    let target = disk.mnt.join("docker");
    let t = target.display().to_string();
    let g = d.args(&s);
    let before = d.state();
    let o = dockroot(with(&g, &["--json", "move", "--method", "data-root", "--to", &t, "--yes"]));
    assert!(o.status.success(), "{}", text(&o));
    assert_eq!(d.root_dir(), target);
    let cfg: serde_json::Value = serde_json::from_slice(&std::fs::read(d.dir.join("daemon.json")).unwrap()).unwrap();
    assert_eq!(cfg["data-root"], t.as_str());
    assert_eq!(d.state(), before);
    d.check_fixture();
    assert_cap_below(&target);

    let o = dockroot(with(&g, &["finalize", "--yes"]));
    assert!(o.status.success(), "{}", text(&o));
    assert!(!d.root().exists(), "old data-root not removed");
    assert!(!s.join("state/journal.json").exists());
    d.check_fixture();
}

#[test]
fn plan_faults_small_target_and_kill_mid_move() {
    let s = Scratch::new("plan-fault");
    let d = Daemon::start(false);
    let g = d.args(&s);
    let before = d.state();

    // A 64M disk cannot take the data-root (+10%): refused at preflight.
    let small = LoopFs::new(&s, "ext4", "64M");
    // The fixture is only a few MiB: fill the disk so that less than that is free.
    let mut f = std::fs::File::create(small.mnt.join("filler")).unwrap();
    while std::io::Write::write_all(&mut f, &[1u8; 1 << 20]).is_ok() {}
    drop(f);
    let o = dockroot(with(&g, &["move", "--to", &small.mnt.join("d").display().to_string(), "--yes"]));
    assert_eq!(o.status.code(), Some(2), "{}", text(&o));
    assert!(text(&o).contains("preflight") && text(&o).contains("free"), "{}", text(&o));
    assert!(d.api().ping(), "Docker must still run after a refused preflight");

    // A filesystem whose readdir reports no d_type cannot hold overlay2 layers.
    let nodtype = LoopFs::new(&s, "ext4-nodtype", "256M");
    let o = dockroot(with(&g, &["move", "--to", &nodtype.mnt.join("d").display().to_string(), "--yes"]));
    assert_eq!(o.status.code(), Some(2), "{}", text(&o));
    assert!(text(&o).contains("d_type"), "{}", text(&o));

    // kill -9 after Docker was stopped, then rollback.
    let disk = LoopFs::new(&s, "xfs", "3G");
    let t = disk.mnt.join("docker").display().to_string();
    let journal = s.join("state/journal.json");
    let mut child = start_move_until_stopped(&g, &t, &journal);
    let _ = child.kill();
    let _ = child.wait();
    let j: serde_json::Value = serde_json::from_slice(&std::fs::read(&journal).unwrap()).unwrap();
    assert_eq!(j["outcome"], "in-progress", "the kill came too late: {j}");
    assert!(!d.api().ping(), "Docker should be down after the kill");

    let o = dockroot(with(&g, &["move", "--to", &format!("{t}2"), "--yes"]));
    assert_eq!(o.status.code(), Some(2), "{}", text(&o));
    assert!(text(&o).contains("dockroot rollback"), "{}", text(&o));

    let o = dockroot(with(&g, &["rollback", "--yes"]));
    assert!(o.status.success(), "{}", text(&o));
    assert_eq!(d.root_dir(), d.root());
    assert_eq!(d.state(), before);
    d.check_fixture();

    // SIGTERM after the stop: the move undoes itself and exits 3 (failed and undone).
    let t3 = disk.mnt.join("docker3").display().to_string();
    let child = start_move_until_stopped(&g, &t3, &journal);
    nix::sys::signal::kill(nix::unistd::Pid::from_raw(child.id() as i32), nix::sys::signal::Signal::SIGTERM).unwrap();
    let o = child.wait_with_output().unwrap();
    assert_eq!(o.status.code(), Some(3), "{}", text(&o));
    assert!(text(&o).contains("interrupted") && text(&o).contains("undone"), "{}", text(&o));
    assert_eq!(d.root_dir(), d.root());
    assert_eq!(d.state(), before);
    let j: serde_json::Value = serde_json::from_slice(&std::fs::read(&journal).unwrap()).unwrap();
    assert_eq!(j["outcome"], "rolled-back");
    d.check_fixture();
}

/// Starts `dockroot move` and returns once its journal shows Docker stopped.
fn start_move_until_stopped(g: &[String], target: &str, journal: &Path) -> std::process::Child {
    let mut child = Command::new(crate::util::bin())
        .args(with(g, &["-q", "move", "--to", target, "--yes"]))
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        let j = std::fs::read_to_string(journal).unwrap_or_default();
        let v: serde_json::Value = serde_json::from_str(&j).unwrap_or_default();
        let mine = v["target"] == target;
        let stopped = v["steps"].as_array().is_some_and(|a| a.iter().any(|s| s["name"] == "stop" && s["state"] == "done"));
        if (mine && stopped) || child.try_wait().unwrap().is_some() {
            return child;
        }
        assert!(Instant::now() < deadline, "move never reached the stop");
        std::thread::sleep(Duration::from_millis(5));
    }
}

/// Pidfile mode with `--data-root` on dockerd's command line: the data-root
/// method restarts dockerd with the flag rewritten (daemon.json untouched),
/// and rollback restarts it with the original command line.
#[test]
fn plan_move_data_root_rewrites_pidfile_argv_then_rollback() {
    let s = Scratch::new("plan-argv");
    let d = Daemon::start(false);
    let disk = LoopFs::new(&s, "btrfs", "3G");
    let target = disk.mnt.join("docker");
    let t = target.display().to_string();
    let g = d.args(&s);
    let before = d.state();
    let json_before = std::fs::read(d.dir.join("daemon.json")).unwrap();
    let o = dockroot(with(&g, &["move", "--method", "data-root", "--to", &t, "--yes"]));
    assert!(o.status.success(), "{}", text(&o));
    // The boot-time starter is the user's to change: the new line is printed.
    let out = text(&o);
    let flag = out.contains(&format!("--data-root={t}")) || out.contains(&format!("--data-root {t}"));
    assert!(out.contains("dockerd now runs as: ") && flag, "{out}");
    assert!(out.contains("whatever starts dockerd at boot"), "{out}");
    assert_eq!(d.root_dir(), target);
    assert_eq!(std::fs::read(d.dir.join("daemon.json")).unwrap(), json_before);
    assert_eq!(d.state(), before);
    d.check_fixture();

    let o = dockroot(with(&g, &["rollback", "--yes"]));
    assert!(o.status.success(), "{}", text(&o));
    assert_eq!(d.root_dir(), d.root());
    assert_eq!(d.state(), before);
    d.check_fixture();
}
