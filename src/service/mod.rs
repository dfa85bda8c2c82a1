//! Stopping and starting the Docker daemon around a copy or move, whatever
//! supervises it: systemd, a SysV or OpenRC init script, a bare pidfile, or
//! nothing (`none`: the user does it and dockroot only checks). After any
//! stop, [`verify::verify_stopped`] proves nothing still uses the data-root.

pub mod command;
pub mod engine;
pub mod error;
pub mod guard;
pub mod hooks;
pub mod initscript;
pub mod none;
pub mod pidfile;
pub mod procscan;
pub mod snap;
pub mod systemd;
pub mod verify;
pub mod wait;

pub use error::{Leftover, ServiceError};
pub use guard::StopGuard;
pub use verify::{check_live_restore, verify_stopped, verify_stopped_all};

use crate::docker::api::DockerApi;
use crate::progress::Progress;
use error::Result;
use pidfile::DaemonCommand;
use serde::{Deserialize, Serialize};
use std::fmt;
use std::path::{Path, PathBuf};
use std::str::FromStr;
use wait::Timing;

/// Something that can stop and start the Docker daemon.
pub trait ServiceManager: Send + Sync {
    /// A short name for messages and the journal (`systemd`, `pidfile:/run/docker.pid`, ...).
    fn name(&self) -> String;
    /// Stops Docker and waits until it is stopped. What it runs (a command,
    /// a signal) is reported to `log` for `-v`.
    fn stop(&self, log: &dyn Progress) -> Result<()>;
    /// Starts Docker and waits until the daemon answers; reports like `stop`.
    fn start(&self, log: &dyn Progress) -> Result<()>;
    /// Whether Docker is running according to this manager.
    fn is_running(&self) -> Result<bool>;
    /// The kind this manager was built from (for the journal).
    fn kind(&self) -> ServiceKind;
    /// The command line recorded by `stop`, for managers that need one to start again.
    fn recorded_command(&self) -> Option<DaemonCommand> {
        None
    }
    /// Records now what starting Docker again will need (a pidfile
    /// daemon's command line), so a journal saved before the stop can
    /// restart it even if dockroot is killed during the stop.
    fn remember(&self) -> Result<()> {
        Ok(())
    }
    /// What a later process needs to rebuild this manager and start Docker again.
    fn record(&self) -> ServiceRecord {
        ServiceRecord { kind: self.kind(), command: self.recorded_command(), containerd: None }
    }
    /// Stores besides the data-root that must be unused once stopped
    /// (containerd's root when it holds Docker's images).
    fn stores(&self) -> Vec<PathBuf> {
        Vec::new()
    }
    /// With Docker already down: stops what else this manager stops with
    /// it (containerd), for an undo that finds it running again.
    fn stop_rest(&self, _log: &dyn Progress) -> Result<()> {
        Ok(())
    }
}

/// A serialisable description of a manager after `stop`, kept in the journal
/// so that a rollback in another process can start Docker again.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ServiceRecord {
    /// The resolved kind (never `Auto`).
    pub kind: ServiceKind,
    /// The dockerd command line, for `pidfile` managers.
    pub command: Option<DaemonCommand>,
    /// The system containerd stopped with Docker (containerd image store);
    /// recorded before the stop, so an undo starts it again, first.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub containerd: Option<engine::ContainerdRecord>,
}

impl ServiceRecord {
    /// Rebuilds the manager, with the recorded command line if any, and
    /// with the recorded containerd.
    pub(crate) fn rebuild(&self, ctx: &ServiceContext) -> Box<dyn ServiceManager> {
        let docker: Box<dyn ServiceManager> = match (&self.kind, &self.command) {
            (ServiceKind::Pidfile(p), Some(cmd)) => {
                hooks::installed().wrap(Box::new(pidfile::PidfileService::with_command(p.clone(), ctx.timing, cmd.clone())))
            }
            (kind, _) => kind.clone().build(ctx),
        };
        self.with_containerd(docker, ctx)
    }

    /// `docker` wrapped to stop and start the recorded containerd too.
    pub(crate) fn with_containerd(&self, docker: Box<dyn ServiceManager>, ctx: &ServiceContext) -> Box<dyn ServiceManager> {
        match &self.containerd {
            Some(c) => Box::new(engine::WholeEngine::new(docker, c.clone(), ctx.timing)),
            None => docker,
        }
    }
}

/// The `--service` choice, as given or as detected.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum ServiceKind {
    /// Detect at run time, see [`detect`].
    Auto,
    /// `systemctl` on docker.socket and docker.service.
    Systemd,
    /// `service docker ...`
    Sysv,
    /// `rc-service docker ...`
    OpenRc,
    /// A daemon known by its pidfile.
    Pidfile(PathBuf),
    /// The snap's `systemctl` unit snap.docker.dockerd.service.
    Snap,
    /// Rootless Docker: `systemctl --user --machine=USER@` on that user's
    /// docker.socket (if any) and docker.service.
    User(String),
    /// Start/stop nothing, only check.
    None,
}

impl FromStr for ServiceKind {
    type Err = ServiceError;

    fn from_str(s: &str) -> Result<Self> {
        Ok(match s {
            "auto" => Self::Auto,
            "systemd" => Self::Systemd,
            "sysv" => Self::Sysv,
            "openrc" => Self::OpenRc,
            "none" => Self::None,
            "snap" => Self::Snap,
            _ => match (s.strip_prefix("pidfile:"), s.strip_prefix("user:")) {
                (Some(p), _) if !p.is_empty() => Self::Pidfile(p.into()),
                (_, Some(u)) if !u.is_empty() => Self::User(u.into()),
                _ => return Err(ServiceError::UnknownKind { value: s.into() }),
            },
        })
    }
}

impl fmt::Display for ServiceKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Auto => f.write_str("auto"),
            Self::Systemd => f.write_str("systemd"),
            Self::Sysv => f.write_str("sysv"),
            Self::OpenRc => f.write_str("openrc"),
            Self::Pidfile(p) => write!(f, "pidfile:{}", p.display()),
            Self::User(u) => write!(f, "user:{u}"),
            Self::None => f.write_str("none"),
            Self::Snap => f.write_str("snap"),
        }
    }
}

/// The default pidfile of dockerd.
pub(crate) const DEFAULT_PIDFILE: &str = "/var/run/docker.pid";

/// Detects how Docker is supervised on the host whose `/` is `root`:
/// systemd if `/run/systemd/system` exists and a docker.service unit does;
/// the snap if only its unit does (both: systemd, and `status` and the
/// operations refuse the ambiguity, see [`crate::docker::layout`]);
/// else OpenRC if `/sbin/openrc-run` or `rc-service` exists; else SysV if
/// `/etc/init.d/docker` exists; else the default pidfile if present; else none.
pub(crate) fn detect(root: &Path) -> ServiceKind {
    let has = |p: &str| root.join(p.trim_start_matches('/')).exists();
    let unit = ["/etc/systemd/system", "/run/systemd/system", "/lib/systemd/system", "/usr/lib/systemd/system"]
        .iter()
        .any(|d| has(&format!("{d}/docker.service")));
    let snap = ["/etc/systemd/system", "/run/systemd/system", "/lib/systemd/system", "/usr/lib/systemd/system"]
        .iter()
        .any(|d| has(&format!("{d}/{}", crate::docker::layout::SNAP_UNIT)));
    if has("/run/systemd/system") && unit {
        ServiceKind::Systemd
    } else if has("/run/systemd/system") && snap {
        ServiceKind::Snap
    } else if ["/sbin/openrc-run", "/sbin/rc-service", "/usr/sbin/rc-service", "/bin/rc-service"].iter().any(|p| has(p)) {
        ServiceKind::OpenRc
    } else if has("/etc/init.d/docker") {
        ServiceKind::Sysv
    } else if has(DEFAULT_PIDFILE) {
        ServiceKind::Pidfile(DEFAULT_PIDFILE.into())
    } else {
        ServiceKind::None
    }
}

/// What a manager needs to know besides its kind.
#[derive(Debug, Clone)]
pub struct ServiceContext {
    /// The data-root being protected (used by `none`).
    pub data_root: PathBuf,
    /// The daemon's API, to wait for it after a start.
    pub api: DockerApi,
    /// Timeouts for stop and start.
    pub timing: Timing,
}

impl ServiceKind {
    /// Resolves `Auto` against this host.
    pub fn resolve(self) -> Self {
        match self {
            Self::Auto => detect(Path::new("/")),
            k => k,
        }
    }

    /// Builds the manager (resolving `Auto` first), with this process's
    /// `--pre-stop`/`--post-start` hooks around it.
    pub fn build(self, ctx: &ServiceContext) -> Box<dyn ServiceManager> {
        hooks::installed().wrap(self.build_bare(ctx))
    }

    fn build_bare(self, ctx: &ServiceContext) -> Box<dyn ServiceManager> {
        use initscript::{Flavor, InitScript};
        match self.resolve() {
            Self::Systemd => Box::new(systemd::Systemd::new(ctx.api.clone(), ctx.timing)),
            Self::Sysv => Box::new(InitScript::new(Flavor::Sysv, ctx.api.clone(), ctx.timing)),
            Self::OpenRc => Box::new(InitScript::new(Flavor::OpenRc, ctx.api.clone(), ctx.timing)),
            Self::Pidfile(p) => Box::new(pidfile::PidfileService::new(p, ctx.timing)),
            Self::Snap => Box::new(snap::Snap::new(ctx.api.clone(), ctx.timing)),
            Self::User(u) => Box::new(systemd::Systemd::user(&u, ctx.api.clone(), ctx.timing)),
            Self::None | Self::Auto => Box::new(none::NoService::new(ctx.data_root.clone())),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parse_and_display() {
        for s in ["auto", "systemd", "sysv", "openrc", "none", "pidfile:/run/d.pid", "snap", "user:alice"] {
            assert_eq!(s.parse::<ServiceKind>().unwrap().to_string(), s);
        }
        assert!("pidfile:".parse::<ServiceKind>().is_err());
        assert!("upstart".parse::<ServiceKind>().unwrap_err().to_string().contains("pidfile:PATH"));
    }

    #[test]
    fn detection_order() {
        let r = tempfile::tempdir().unwrap();
        let mk = |p: &str| {
            let p = r.path().join(p);
            std::fs::create_dir_all(p.parent().unwrap()).unwrap();
            std::fs::write(p, "").unwrap();
        };
        assert_eq!(detect(r.path()), ServiceKind::None);
        mk("var/run/docker.pid");
        assert_eq!(detect(r.path()), ServiceKind::Pidfile(DEFAULT_PIDFILE.into()));
        mk("etc/init.d/docker");
        assert_eq!(detect(r.path()), ServiceKind::Sysv);
        mk("sbin/openrc-run");
        assert_eq!(detect(r.path()), ServiceKind::OpenRc);
        std::fs::create_dir_all(r.path().join("run/systemd/system")).unwrap();
        assert_eq!(detect(r.path()), ServiceKind::OpenRc);
        mk("etc/systemd/system/snap.docker.dockerd.service");
        assert_eq!(detect(r.path()), ServiceKind::Snap);
        mk("lib/systemd/system/docker.service");
        assert_eq!(detect(r.path()), ServiceKind::Systemd);
    }
}

#[cfg(test)]
mod record_tests {
    use super::*;

    #[test]
    fn record_round_trip_rebuilds_pidfile_manager() {
        let cmd = DaemonCommand { argv: vec!["dockerd".into()], env: vec![], cwd: "/".into(), log: "/l".into() };
        let svc = pidfile::PidfileService::with_command("/run/x.pid", Timing::default(), cmd.clone());
        let rec = svc.record();
        assert_eq!(rec.kind, ServiceKind::Pidfile("/run/x.pid".into()));
        let json = serde_json::to_string(&rec).unwrap();
        let back: ServiceRecord = serde_json::from_str(&json).unwrap();
        let ctx = ServiceContext { data_root: "/d".into(), api: DockerApi::new("/x.sock"), timing: Timing::default() };
        let rebuilt = back.rebuild(&ctx);
        assert_eq!(rebuilt.recorded_command(), Some(cmd));
        assert_eq!(none::NoService::new("/d").record().kind, ServiceKind::None);
    }
}
