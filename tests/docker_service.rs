//! Integration tests for `docker` and `service` against a real, private
//! dockerd started in a temp dir under /tmp (short socket path). Skipped with
//! a loud message when dockerd or the docker CLI is missing or we are not root.

use dockroot::docker::api::DockerApi;
use dockroot::docker::daemon_json::DaemonJson;
use dockroot::docker::discover::{DiscoverOptions, Source, discover};
use dockroot::docker::facts;
use dockroot::docker::snapshot::DockerState;
use dockroot::progress::Silent;
use dockroot::service::none::NoService;
use dockroot::service::pidfile::{DaemonCommand, PidfileService};
use dockroot::service::wait::Timing;
use dockroot::service::{Leftover, ServiceError, ServiceManager, StopGuard, check_live_restore, verify_stopped};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

fn timing() -> Timing {
    Timing { timeout: Duration::from_secs(60), poll: Duration::from_millis(100) }
}

fn can_run() -> bool {
    let ok = |p: &str| Command::new(p).arg("--version").output().is_ok_and(|o| o.status.success());
    if !ok("dockerd") || !ok("docker") {
        eprintln!("\n!!! SKIPPED: dockerd and the docker CLI are required for this test (apt-get install docker.io) !!!\n");
        return false;
    }
    if !nix::unistd::Uid::effective().is_root() {
        eprintln!("\n!!! SKIPPED: this test starts a private dockerd and must run as root !!!\n");
        return false;
    }
    true
}

/// A private dockerd; stopped (SIGTERM via its pidfile) on drop.
struct Daemon {
    dir: tempfile::TempDir,
}

impl Daemon {
    fn start() -> Self {
        Self::start_with(&[])
    }

    fn start_with(extra: &[&str]) -> Self {
        let dir = tempfile::Builder::new().prefix("dr").tempdir_in("/tmp").unwrap();
        let d = Self { dir };
        let mut argv = d.argv();
        argv.extend(extra.iter().map(|s| s.to_string()));
        let cmd = DaemonCommand { argv, env: std::env::vars().collect(), cwd: d.dir.path().into(), log: d.path("dockerd.log") };
        cmd.spawn().unwrap();
        assert!(timing().wait_until(|| d.api().ping()), "dockerd did not come up; see {}", d.path("dockerd.log").display());
        d
    }

    fn path(&self, rel: &str) -> PathBuf {
        self.dir.path().join(rel)
    }

    fn root(&self) -> PathBuf {
        self.path("root")
    }

    fn argv(&self) -> Vec<String> {
        let p = |r: &str| self.path(r).display().to_string();
        let s = |x: &str| x.to_string();
        vec![
            s("dockerd"),
            s("--data-root"),
            p("root"),
            s("--exec-root"),
            p("ex"),
            s("--pidfile"),
            p("d.pid"),
            format!("-H=unix://{}", p("d.sock")),
            s("--iptables=false"),
            s("--bridge=none"),
        ]
    }

    fn api(&self) -> DockerApi {
        DockerApi::new(self.path("d.sock"))
    }

    fn docker(&self, args: &[&str], stdin: Option<&[u8]>) -> String {
        use std::io::Write;
        let mut c = Command::new("docker");
        c.args(args).env("DOCKER_HOST", format!("unix://{}", self.path("d.sock").display()));
        c.stdin(std::process::Stdio::piped()).stdout(std::process::Stdio::piped()).stderr(std::process::Stdio::piped());
        let mut child = c.spawn().unwrap();
        let mut input = child.stdin.take().unwrap();
        input.write_all(stdin.unwrap_or_default()).unwrap();
        drop(input);
        let out = child.wait_with_output().unwrap();
        assert!(out.status.success(), "docker {args:?}: {}", String::from_utf8_lossy(&out.stderr));
        String::from_utf8_lossy(&out.stdout).trim().to_string()
    }

    /// Imports a one-layer busybox image as `bbtest:1`.
    fn import_busybox(&self) {
        let rootfs = self.path("rootfs");
        std::fs::create_dir_all(rootfs.join("bin")).unwrap();
        std::fs::copy("/bin/busybox", rootfs.join("bin/busybox")).unwrap();
        let list = Command::new("/bin/busybox").arg("--list").output().unwrap();
        for applet in String::from_utf8_lossy(&list.stdout).lines().filter(|a| *a != "busybox") {
            let _ = std::os::unix::fs::symlink("busybox", rootfs.join("bin").join(applet));
        }
        let tar = Command::new("tar").arg("-C").arg(&rootfs).args(["-c", "."]).output().unwrap();
        assert!(tar.status.success());
        self.docker(&["import", "-", "bbtest:1"], Some(&tar.stdout));
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        let svc = PidfileService::new(self.path("d.pid"), timing());
        if let Err(e) = svc.stop(&Silent) {
            eprintln!("cleanup: cannot stop test dockerd: {e}");
        }
        // With live-restore, dockerd leaves its data-root bind-mounted on itself.
        let _ = nix::mount::umount2(&self.root(), nix::mount::MntFlags::MNT_DETACH);
    }
}

fn same_dir(a: &Path, b: &Path) -> bool {
    std::fs::canonicalize(a).unwrap() == std::fs::canonicalize(b).unwrap()
}

#[test]
fn real_daemon_api_pidfile_restart_and_none_guard() {
    if !can_run() {
        return;
    }
    let d = Daemon::start();
    d.import_busybox();
    d.docker(&["create", "--name", "c1", "--restart", "always", "bbtest:1", "/bin/sh"], None);
    d.docker(&["volume", "create", "v1"], None);
    let api = d.api();

    check_api(&api, &d);
    let before = DockerState::capture(&api).unwrap();
    assert_eq!((before.images.len(), before.containers.len(), before.volumes.len()), (1, 1, 1));

    check_discovery_and_facts(&d);
    check_guards_while_running(&d);

    let svc = PidfileService::new(d.path("d.pid"), timing());
    assert!(svc.is_running().unwrap());
    svc.stop(&Silent).unwrap();
    assert!(!api.ping());
    verify_stopped(&d.root()).unwrap();
    NoService::new(d.root()).stop(&Silent).unwrap();

    // A later process (rollback after a crash) restarts it from the persisted record.
    let json = serde_json::to_string(&svc.recorded().unwrap()).unwrap();
    let record: DaemonCommand = serde_json::from_str(&json).unwrap();
    assert_eq!(record.argv, d.argv());
    assert_eq!(record.socket(), d.path("d.sock"));
    let again = PidfileService::with_command(d.path("d.pid"), timing(), record);
    again.start(&Silent).unwrap();
    assert!(api.ping());
    let after = DockerState::capture(&api).unwrap();
    assert_eq!(before.diff(&after), Vec::<String>::new());
    assert_eq!(before, after);
}

fn check_api(api: &DockerApi, d: &Daemon) {
    let info = api.info().unwrap();
    assert!(same_dir(&info.docker_root_dir, &d.root()), "{info:?}");
    assert_eq!((info.containers, info.containers_running, info.images), (1, 0, 1));
    assert!(info.server_version.starts_with(|c: char| c.is_ascii_digit()));
    let images = api.images().unwrap();
    assert_eq!(images[0].repo_tags, ["bbtest:1"]);
    let c = &api.containers().unwrap()[0];
    assert_eq!((c.names.as_slice(), c.state.as_str(), c.restart_policy.as_str()), (&["/c1".to_string()][..], "created", "always"));
    assert_eq!(api.volumes().unwrap()[0].name, "v1");
}

fn check_discovery_and_facts(d: &Daemon) {
    let opts = DiscoverOptions { daemon_json: d.path("none.json"), unit_dirs: vec![], api: Some(d.api()) };
    let found = discover(&opts).unwrap();
    assert!(matches!(found.source, Source::RunningDaemon { .. }), "{found:?}");
    assert!(same_dir(&found.data_root, &d.root()));
    assert!(found.storage_driver.is_some());
    let v = facts::engine_version(Path::new("dockerd")).unwrap();
    assert!(v.numbers.0 >= 17, "{v:?}");
    assert!(facts::userns_dirs(&d.root()).unwrap().is_empty());
    let size = facts::tree_size(&d.root()).unwrap();
    assert!(size.entries > 10 && size.bytes > 1_000_000, "{size:?}");
}

fn check_guards_while_running(d: &Daemon) {
    let none = NoService::new(d.root());
    assert!(none.is_running().unwrap());
    let e = none.stop(&Silent).unwrap_err();
    assert!(matches!(e, ServiceError::DaemonRunning { .. }), "{e}");
    assert!(e.to_string().contains(&d.root().display().to_string()));
    match verify_stopped(&d.root()) {
        Err(ServiceError::NotStopped { leftovers, .. }) => {
            assert!(leftovers.iter().any(|l| matches!(l, Leftover::Daemon { .. })), "{leftovers:?}")
        }
        other => panic!("expected NotStopped, got {other:?}"),
    }
    // live-restore on, but nothing running: allowed.
    std::fs::write(d.path("lr.json"), r#"{"live-restore":true}"#).unwrap();
    let cfg = DaemonJson::load(&d.path("lr.json")).unwrap();
    check_live_restore(&cfg, &d.api()).unwrap();
}

/// live-restore keeps a container running after dockerd stops: the check
/// before stopping must refuse, and verify_stopped must see what is left.
#[test]
fn live_restore_running_container_is_caught() {
    if !can_run() {
        return;
    }
    let dir = tempfile::Builder::new().prefix("lr").tempdir_in("/tmp").unwrap();
    let cfg_path = dir.path().join("daemon.json");
    std::fs::write(&cfg_path, r#"{"live-restore": true}"#).unwrap();
    let d = Daemon::start_with(&["--config-file", cfg_path.to_str().unwrap()]);
    d.import_busybox();
    d.docker(&["run", "-d", "--name", "r1", "--network", "none", "bbtest:1", "sleep", "600"], None);
    let cfg = DaemonJson::load(&cfg_path).unwrap();
    let e = check_live_restore(&cfg, &d.api()).unwrap_err();
    assert!(matches!(e, ServiceError::LiveRestore { running: 1, .. }), "{e}");
    assert!(e.to_string().contains("docker stop"));

    // The stop guard asks the daemon itself and refuses before stopping anything.
    let svc = PidfileService::new(d.path("d.pid"), timing());
    let e = StopGuard::stop(&svc, &d.api(), dockroot::service::wait::Timing::default(), &d.root(), &Silent)
        .err()
        .expect("the guard must refuse");
    assert!(matches!(e, ServiceError::LiveRestoreRunning { running: 1 }), "{e}");
    assert!(d.api().ping(), "nothing was stopped");

    svc.stop(&Silent).unwrap();
    let e = verify_stopped(&d.root()).unwrap_err();
    match &e {
        ServiceError::NotStopped { leftovers, .. } => {
            assert!(leftovers.iter().any(|l| matches!(l, Leftover::Mount { fstype, .. } if fstype == "overlay")), "{e}")
        }
        other => panic!("expected NotStopped, got {other:?}"),
    }
    assert!(e.to_string().contains("live-restore"), "{e}");

    // Clean up: restart, remove the container, stop; then nothing is left.
    svc.start(&Silent).unwrap();
    d.docker(&["rm", "-f", "r1"], None);
    svc.stop(&Silent).unwrap();
    verify_stopped(&d.root()).unwrap();

    // A guard dropped while held (an error, a panic) starts Docker again.
    svc.start(&Silent).unwrap();
    let api = d.api();
    let guard = StopGuard::stop(&svc, &api, dockroot::service::wait::Timing::default(), &d.root(), &Silent).unwrap();
    assert!(!d.api().ping());
    drop(guard);
    assert!(d.api().ping(), "the dropped guard started Docker again");
    svc.stop(&Silent).unwrap();
}
