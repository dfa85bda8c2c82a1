//! Errors of the `docker` module. Each variant names the file, socket or
//! command involved and its message says what the user can do about it.

use std::path::PathBuf;

/// Result alias for the `docker` module.
pub type Result<T, E = DockerError> = std::result::Result<T, E>;

/// Everything that can go wrong while inspecting or configuring Docker.
#[derive(Debug, thiserror::Error)]
pub enum DockerError {
    /// A file could not be read.
    #[error("cannot read {path}: {source}; check that it exists and is readable by root")]
    Read { path: PathBuf, source: std::io::Error },
    /// A file could not be written or replaced (`util::atomic`).
    #[error(transparent)]
    Write(#[from] crate::util::atomic::WriteError),
    /// daemon.json is not strict JSON.
    #[error("{path} is not valid JSON ({source}); daemon.json allows no comments or trailing commas, fix the file first")]
    Json { path: PathBuf, source: serde_json::Error },
    /// daemon.json holds something else than a JSON object.
    #[error("{path} must contain a JSON object at top level; fix the file first")]
    NotObject { path: PathBuf },
    /// The Docker socket could not be reached.
    #[error(
        "cannot connect to the Docker daemon at {socket}: {source}; is dockerd running? set DOCKER_HOST=unix://PATH if it listens elsewhere"
    )]
    Connect { socket: PathBuf, source: std::io::Error },
    /// Talking HTTP over the socket failed.
    #[error("request {endpoint} on {socket} failed: {reason}")]
    Http { socket: PathBuf, endpoint: String, reason: String },
    /// The daemon answered with a non-2xx status.
    #[error("Docker API {endpoint} returned HTTP {status}: {body}")]
    Status { endpoint: String, status: u16, body: String },
    /// The daemon's answer did not have the expected shape.
    #[error("cannot decode the answer of Docker API {endpoint}: {source}")]
    Decode { endpoint: String, source: serde_json::Error },
    /// A helper command could not be run.
    #[error("cannot run `{command}`: {source}; is it installed and in PATH?")]
    Command { command: String, source: std::io::Error },
    /// A helper command printed something we do not understand.
    #[error("unexpected output of `{command}`: `{}`", output.escape_debug())]
    CommandOutput { command: String, output: String },
    /// An fstab line we were asked to add conflicts with an existing one.
    #[error("{path} already mounts something on {mount_point} (line {line}); remove or fix that line first")]
    FstabConflict { path: PathBuf, mount_point: String, line: usize },
    /// A user's rootless Docker could not be found.
    #[error("rootless Docker of user {user}: {reason}")]
    Rootless { user: String, reason: String },
    /// The host runs several daemons and the command did not say which.
    #[error("this host has more than one Docker daemon; choose one with {choices}")]
    Ambiguous { choices: String },
    /// The containerd image store keeps Docker's images outside the data-root.
    #[error("{0}")]
    ImagesOutsideDataRoot(Box<ImagesOutside>),
}

/// Why a backup or move is refused: the images are in containerd's root,
/// outside the data-root.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "Docker uses the containerd image store (from {evidence}): its images, layers and containers' writable layers are in \
     containerd's root {} ({bytes} bytes), outside the data-root {}{}. dockroot cannot {operation} that store yet, and doing it \
     for the data-root alone would lose them. Keep {} with its own copy (stop docker and containerd first), or `docker save` \
     the images you need",
    root.display(),
    data_root.display(),
    if others.is_empty() { String::new() } else { format!("; namespaces other than Docker's share it: {}", others.join(", ")) },
    root.display()
)]
pub struct ImagesOutside {
    pub operation: &'static str,
    pub data_root: PathBuf,
    pub root: PathBuf,
    pub bytes: u64,
    /// How the image store was found.
    pub evidence: String,
    /// containerd namespaces other than Docker's.
    pub others: Vec<String>,
}
