//! Which unix socket the Docker API is on, and why.
//!
//! Sources, first match wins: `--docker-socket`; `DOCKER_HOST`; the `-H`/
//! `--host` flags of the running dockerd (its argv from /proc, chosen by the
//! caller); `hosts` in daemon.json; `ListenStream=` of docker.socket (drop-ins
//! included); the docker CLI's current context (`DOCKER_CONTEXT` or
//! `currentContext` in `config.json`, whose endpoint is in
//! `contexts/meta/<sha256 of the name>/meta.json`); `/var/run/docker.sock`.
//! Only `unix://` endpoints count: dockroot talks to a local daemon, so a
//! `tcp://` or `fd://` host is passed over for the next source.

use super::api::DEFAULT_SOCKET;
use super::daemon_json::DaemonJson;
use super::unit;
use serde::Serialize;
use sha2::{Digest, Sha256};
use std::path::{Path, PathBuf};

/// Why a socket was chosen.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "kind", rename_all = "kebab-case")]
pub enum SocketSource {
    /// `--docker-socket`.
    Flag,
    /// The `DOCKER_HOST` environment variable.
    DockerHost,
    /// A `-H` flag of the running dockerd.
    RunningDaemon { pid: u32 },
    /// `hosts` in daemon.json.
    DaemonJson { path: PathBuf },
    /// `ListenStream=` of docker.socket.
    SocketUnit { path: PathBuf },
    /// The docker CLI's current context.
    Context { name: String, meta: PathBuf },
    /// Nothing named one.
    Default,
}

impl std::fmt::Display for SocketSource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            SocketSource::Flag => f.write_str("--docker-socket"),
            SocketSource::DockerHost => f.write_str("$DOCKER_HOST"),
            SocketSource::RunningDaemon { pid } => write!(f, "-H of the running dockerd, pid {pid}"),
            SocketSource::DaemonJson { path } => write!(f, "`hosts` in {}", path.display()),
            SocketSource::SocketUnit { path } => write!(f, "ListenStream= in {}", path.display()),
            SocketSource::Context { name, meta } => write!(f, "the docker CLI's context `{name}`, {}", meta.display()),
            SocketSource::Default => f.write_str("the default; nothing else names a socket"),
        }
    }
}

/// The chosen socket.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct DockerSocket {
    pub path: PathBuf,
    pub source: SocketSource,
}

/// Everything discovery looks at; the caller fills it from the host.
#[derive(Debug, Clone, Default)]
pub struct SocketInputs {
    /// `--docker-socket`.
    pub flag: Option<PathBuf>,
    /// `DOCKER_HOST`.
    pub docker_host: Option<String>,
    /// The running dockerd's pid and argv.
    pub daemon: Option<(u32, Vec<String>)>,
    /// daemon.json.
    pub daemon_json: PathBuf,
    /// systemd unit directories, highest priority first.
    pub unit_dirs: Vec<PathBuf>,
    /// The docker CLI's config directory (`$DOCKER_CONFIG` or `~/.docker`).
    pub cli_config: Option<PathBuf>,
    /// `DOCKER_CONTEXT`.
    pub docker_context: Option<String>,
}

/// Walks the sources in order; see the module docs.
pub fn resolve(i: &SocketInputs) -> DockerSocket {
    let found = |path, source| Some(DockerSocket { path, source });
    i.flag
        .clone()
        .and_then(|p| found(p, SocketSource::Flag))
        .or_else(|| unix_path(i.docker_host.as_deref()?).and_then(|p| found(p, SocketSource::DockerHost)))
        .or_else(|| {
            let (pid, argv) = i.daemon.as_ref()?;
            hosts_in_argv(argv).iter().find_map(|h| unix_path(h)).and_then(|p| found(p, SocketSource::RunningDaemon { pid: *pid }))
        })
        .or_else(|| from_daemon_json(&i.daemon_json).and_then(|p| found(p, SocketSource::DaemonJson { path: i.daemon_json.clone() })))
        .or_else(|| from_socket_unit(&i.unit_dirs).and_then(|(p, unit)| found(p, SocketSource::SocketUnit { path: unit })))
        .or_else(|| {
            let (name, meta, p) = from_context(i.cli_config.as_deref()?, i.docker_context.as_deref())?;
            found(p, SocketSource::Context { name, meta })
        })
        .unwrap_or(DockerSocket { path: PathBuf::from(DEFAULT_SOCKET), source: SocketSource::Default })
}

/// The path of a `unix://PATH` host; `None` for other schemes.
pub fn unix_path(host: &str) -> Option<PathBuf> {
    host.strip_prefix("unix://").filter(|p| !p.is_empty()).map(PathBuf::from)
}

/// Every `-H`/`--host` value on a dockerd command line, in order.
pub(crate) fn hosts_in_argv(argv: &[String]) -> Vec<String> {
    let mut out = Vec::new();
    let mut it = argv.iter().skip(1);
    while let Some(a) = it.next() {
        if a == "-H" || a == "--host" {
            out.extend(it.next().cloned());
        } else if let Some(v) = a.strip_prefix("--host=").or_else(|| a.strip_prefix("-H=")) {
            out.push(v.to_string());
        } else if let Some(v) = a.strip_prefix("-H").filter(|v| !v.is_empty() && !v.starts_with('=')) {
            out.push(v.to_string());
        }
    }
    out
}

fn from_daemon_json(path: &Path) -> Option<PathBuf> {
    let cfg = DaemonJson::load(path).ok()?;
    cfg.map().get("hosts")?.as_array()?.iter().filter_map(|h| h.as_str()).find_map(unix_path)
}

/// The last effective `ListenStream=` that is a path (not a port), with its file.
fn from_socket_unit(dirs: &[PathBuf]) -> Option<(PathBuf, PathBuf)> {
    let mut current: Vec<(PathBuf, PathBuf)> = Vec::new();
    for f in unit::load_unit(dirs, "docker.socket") {
        let mut in_socket = false;
        for line in f.text.lines().map(str::trim) {
            if line.starts_with('[') {
                in_socket = line == "[Socket]";
            } else if let Some((k, v)) = line.split_once('=').filter(|_| in_socket)
                && k.trim() == "ListenStream"
            {
                match v.trim() {
                    "" => current.clear(),
                    v if v.starts_with('/') => current.push((PathBuf::from(v), f.path.clone())),
                    _ => {}
                }
            }
        }
    }
    current.into_iter().next()
}

/// The current context's unix endpoint: (name, meta.json, socket).
fn from_context(cli_config: &Path, env_context: Option<&str>) -> Option<(String, PathBuf, PathBuf)> {
    let name = match env_context.filter(|c| !c.is_empty()) {
        Some(c) => c.to_string(),
        None => {
            let cfg: serde_json::Value = serde_json::from_slice(&std::fs::read(cli_config.join("config.json")).ok()?).ok()?;
            cfg.get("currentContext")?.as_str()?.to_string()
        }
    };
    // "default" is DOCKER_HOST or the default socket, both handled elsewhere.
    if name == "default" {
        return None;
    }
    let digest: String = Sha256::digest(name.as_bytes()).iter().map(|b| format!("{b:02x}")).collect();
    let meta = cli_config.join("contexts/meta").join(digest).join("meta.json");
    let v: serde_json::Value = serde_json::from_slice(&std::fs::read(&meta).ok()?).ok()?;
    let host = v.pointer("/Endpoints/docker/Host")?.as_str()?;
    unix_path(host).map(|p| (name, meta, p))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn argv(a: &[&str]) -> Vec<String> {
        a.iter().map(|s| s.to_string()).collect()
    }

    struct Host {
        dir: tempfile::TempDir,
    }

    impl Host {
        fn new() -> Self {
            Self { dir: tempfile::tempdir().unwrap() }
        }
        fn write(&self, rel: &str, text: &str) -> PathBuf {
            let p = self.dir.path().join(rel);
            std::fs::create_dir_all(p.parent().unwrap()).unwrap();
            std::fs::write(&p, text).unwrap();
            p
        }
        fn inputs(&self) -> SocketInputs {
            SocketInputs {
                daemon_json: self.dir.path().join("etc/docker/daemon.json"),
                unit_dirs: vec![self.dir.path().join("etc/systemd/system"), self.dir.path().join("lib/systemd/system")],
                cli_config: Some(self.dir.path().join("root/.docker")),
                ..Default::default()
            }
        }
    }

    #[test]
    fn default_when_nothing_names_one() {
        let h = Host::new();
        let s = resolve(&h.inputs());
        assert_eq!(s, DockerSocket { path: DEFAULT_SOCKET.into(), source: SocketSource::Default });
    }

    #[test]
    fn flag_wins_over_everything() {
        let h = Host::new();
        let mut i = h.inputs();
        i.flag = Some("/f.sock".into());
        i.docker_host = Some("unix:///e.sock".into());
        assert_eq!(resolve(&i), DockerSocket { path: "/f.sock".into(), source: SocketSource::Flag });
    }

    #[test]
    fn docker_host_unix_only() {
        let h = Host::new();
        let mut i = h.inputs();
        i.docker_host = Some("unix:///e.sock".into());
        assert_eq!(resolve(&i).source, SocketSource::DockerHost);
        assert_eq!(resolve(&i).path, PathBuf::from("/e.sock"));
        i.docker_host = Some("tcp://10.0.0.1:2375".into());
        assert_eq!(resolve(&i).source, SocketSource::Default);
    }

    #[test]
    fn running_daemon_host_flags_in_every_spelling() {
        assert_eq!(
            hosts_in_argv(&argv(&["dockerd", "-H", "fd://", "--host=unix:///a.sock", "-Hunix:///b", "--host", "tcp://x", "-H=unix:///c"])),
            ["fd://", "unix:///a.sock", "unix:///b", "tcp://x", "unix:///c"]
        );
        let h = Host::new();
        let mut i = h.inputs();
        i.daemon = Some((42, argv(&["dockerd", "-H", "fd://", "-H", "unix:///run/d.sock"])));
        assert_eq!(resolve(&i), DockerSocket { path: "/run/d.sock".into(), source: SocketSource::RunningDaemon { pid: 42 } });
        // fd:// only (socket activation): fall through to the next sources.
        i.daemon = Some((42, argv(&["dockerd", "-H", "fd://"])));
        assert_eq!(resolve(&i).source, SocketSource::Default);
    }

    #[test]
    fn daemon_json_hosts() {
        let h = Host::new();
        let p = h.write("etc/docker/daemon.json", r#"{"hosts": ["tcp://0.0.0.0:2375", "unix:///run/j.sock"]}"#);
        assert_eq!(resolve(&h.inputs()), DockerSocket { path: "/run/j.sock".into(), source: SocketSource::DaemonJson { path: p } });
    }

    #[test]
    fn socket_unit_listen_stream_with_dropin_reset() {
        let h = Host::new();
        let main = h
            .write("lib/systemd/system/docker.socket", "[Unit]\nDescription=x\n[Socket]\nListenStream=/run/docker.sock\nSocketMode=0660\n");
        let s = resolve(&h.inputs());
        assert_eq!(s, DockerSocket { path: "/run/docker.sock".into(), source: SocketSource::SocketUnit { path: main } });
        let d = h.write(
            "etc/systemd/system/docker.socket.d/x.conf",
            "[Socket]\nListenStream=\nListenStream=2375\nListenStream=/run/other.sock\n",
        );
        assert_eq!(resolve(&h.inputs()), DockerSocket { path: "/run/other.sock".into(), source: SocketSource::SocketUnit { path: d } });
    }

    #[test]
    fn cli_context_by_sha256_of_its_name() {
        let h = Host::new();
        h.write("root/.docker/config.json", r#"{"auths": {}, "currentContext": "rootless"}"#);
        // sha256("rootless") (from sha256sum), as the docker CLI names the directory.
        let meta = h.write(
            "root/.docker/contexts/meta/12b961af5feb3e9d39f93b2cefb9a1a944f18d02cca0cac2f04f5a982240605f/meta.json",
            r#"{"Name":"rootless","Endpoints":{"docker":{"Host":"unix:///run/user/1000/docker.sock"}}}"#,
        );
        let s = resolve(&h.inputs());
        assert_eq!(s.path, PathBuf::from("/run/user/1000/docker.sock"));
        assert_eq!(s.source, SocketSource::Context { name: "rootless".into(), meta });
        // DOCKER_CONTEXT overrides config.json; "default" means no context.
        let mut i = h.inputs();
        i.docker_context = Some("default".into());
        assert_eq!(resolve(&i).source, SocketSource::Default);
    }
}
