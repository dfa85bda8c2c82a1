//! A small, typed, read-only client for the Docker Engine API over its unix
//! socket. dockroot uses it to find the data-root of a running daemon, to
//! check that no container would survive a stop (live-restore), and to take
//! the before/after [`super::snapshot::DockerState`] that proves a move kept
//! every image, container and volume.

use super::error::{DockerError, Result};
use super::http;
use serde::{Deserialize, Serialize, de::DeserializeOwned};
use std::path::{Path, PathBuf};
use std::time::Duration;

/// The socket dockerd listens on by default.
pub(crate) const DEFAULT_SOCKET: &str = "/var/run/docker.sock";

/// Part of `GET /info`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct Info {
    /// The data-root the daemon is using.
    pub docker_root_dir: PathBuf,
    /// The storage driver, e.g. `overlay2`.
    pub driver: String,
    /// The engine version, e.g. `20.10.24+dfsg1`.
    pub server_version: String,
    /// Number of containers (all states).
    pub containers: u64,
    /// Number of running containers.
    pub containers_running: u64,
    /// Number of images.
    pub images: u64,
    /// `[key, value]` pairs; `["driver-type", "io.containerd.snapshotter.v1"]`
    /// marks the containerd image store (the `Driver` name does not).
    #[serde(default, deserialize_with = "null_as_empty")]
    pub driver_status: Vec<Vec<String>>,
    /// The containerd serving the daemon (API 1.46+, Docker 27+).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub containerd: Option<InfoContainerd>,
    /// `name=seccomp,profile=default`, ...; `name=userns` when the daemon remaps.
    #[serde(default, deserialize_with = "null_as_empty")]
    pub security_options: Vec<String>,
}

impl Info {
    /// Whether the daemon runs with userns-remap.
    pub fn remapped(&self) -> bool {
        self.security_options.iter().any(|o| o.split(',').any(|kv| kv == "name=userns"))
    }

    /// The data-root: `DockerRootDir`, or its parent when the daemon remaps
    /// (it then reports its `<uid>.<gid>` subtree).
    pub fn data_root(&self) -> PathBuf {
        super::userns::data_root_of(&self.docker_root_dir, self.remapped())
    }
}

impl Info {
    /// The one "Docker runs on this root" check: the daemon reports `root`
    /// as its data-root (DockerRootDir, or its parent for a userns-remapped
    /// engine's subtree; both with symlinks resolved), or the mismatch in words.
    pub(crate) fn check_root(&self, root: &Path) -> std::result::Result<(), String> {
        let canon = |p: &Path| std::fs::canonicalize(p).unwrap_or_else(|_| p.to_path_buf());
        if canon(&self.data_root()) == canon(root) {
            return Ok(());
        }
        Err(format!("Docker reports DockerRootDir {} instead of {}", self.docker_root_dir.display(), root.display()))
    }
}

/// `Containerd` of `GET /info`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct InfoContainerd {
    /// containerd's socket.
    pub address: String,
}

/// One entry of `GET /images/json`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Image {
    /// `sha256:...`
    #[serde(rename = "Id")]
    pub id: String,
    /// `name:tag` references; empty for dangling images.
    #[serde(rename = "RepoTags", default, deserialize_with = "null_as_empty")]
    pub repo_tags: Vec<String>,
}

/// One container, from `GET /containers/json` plus its restart policy.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Container {
    /// Full container id.
    #[serde(rename = "Id")]
    pub id: String,
    /// Names, each with a leading `/`.
    #[serde(rename = "Names", default, deserialize_with = "null_as_empty")]
    pub names: Vec<String>,
    /// The image reference the container was created from.
    #[serde(rename = "Image")]
    pub image: String,
    /// `created`, `running`, `exited`, ...
    #[serde(rename = "State")]
    pub state: String,
    /// Restart policy name (`no`, `always`, ...), from `/containers/{id}/json`.
    #[serde(default)]
    pub restart_policy: String,
}

/// One volume of `GET /volumes`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct Volume {
    /// Volume name.
    pub name: String,
    /// Volume driver, normally `local`.
    pub driver: String,
    /// Where the volume's data lives (under the data-root for `local`).
    pub mountpoint: PathBuf,
}

/// One of `GET /version`'s `Components`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub(crate) struct Component {
    pub name: String,
    pub version: String,
}

#[derive(Deserialize)]
struct VersionInfo {
    #[serde(rename = "Components", default, deserialize_with = "null_as_empty")]
    components: Vec<Component>,
}

#[derive(Deserialize)]
struct VolumeList {
    #[serde(rename = "Volumes", default, deserialize_with = "null_as_empty")]
    volumes: Vec<Volume>,
}

#[derive(Deserialize)]
struct Inspect {
    #[serde(rename = "HostConfig")]
    host_config: Option<HostConfig>,
}

#[derive(Deserialize)]
struct HostConfig {
    #[serde(rename = "RestartPolicy")]
    restart_policy: Option<RestartPolicy>,
}

#[derive(Deserialize)]
struct RestartPolicy {
    #[serde(rename = "Name", default)]
    name: String,
}

fn null_as_empty<'de, D, T>(d: D) -> std::result::Result<Vec<T>, D::Error>
where
    D: serde::Deserializer<'de>,
    T: Deserialize<'de>,
{
    Ok(Option::<Vec<T>>::deserialize(d)?.unwrap_or_default())
}

/// A client bound to one daemon socket.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DockerApi {
    /// The unix socket path.
    pub socket: PathBuf,
    /// Per-request I/O timeout.
    pub timeout: Duration,
}

impl DockerApi {
    /// A client for `socket` with a 10 s timeout.
    pub fn new(socket: impl Into<PathBuf>) -> Self {
        Self { socket: socket.into(), timeout: Duration::from_secs(10) }
    }

    /// The client the docker CLI would use: `DOCKER_HOST=unix://...` if set
    /// (other schemes are ignored), else [`DEFAULT_SOCKET`].
    pub(crate) fn from_env() -> Self {
        let host = std::env::var("DOCKER_HOST").ok();
        Self::new(socket_from_host(host.as_deref()))
    }

    /// `GET /_ping`: true when the daemon answers `OK`.
    pub fn ping(&self) -> bool {
        matches!(self.raw("/_ping"), Ok(b) if b == b"OK")
    }

    /// `GET /info`.
    pub fn info(&self) -> Result<Info> {
        self.get_json("/info")
    }

    /// `GET /version`: the engine's components (`Engine`, `containerd`, `runc`, ...).
    pub(crate) fn components(&self) -> Result<Vec<Component>> {
        Ok(self.get_json::<VersionInfo>("/version")?.components)
    }

    /// `GET /images/json?all=1`.
    pub fn images(&self) -> Result<Vec<Image>> {
        self.get_json("/images/json?all=1")
    }

    /// `GET /containers/json?all=1`, with each container's restart policy.
    pub fn containers(&self) -> Result<Vec<Container>> {
        let mut list: Vec<Container> = self.get_json("/containers/json?all=1")?;
        for c in &mut list {
            let inspect: Inspect = self.get_json(&format!("/containers/{}/json", c.id))?;
            c.restart_policy = inspect.host_config.and_then(|h| h.restart_policy).map(|r| r.name).unwrap_or_default();
        }
        Ok(list)
    }

    /// `GET /volumes`.
    pub fn volumes(&self) -> Result<Vec<Volume>> {
        Ok(self.get_json::<VolumeList>("/volumes")?.volumes)
    }

    /// GETs `endpoint` and decodes its JSON body.
    pub(crate) fn get_json<T: DeserializeOwned>(&self, endpoint: &str) -> Result<T> {
        let body = self.raw(endpoint)?;
        serde_json::from_slice(&body).map_err(|source| DockerError::Decode { endpoint: endpoint.into(), source })
    }

    /// GETs `endpoint` and returns the body of a 2xx answer.
    pub(crate) fn raw(&self, endpoint: &str) -> Result<Vec<u8>> {
        self.send("GET", endpoint, None, self.timeout)
    }

    /// Sends `method endpoint` (with a JSON body) and returns the body of a 2xx answer.
    pub(crate) fn send(&self, method: &str, endpoint: &str, json: Option<&[u8]>, timeout: Duration) -> Result<Vec<u8>> {
        let resp = http::request(&self.socket, method, endpoint, json, timeout).map_err(|e| self.io_error(endpoint, e))?;
        if !(200..300).contains(&resp.status) {
            let body = String::from_utf8_lossy(&resp.body).trim().to_string();
            return Err(DockerError::Status { endpoint: endpoint.into(), status: resp.status, body });
        }
        Ok(resp.body)
    }

    fn io_error(&self, endpoint: &str, e: std::io::Error) -> DockerError {
        use std::io::ErrorKind::*;
        match e.kind() {
            NotFound | ConnectionRefused | PermissionDenied => DockerError::Connect { socket: self.socket.clone(), source: e },
            _ => DockerError::Http { socket: self.socket.clone(), endpoint: endpoint.into(), reason: e.to_string() },
        }
    }
}

/// The socket path named by a `DOCKER_HOST` value, or the default.
pub(crate) fn socket_from_host(host: Option<&str>) -> PathBuf {
    match host.and_then(|h| h.strip_prefix("unix://")) {
        Some(p) if !p.is_empty() => PathBuf::from(p),
        _ => PathBuf::from(DEFAULT_SOCKET),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn docker_host_parsing() {
        assert_eq!(socket_from_host(Some("unix:///tmp/d.sock")), PathBuf::from("/tmp/d.sock"));
        assert_eq!(socket_from_host(Some("tcp://1.2.3.4:2375")), PathBuf::from(DEFAULT_SOCKET));
        assert_eq!(socket_from_host(None), PathBuf::from(DEFAULT_SOCKET));
    }

    #[test]
    fn decodes_nulls() {
        let i: Vec<Image> = serde_json::from_str(r#"[{"Id":"sha256:1","RepoTags":null,"Size":3}]"#).unwrap();
        assert!(i[0].repo_tags.is_empty());
        let v: VolumeList = serde_json::from_str(r#"{"Volumes":null,"Warnings":null}"#).unwrap();
        assert!(v.volumes.is_empty());
    }

    #[test]
    fn missing_socket_is_connect_error() {
        let api = DockerApi::new("/nonexistent/dockroot.sock");
        assert!(!api.ping());
        let e = api.info().unwrap_err();
        assert!(matches!(e, DockerError::Connect { .. }), "{e}");
        assert!(e.to_string().contains("/nonexistent/dockroot.sock"));
    }
}
