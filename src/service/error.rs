//! Errors of the `service` module. Stopping Docker is the step users fear
//! most, so every message says what is still running and what to do next.

use crate::docker::DockerError;
use std::fmt;
use std::path::PathBuf;

/// Result alias for the `service` module.
pub type Result<T, E = ServiceError> = std::result::Result<T, E>;

/// Something that still uses the data-root after a stop.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Leftover {
    /// A dockerd process for this data-root.
    Daemon { pid: u32, argv: Vec<String> },
    /// A process with an open file or its cwd below the data-root.
    Holder { pid: u32, comm: String, path: PathBuf },
    /// A mount at or below the data-root.
    Mount { mount_point: PathBuf, fstype: String },
}

impl fmt::Display for Leftover {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Daemon { pid, argv } => {
                write!(f, "dockerd pid {pid} ({}) is still running: stop it first", argv.join(" "))
            }
            Self::Holder { pid, comm, path } if comm.starts_with("containerd-shim") => write!(
                f,
                "{comm} pid {pid} holds {}: a container is still running (live-restore?); \
                 `docker stop` it or disable live-restore before stopping dockerd",
                path.display()
            ),
            Self::Holder { pid, comm, path } => {
                write!(f, "process {pid} ({comm}) uses {}: stop or move it away", path.display())
            }
            Self::Mount { mount_point, fstype } if fstype == "overlay" => write!(
                f,
                "overlay mount on {} is still active: a container is still running (live-restore keeps \
                 containers across a daemon stop); start Docker, `docker stop` it, and retry, or `umount` it",
                mount_point.display()
            ),
            Self::Mount { mount_point, fstype } => {
                write!(f, "{fstype} mount on {} is still active: stop the container using it or `umount` it", mount_point.display())
            }
        }
    }
}

fn list(items: &[Leftover]) -> String {
    items.iter().map(|l| format!("\n  - {l}")).collect()
}

fn journal_tail(journal: &str) -> String {
    if journal.trim().is_empty() {
        return String::new();
    }
    let lines: String = journal.trim_end().lines().map(|l| format!("\n  | {l}")).collect();
    format!(". Its last log lines:{lines}")
}

fn join_pids(p: &[u32]) -> String {
    p.iter().map(u32::to_string).collect::<Vec<_>>().join(", ")
}

/// Everything that can go wrong while stopping, starting or checking Docker.
#[derive(Debug, thiserror::Error)]
pub enum ServiceError {
    /// A service command could not be run at all.
    #[error("cannot run `{command}`: {source}; is it installed? choose another --service mode if not")]
    Command { command: String, source: std::io::Error },
    /// A service command exited with failure.
    #[error("`{command}` failed ({}): {stderr}", code.map_or("killed by a signal".into(), |c| format!("exit code {c}")))]
    CommandFailed { command: String, code: Option<i32>, stderr: String },
    /// A service did not reach the stopped state in time.
    #[error(
        "{what} still not stopped after {secs}s (state: {state}); look at `journalctl -u docker` or the daemon log, stop it by hand and retry"
    )]
    StopTimeout { what: String, secs: u64, state: String },
    /// The daemon was started but its socket never answered.
    #[error("{what} was started but {} did not answer /_ping within {secs}s; check the daemon log{}", socket.display(), log.as_ref().map(|l| format!(" ({})", l.display())).unwrap_or_default())]
    StartTimeout { what: String, socket: PathBuf, secs: u64, log: Option<PathBuf> },
    /// systemd could not start docker.service, even after a retry.
    #[error("{unit} did not start: {reason}; fix the cause shown by `journalctl -u {unit}`, then run `systemctl start {unit}`{}", journal_tail(.journal))]
    StartFailed { unit: String, reason: String, journal: String },
    /// The pidfile exists but could not be read or parsed.
    #[error("cannot use pidfile {}: {reason}; pass the pidfile dockerd was started with (--pidfile) or use another --service mode", path.display())]
    Pidfile { path: PathBuf, reason: String },
    /// A /proc file of the daemon could not be read.
    #[error("cannot read {} of dockerd pid {pid}: {source}; did it exit meanwhile?", path.display())]
    Proc { pid: u32, path: PathBuf, source: std::io::Error },
    /// Sending a signal failed.
    #[error("cannot send SIGTERM to dockerd pid {pid}: {source}")]
    Signal { pid: u32, source: nix::Error },
    /// The daemon ignored SIGTERM for too long.
    #[error(
        "dockerd pid {pid} did not exit within {secs}s after SIGTERM; it may be stopping containers or be hung (see `ps -o stat= -p {pid}`): check its log, `docker stop` the containers, or kill it yourself (dockroot never sends SIGKILL)"
    )]
    ExitTimeout { pid: u32, secs: u64 },
    /// `start` was called without a recorded command line.
    #[error("no recorded dockerd command line for pidfile {}; dockroot can only restart a daemon it stopped (or one recorded in its journal)", pidfile.display())]
    NothingRecorded { pidfile: PathBuf },
    /// The daemon could not be started.
    #[error("cannot start `{program}`: {source}; start Docker by hand with the same command line")]
    Spawn { program: String, source: std::io::Error },
    /// The daemon log could not be opened.
    #[error("cannot open daemon log {}: {source}", path.display())]
    Log { path: PathBuf, source: std::io::Error },
    /// `none` mode found a daemon using the data-root.
    #[error("dockerd (pid {}) is using {}; stop Docker first, or let dockroot stop it with --service auto|systemd|sysv|openrc|pidfile:PATH", join_pids(.pids), data_root.display())]
    DaemonRunning { data_root: PathBuf, pids: Vec<u32> },
    /// After a stop, something still uses the data-root.
    #[error("{} is still in use after stopping Docker:{}", data_root.display(), list(.leftovers))]
    NotStopped { data_root: PathBuf, leftovers: Vec<Leftover> },
    /// Shims of Docker's containers still run after containerd stopped.
    #[error(
        "containerd-shim processes of Docker's namespace on {} still run {secs}s after containerd stopped (pids {}): a container is still running; look at `ps -o pid,args -p {}`, stop the container or the shim, and retry",
        address.display(), join_pids(.pids), join_pids(.pids)
    )]
    ShimsRemain { address: PathBuf, secs: u64, pids: Vec<u32> },
    /// Pidfile mode cannot restart the system containerd.
    #[error(
        "Docker keeps its images in the system containerd's root {}, and containerd must stop with Docker, but dockroot cannot tell what started containerd beside {manager}, so it could not start it again; stop Docker and containerd yourself and retry with --service none (backup), or use --service systemd|sysv|openrc if that manager runs both",
        root.display()
    )]
    ContainerdUnmanaged { manager: String, root: PathBuf },
    /// live-restore would keep containers running across the stop.
    #[error("live-restore is enabled in {} and {running} container(s) are running; they would keep using the data-root after dockerd stops. Stop them (`docker stop $(docker ps -q)`) or set \"live-restore\": false and reload dockerd, then retry", daemon_json.display())]
    LiveRestore { daemon_json: PathBuf, running: u64 },
    /// live-restore, as the running daemon reports it, would keep containers running across the stop.
    #[error(
        "dockerd runs with live-restore and {running} container(s) are running; they would keep using the data-root after dockerd stops. Stop them (`docker stop $(docker ps -q)`) or turn live-restore off and reload dockerd, then retry"
    )]
    LiveRestoreRunning { running: u64 },
    /// An unknown `--service` value.
    #[error("unknown service manager `{}`; use auto, systemd, sysv, openrc, pidfile:PATH or none", value.escape_debug())]
    UnknownKind { value: String },
    /// The user's `--pre-stop` command failed: nothing was stopped.
    #[error(
        "the --pre-stop hook `{command}` failed ({status}), so Docker was not stopped and nothing was changed; fix the command or drop --pre-stop, then retry. Its last output:\n  | {output}"
    )]
    PreStopFailed { command: String, status: String, output: String },
    /// Talking to Docker failed.
    #[error(transparent)]
    Docker(#[from] DockerError),
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Regression: a failed start printed `(exit code Some(1))`.
    #[test]
    fn command_failure_shows_the_code_not_an_option() {
        let e = ServiceError::CommandFailed { command: "systemctl start docker".into(), code: Some(1), stderr: "boom".into() };
        assert_eq!(e.to_string(), "`systemctl start docker` failed (exit code 1): boom");
        let e = ServiceError::CommandFailed { command: "x".into(), code: None, stderr: String::new() };
        assert!(e.to_string().contains("killed by a signal"), "{e}");
    }
}
