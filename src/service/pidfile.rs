//! Docker started by hand or by a custom supervisor, known only by its
//! pidfile. To restart it exactly as it was, we record its argv, environment
//! and cwd from /proc before sending SIGTERM. The record is serde-serialisable
//! so a later dockroot process (rollback after a crash) can restart it.
//! We never SIGKILL: a dockerd killed mid-shutdown can corrupt its metadata.

use super::error::{Result, ServiceError};
use super::procscan;
use super::wait::Timing;
use super::{ServiceKind, ServiceManager};
use crate::docker::api::{DEFAULT_SOCKET, DockerApi};
use crate::docker::socket;
use crate::progress::Progress;
use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;
use serde::{Deserialize, Serialize};
use std::fs::OpenOptions;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::Mutex;

/// How a dockerd was started, enough to start it again.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DaemonCommand {
    /// Full argv, argv[0] first.
    pub argv: Vec<String>,
    /// Environment as `(name, value)` pairs.
    pub env: Vec<(String, String)>,
    /// Working directory.
    pub cwd: PathBuf,
    /// Where the restarted daemon's stdout/stderr are appended.
    pub log: PathBuf,
}

impl DaemonCommand {
    /// Reads argv, environ and cwd of `pid` from `proc_root`.
    pub fn capture(proc_root: &Path, pid: u32, log: PathBuf) -> Result<Self> {
        let dir = proc_root.join(pid.to_string());
        let read = |name: &str| {
            let path = dir.join(name);
            std::fs::read(&path).map_err(|source| ServiceError::Proc { pid, path, source })
        };
        let argv = procscan::split_nul(&read("cmdline")?);
        let env = procscan::split_nul(&read("environ")?)
            .into_iter()
            .filter_map(|kv| kv.split_once('=').map(|(k, v)| (k.to_string(), v.to_string())))
            .collect();
        let cwd_path = dir.join("cwd");
        let cwd = std::fs::read_link(&cwd_path).map_err(|source| ServiceError::Proc { pid, path: cwd_path, source })?;
        Ok(Self { argv, env, cwd, log })
    }

    /// The unix socket this daemon listens on (`-H`/`--host unix://...`),
    /// or the default socket.
    pub fn socket(&self) -> PathBuf {
        socket::hosts_in_argv(&self.argv).iter().find_map(|h| socket::unix_path(h)).unwrap_or_else(|| DEFAULT_SOCKET.into())
    }

    /// The pidfile this daemon writes (`-p`/`--pidfile`), if given.
    #[cfg(test)]
    fn pidfile(&self) -> Option<PathBuf> {
        crate::docker::unit::flag_value(&self.argv, &["--pidfile", "-p"]).map(PathBuf::from)
    }

    /// Starts the command detached: new session, stdin from /dev/null,
    /// stdout/stderr appended to [`DaemonCommand::log`]. Returns the pid.
    pub fn spawn(&self) -> Result<u32> {
        let program = self.argv.first().cloned().unwrap_or_default();
        let log_err = |source| ServiceError::Log { path: self.log.clone(), source };
        let log = OpenOptions::new().create(true).append(true).open(&self.log).map_err(log_err)?;
        let log2 = log.try_clone().map_err(log_err)?;
        let mut cmd = Command::new(&program);
        cmd.args(&self.argv[1.min(self.argv.len())..])
            .env_clear()
            .envs(self.env.iter().map(|(k, v)| (k, v)))
            .current_dir(&self.cwd)
            .stdin(Stdio::null())
            .stdout(log)
            .stderr(log2);
        crate::sys::process::spawn_in_new_session(&mut cmd);
        let mut child = cmd.spawn().map_err(|source| ServiceError::Spawn { program, source })?;
        let pid = child.id();
        // Reap it if it exits while we run, so it does not linger as a zombie.
        std::thread::spawn(move || child.wait());
        Ok(pid)
    }
}

/// Docker identified by a pidfile.
pub struct PidfileService {
    pidfile: PathBuf,
    proc_root: PathBuf,
    timing: Timing,
    recorded: Mutex<Option<DaemonCommand>>,
}

impl PidfileService {
    /// A manager for the daemon whose pid is in `pidfile`.
    pub fn new(pidfile: impl Into<PathBuf>, timing: Timing) -> Self {
        Self { pidfile: pidfile.into(), proc_root: "/proc".into(), timing, recorded: Mutex::new(None) }
    }

    /// A manager that can start `cmd` without having stopped it (rollback).
    pub fn with_command(pidfile: impl Into<PathBuf>, timing: Timing, cmd: DaemonCommand) -> Self {
        let s = Self::new(pidfile, timing);
        *s.recorded.lock().unwrap_or_else(|e| e.into_inner()) = Some(cmd);
        s
    }

    /// The command line recorded by the last [`ServiceManager::stop`]; persist it.
    pub fn recorded(&self) -> Option<DaemonCommand> {
        self.recorded.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }

    /// The default log file for a restarted daemon: `<pidfile>.dockroot.log`.
    pub(crate) fn log_path(&self) -> PathBuf {
        let mut s = self.pidfile.clone().into_os_string();
        s.push(".dockroot.log");
        s.into()
    }

    /// The live dockerd pid from the pidfile; `None` if the file is missing,
    /// or names a dead process or something that is not dockerd (stale).
    pub(crate) fn live_pid(&self) -> Result<Option<u32>> {
        let text = match std::fs::read_to_string(&self.pidfile) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => {
                return Err(ServiceError::Pidfile { path: self.pidfile.clone(), reason: e.to_string() });
            }
        };
        let pid: u32 = text.trim().parse().map_err(|_| ServiceError::Pidfile {
            path: self.pidfile.clone(),
            reason: format!("it contains `{}`, not a pid", text.trim().escape_debug()),
        })?;
        let is_dockerd = procscan::read_cmdline(&self.proc_root, pid).is_ok_and(|a| procscan::is_dockerd(&a));
        Ok((is_dockerd && procscan::alive(&self.proc_root, pid)).then_some(pid))
    }
}

impl ServiceManager for PidfileService {
    fn name(&self) -> String {
        format!("pidfile:{}", self.pidfile.display())
    }

    /// Records the command line, sends SIGTERM and waits for the exit.
    /// Stopping a daemon that is not running succeeds and records nothing.
    fn stop(&self, log: &dyn Progress) -> Result<()> {
        let Some(pid) = self.live_pid()? else {
            log.log(&format!("no live dockerd in {}: nothing to stop", self.pidfile.display()));
            return Ok(());
        };
        let cmd = DaemonCommand::capture(&self.proc_root, pid, self.log_path())?;
        *self.recorded.lock().unwrap_or_else(|e| e.into_inner()) = Some(cmd);
        log.log(&format!("send SIGTERM to dockerd pid {pid} (from {})", self.pidfile.display()));
        kill(Pid::from_raw(pid as i32), Signal::SIGTERM).map_err(|source| ServiceError::Signal { pid, source })?;
        if self.timing.wait_until(|| !procscan::alive(&self.proc_root, pid)) {
            return Ok(());
        }
        Err(ServiceError::ExitTimeout { pid, secs: self.timing.secs() })
    }

    /// Captures the running daemon's command line (nothing when none runs).
    fn remember(&self) -> Result<()> {
        if let Some(pid) = self.live_pid()? {
            let cmd = DaemonCommand::capture(&self.proc_root, pid, self.log_path())?;
            *self.recorded.lock().unwrap_or_else(|e| e.into_inner()) = Some(cmd);
        }
        Ok(())
    }

    /// Starts the recorded command and waits until its socket answers.
    fn start(&self, log: &dyn Progress) -> Result<()> {
        let cmd = self.recorded().ok_or_else(|| ServiceError::NothingRecorded { pidfile: self.pidfile.clone() })?;
        log.log(&format!("run: {} (output appended to {})", cmd.argv.join(" "), cmd.log.display()));
        cmd.spawn()?;
        let api = DockerApi::new(cmd.socket());
        if self.timing.wait_until(|| api.ping()) {
            return Ok(());
        }
        Err(ServiceError::StartTimeout { what: cmd.argv.join(" "), socket: api.socket, secs: self.timing.secs(), log: Some(cmd.log) })
    }

    fn kind(&self) -> ServiceKind {
        ServiceKind::Pidfile(self.pidfile.clone())
    }

    fn recorded_command(&self) -> Option<DaemonCommand> {
        self.recorded()
    }

    fn is_running(&self) -> Result<bool> {
        Ok(self.live_pid()?.is_some())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::progress::Silent;

    fn cmd(argv: &[&str]) -> DaemonCommand {
        DaemonCommand { argv: argv.iter().map(|s| s.to_string()).collect(), env: vec![], cwd: "/".into(), log: "/l".into() }
    }

    #[test]
    fn socket_and_pidfile_from_argv() {
        let c = cmd(&["dockerd", "-H", "tcp://0.0.0.0:2375", "--host=unix:///run/d.sock", "--pidfile", "/run/d.pid"]);
        assert_eq!(c.socket(), PathBuf::from("/run/d.sock"));
        assert_eq!(c.pidfile(), Some(PathBuf::from("/run/d.pid")));
        assert_eq!(cmd(&["dockerd"]).socket(), PathBuf::from("/var/run/docker.sock"));
    }

    #[test]
    fn record_round_trips_through_json() {
        let mut c = cmd(&["dockerd", "--data-root", "/a b"]);
        c.env.push(("PATH".into(), "/usr/bin".into()));
        let j = serde_json::to_string(&c).unwrap();
        assert_eq!(serde_json::from_str::<DaemonCommand>(&j).unwrap(), c);
    }

    #[test]
    fn pidfile_states() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("docker.pid");
        let s = PidfileService::new(&p, Timing::default());
        assert_eq!(s.live_pid().unwrap(), None);
        s.stop(&Silent).unwrap();
        assert!(matches!(s.start(&Silent), Err(ServiceError::NothingRecorded { .. })));
        std::fs::write(&p, "garbage").unwrap();
        assert!(s.live_pid().unwrap_err().to_string().contains("not a pid"));
        // Our own pid is alive but not dockerd: a stale pidfile.
        std::fs::write(&p, std::process::id().to_string()).unwrap();
        assert_eq!(s.live_pid().unwrap(), None);
        assert!(s.log_path().to_string_lossy().ends_with("docker.pid.dockroot.log"));
    }

    #[test]
    fn spawn_detaches_and_logs() {
        let d = tempfile::tempdir().unwrap();
        let log = d.path().join("log");
        let c = DaemonCommand {
            argv: vec!["/bin/sh".into(), "-c".into(), "echo $FOO; pwd".into()],
            env: vec![("FOO".into(), "bar".into())],
            cwd: d.path().into(),
            log: log.clone(),
        };
        c.spawn().unwrap();
        let t = Timing { timeout: std::time::Duration::from_secs(5), poll: std::time::Duration::from_millis(20) };
        assert!(t.wait_until(|| std::fs::read_to_string(&log).is_ok_and(|s| s.lines().count() == 2)));
        let out = std::fs::read_to_string(&log).unwrap();
        assert!(out.starts_with("bar\n"), "{out}");
    }
}
