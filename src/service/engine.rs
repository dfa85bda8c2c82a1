//! Stopping and starting the whole engine (issue 8): with the containerd
//! image store served by the system containerd, images, snapshots and every
//! container's writable layer live in containerd's root, so a copy is only
//! consistent with containerd stopped too. [`WholeEngine`] wraps Docker's
//! manager: it stops containerd after Docker (Docker needs it to stop its
//! containers), waits for Docker's shims to exit, and starts containerd
//! before Docker (dockerd waits for its socket at start).
//!
//! containerd is stopped through the same service manager as Docker:
//! `systemctl` on containerd.service, `service containerd`, `rc-service
//! containerd`. In pidfile mode dockroot does not know what started
//! containerd, so it cannot start it again the same way: it refuses before
//! stopping anything (stop Docker and containerd yourself and use `--service
//! none`, or use the manager that runs containerd). `none` stops nothing
//! and only checks, as for Docker: the stop contract's check of both stores
//! finds a containerd that still runs.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::command::{CommandRunner, SystemRunner, display};
use super::error::{Result, ServiceError};
use super::pidfile::PidfileService;
use super::procscan;
use super::systemd::{all_stopped, parse_is_active};
use super::wait::Timing;
use super::{ServiceKind, ServiceManager};
use crate::docker::api::Info;
use crate::docker::containerd::{self, DOCKER_NAMESPACE, Serving};
use crate::docker::daemon_json::DaemonJson;
use crate::docker::engine::{self, EngineFacts, ImageStore};
use crate::docker::{facts, unit};
use crate::progress::Progress;

/// containerd's systemd unit.
pub(crate) const CONTAINERD_UNIT: &str = "containerd.service";

/// The system containerd that holds Docker's images: stopped after Docker
/// and started before it. Kept in the journal's service record, so a
/// rollback in another process starts it again.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ContainerdRecord {
    /// containerd's socket; Docker's shims carry it in `-address`.
    pub address: PathBuf,
    /// containerd's root (content store, snapshots, metadata).
    pub root: PathBuf,
}

impl ContainerdRecord {
    /// The containerd to stop with Docker: only with the containerd image
    /// store served by the system containerd. With a graph driver containerd
    /// holds no image and keeps running; dockerd's own containerd lives in
    /// the data-root and stops with dockerd.
    pub(crate) fn for_engine(facts: &EngineFacts) -> Option<Self> {
        let c = &facts.containerd;
        (facts.image_store == ImageStore::Containerd && c.serving == Serving::System).then(|| ContainerdRecord {
            address: c.address.clone().unwrap_or_else(|| crate::docker::containerd::SYSTEM_SOCKET.into()),
            root: c.dirs.root.clone(),
        })
    }
}

/// How containerd is stopped and started: the front end of Docker's manager.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Front {
    Systemd,
    /// `service` or `rc-service`.
    Script(&'static str),
    /// pidfile: refused, see the module doc.
    Unknown,
    /// none: nothing is stopped or started.
    Nothing,
}

impl Front {
    fn of(kind: &ServiceKind) -> Self {
        match kind {
            ServiceKind::Systemd => Front::Systemd,
            ServiceKind::Sysv => Front::Script("service"),
            ServiceKind::OpenRc => Front::Script("rc-service"),
            ServiceKind::Pidfile(_) => Front::Unknown,
            ServiceKind::None | ServiceKind::Auto => Front::Nothing,
        }
    }
}

/// Docker's manager plus the system containerd.
pub(crate) struct WholeEngine<R: CommandRunner = SystemRunner> {
    docker: Box<dyn ServiceManager>,
    containerd: ContainerdRecord,
    front: Front,
    runner: R,
    timing: Timing,
    proc_root: PathBuf,
}

impl WholeEngine<SystemRunner> {
    /// Wraps `docker` (already built for its kind).
    pub fn new(docker: Box<dyn ServiceManager>, containerd: ContainerdRecord, timing: Timing) -> Self {
        Self::with_runner(docker, containerd, SystemRunner, timing, "/proc")
    }
}

impl<R: CommandRunner> WholeEngine<R> {
    /// With a given command runner and proc root (tests script them).
    pub(crate) fn with_runner(
        docker: Box<dyn ServiceManager>,
        containerd: ContainerdRecord,
        runner: R,
        timing: Timing,
        proc_root: impl Into<PathBuf>,
    ) -> Self {
        let front = Front::of(&docker.kind());
        Self { docker, containerd, front, runner, timing, proc_root: proc_root.into() }
    }

    fn run(&self, log: &dyn Progress, program: &str, args: &[&str]) -> Result<()> {
        log.log(&format!("run: {}", display(program, args)));
        self.runner.run_ok(program, args).map(drop)
    }

    /// Whether containerd runs, as its manager reports it.
    fn containerd_running(&self) -> Result<bool> {
        Ok(match self.front {
            Front::Systemd => !all_stopped(&parse_is_active(&self.runner.run("systemctl", &["is-active", CONTAINERD_UNIT])?.stdout)),
            Front::Script(p) => self.runner.run(p, &["containerd", "status"])?.success(),
            Front::Unknown | Front::Nothing => false,
        })
    }

    fn stop_containerd(&self, log: &dyn Progress) -> Result<()> {
        match self.front {
            Front::Systemd => self.run(log, "systemctl", &["stop", CONTAINERD_UNIT])?,
            Front::Script(p) => self.run(log, p, &["containerd", "stop"])?,
            Front::Unknown | Front::Nothing => return Ok(()),
        }
        if self.timing.wait_until(|| matches!(self.containerd_running(), Ok(false))) {
            return Ok(());
        }
        Err(ServiceError::StopTimeout { what: self.containerd_name(), secs: self.timing.secs(), state: "running".into() })
    }

    fn start_containerd(&self, log: &dyn Progress) -> Result<()> {
        match self.front {
            Front::Systemd => {
                // As for Docker's units: a start limit hit by earlier failures must not keep it down.
                let _ = self.run(log, "systemctl", &["reset-failed", CONTAINERD_UNIT]);
                self.run(log, "systemctl", &["start", CONTAINERD_UNIT])?;
            }
            Front::Script(p) => self.run(log, p, &["containerd", "start"])?,
            Front::Unknown | Front::Nothing => return Ok(()),
        }
        // dockerd gives up when containerd's socket does not answer soon enough.
        if self.timing.wait_until(|| matches!(self.containerd_running(), Ok(true)) && self.containerd.address.exists()) {
            return Ok(());
        }
        Err(ServiceError::StartTimeout {
            what: self.containerd_name(),
            socket: self.containerd.address.clone(),
            secs: self.timing.secs(),
            log: None,
        })
    }

    fn containerd_name(&self) -> String {
        match self.front {
            Front::Script(p) => format!("{p} containerd"),
            _ => CONTAINERD_UNIT.into(),
        }
    }

    /// Waits until no shim of Docker's namespace on this containerd runs.
    fn wait_shims(&self) -> Result<()> {
        let mut left = Vec::new();
        if self.timing.wait_until(|| {
            left = shims(&self.proc_root, &self.containerd.address);
            left.is_empty()
        }) {
            return Ok(());
        }
        Err(ServiceError::ShimsRemain { address: self.containerd.address.clone(), secs: self.timing.secs(), pids: left })
    }
}

/// Pids of `containerd-shim*` processes of Docker's namespace serving the
/// containerd at `address`. Shims outlive a containerd stop (they are
/// started to survive it); those of other namespaces or other containerds
/// (a private dockerd's own) are not ours to wait for.
pub(crate) fn shims(proc_root: &Path, address: &Path) -> Vec<u32> {
    let addr = address.to_string_lossy();
    procscan::pids(proc_root)
        .into_iter()
        .filter_map(|pid| procscan::process(proc_root, pid))
        .filter(|p| p.comm.starts_with("containerd-shim") && procscan::alive(proc_root, p.pid))
        .filter(|p| flag(&p.argv, "namespace") == Some(DOCKER_NAMESPACE) && flag(&p.argv, "address") == Some(&*addr))
        .map(|p| p.pid)
        .collect()
}

/// The value of `-name`/`--name` (separate or `=`) in a shim's argv.
fn flag<'a>(argv: &'a [String], name: &str) -> Option<&'a str> {
    let (short, long) = (format!("-{name}"), format!("--{name}"));
    argv.iter().enumerate().find_map(|(i, a)| {
        if *a == short || *a == long {
            return argv.get(i + 1).map(String::as_str);
        }
        a.strip_prefix(&short).or_else(|| a.strip_prefix(&long)).and_then(|v| v.strip_prefix('='))
    })
}

impl<R: CommandRunner> ServiceManager for WholeEngine<R> {
    fn name(&self) -> String {
        format!("{} and {}", self.docker.name(), self.containerd_name())
    }

    /// Docker first (it stops its containers through containerd), then
    /// containerd, then the wait for the shims. A containerd that will not
    /// stop gets Docker started again, so a failed stop changes nothing.
    fn stop(&self, log: &dyn Progress) -> Result<()> {
        if self.front == Front::Unknown {
            return Err(ServiceError::ContainerdUnmanaged { manager: self.docker.name(), root: self.containerd.root.clone() });
        }
        self.docker.stop(log)?;
        let stopped = self.stop_containerd(log).and_then(|()| self.wait_shims());
        if let Err(e) = stopped {
            if let Err(again) = self.start(log) {
                log.warn(&format!("could not start Docker again: {again}"));
            }
            return Err(e);
        }
        Ok(())
    }

    fn start(&self, log: &dyn Progress) -> Result<()> {
        self.start_containerd(log)?;
        self.docker.start(log)
    }

    /// Whether Docker runs: what decides if starting again could spawn a
    /// second daemon. containerd alone running means the engine is down.
    fn is_running(&self) -> Result<bool> {
        self.docker.is_running()
    }

    fn kind(&self) -> ServiceKind {
        self.docker.kind()
    }

    fn recorded_command(&self) -> Option<super::pidfile::DaemonCommand> {
        self.docker.recorded_command()
    }

    fn remember(&self) -> Result<()> {
        self.docker.remember()
    }

    fn record(&self) -> super::ServiceRecord {
        super::ServiceRecord { containerd: Some(self.containerd.clone()), ..self.docker.record() }
    }

    fn stores(&self) -> Vec<PathBuf> {
        vec![self.containerd.root.clone()]
    }

    fn stop_rest(&self, log: &dyn Progress) -> Result<()> {
        if self.containerd_running()? {
            self.stop_containerd(log)?;
        }
        self.wait_shims()
    }
}

/// The engine's facts as a plan sees them: dockerd's command line from the
/// pidfile daemon when there is one, else docker.service's ExecStart.
pub(crate) fn engine_facts(service: &ServiceKind, cfg: &DaemonJson, data_root: &Path, info: Option<&Info>, timing: Timing) -> EngineFacts {
    let argv = match service {
        ServiceKind::Pidfile(p) => {
            PidfileService::new(p, timing).live_pid().ok().flatten().and_then(|pid| procscan::read_cmdline(Path::new("/proc"), pid).ok())
        }
        _ => {
            let dirs: Vec<PathBuf> = unit::UNIT_DIRS.iter().map(PathBuf::from).collect();
            unit::exec_start(&unit::load_unit(&dirs, "docker.service")).map(|(argv, _)| argv)
        }
    };
    // Without a daemon, the installed dockerd says whether Docker 29's default applies.
    let version = match info {
        Some(i) => facts::parse_version(&i.server_version, None),
        None => facts::engine_version(Path::new("dockerd")).ok(),
    };
    let major = version.map(|v| v.numbers.0);
    engine::inspect(&engine::EngineProbe {
        data_root,
        cfg,
        info,
        argv: argv.as_deref(),
        engine_major: major,
        system_socket: Path::new(containerd::SYSTEM_SOCKET),
        containerd_config: Path::new(containerd::CONFIG_FILE),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::progress::Silent;
    use crate::service::systemd::tests::{FakeRunner, fast};
    use std::sync::{Arc, Mutex};

    /// Docker's manager, logging into a shared list.
    struct FakeDocker(Arc<Mutex<Vec<String>>>, ServiceKind);

    impl ServiceManager for FakeDocker {
        fn name(&self) -> String {
            "fake".into()
        }
        fn stop(&self, _: &dyn Progress) -> Result<()> {
            self.0.lock().unwrap().push("docker stop".into());
            Ok(())
        }
        fn start(&self, _: &dyn Progress) -> Result<()> {
            self.0.lock().unwrap().push("docker start".into());
            Ok(())
        }
        fn is_running(&self) -> Result<bool> {
            Ok(false)
        }
        fn kind(&self) -> ServiceKind {
            self.1.clone()
        }
    }

    fn rec(dir: &Path) -> ContainerdRecord {
        ContainerdRecord { address: dir.join("containerd.sock"), root: dir.join("root") }
    }

    fn engine(kind: ServiceKind, runner: FakeRunner, dir: &Path) -> (WholeEngine<FakeRunner>, Arc<Mutex<Vec<String>>>) {
        let log = Arc::new(Mutex::new(Vec::new()));
        let docker = Box::new(FakeDocker(log.clone(), kind));
        (WholeEngine::with_runner(docker, rec(dir), runner, fast(), dir.join("proc")), log)
    }

    #[test]
    fn systemd_stops_containerd_after_docker_and_starts_it_before() {
        let d = tempfile::tempdir().unwrap();
        std::fs::write(d.path().join("containerd.sock"), "").unwrap();
        let r = FakeRunner::default();
        r.reply("systemctl is-active containerd.service", 3, "inactive\n");
        r.reply("systemctl is-active containerd.service", 0, "active\n");
        let (e, docker) = engine(ServiceKind::Systemd, r, d.path());
        e.stop(&Silent).unwrap();
        assert_eq!(*docker.lock().unwrap(), ["docker stop"]);
        assert_eq!(e.runner.calls.lock().unwrap()[0], "systemctl stop containerd.service");
        e.start(&Silent).unwrap();
        let calls = e.runner.calls.lock().unwrap().clone();
        let i = calls.iter().position(|c| c == "systemctl start containerd.service").unwrap();
        assert_eq!(calls[i - 1], "systemctl reset-failed containerd.service");
        assert_eq!(*docker.lock().unwrap(), ["docker stop", "docker start"], "containerd is up before Docker starts");
        let rec = e.record();
        assert_eq!(rec.containerd, Some(self::rec(d.path())));
        assert_eq!(e.stores(), [d.path().join("root")]);
    }

    #[test]
    fn init_scripts_and_a_containerd_that_will_not_stop() {
        let d = tempfile::tempdir().unwrap();
        std::fs::write(d.path().join("containerd.sock"), "").unwrap();
        let r = FakeRunner::default();
        r.reply("rc-service containerd status", 0, "started");
        let (e, docker) = engine(ServiceKind::OpenRc, r, d.path());
        let err = e.stop(&Silent).unwrap_err();
        assert!(matches!(err, ServiceError::StopTimeout { ref what, .. } if what == "rc-service containerd"), "{err}");
        assert_eq!(e.runner.calls.lock().unwrap()[0], "rc-service containerd stop");
        // A half-done stop starts Docker again.
        assert_eq!(*docker.lock().unwrap(), ["docker stop", "docker start"]);
    }

    #[test]
    fn pidfile_mode_is_refused_before_anything_stops() {
        let d = tempfile::tempdir().unwrap();
        let (e, docker) = engine(ServiceKind::Pidfile("/run/docker.pid".into()), FakeRunner::default(), d.path());
        let msg = e.stop(&Silent).unwrap_err().to_string();
        assert!(msg.contains("--service none") && msg.contains(&d.path().join("root").display().to_string()), "{msg}");
        assert!(docker.lock().unwrap().is_empty() && e.runner.calls.lock().unwrap().is_empty());
    }

    #[test]
    fn shims_of_dockers_namespace_on_this_containerd_only() {
        let proc = tempfile::tempdir().unwrap();
        let mk = |pid: u32, argv: &[&str]| {
            let dir = proc.path().join(pid.to_string());
            std::fs::create_dir_all(&dir).unwrap();
            std::fs::write(dir.join("comm"), "containerd-shim\n").unwrap();
            std::fs::write(dir.join("cmdline"), argv.join("\0") + "\0").unwrap();
            std::fs::write(dir.join("stat"), format!("{pid} (containerd-shim) S 1")).unwrap();
        };
        let shim = "/usr/bin/containerd-shim-runc-v2";
        mk(10, &[shim, "-namespace", "moby", "-id", "a", "-address", "/run/containerd/containerd.sock"]);
        mk(11, &[shim, "-namespace", "k8s.io", "-id", "b", "-address", "/run/containerd/containerd.sock"]);
        mk(12, &[shim, "-namespace", "moby", "-id", "c", "-address", "/run/docker/containerd/containerd.sock"]);
        mk(13, &[shim, "--namespace=moby", "--address=/run/containerd/containerd.sock"]);
        assert_eq!(shims(proc.path(), Path::new("/run/containerd/containerd.sock")), [10, 13]);
    }
}
