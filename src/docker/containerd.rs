//! The containerd that serves Docker, and where it keeps its data.
//!
//! With the containerd image store (Docker 29's default on fresh installs),
//! images, layers and every container's writable layer live in containerd's
//! root, not in the data-root. Which containerd that is decides whether those
//! bytes move with the data-root: the one dockerd starts itself keeps its
//! root at `<data-root>/containerd/daemon` (inside), the system one
//! (`containerd.service`) at its configured `root` (`/var/lib/containerd`).

use std::path::{Path, PathBuf};
use std::process::Command;

use serde::{Deserialize, Serialize};

use super::unit;

/// containerd's own defaults (containerd(8), `config.toml` `root`/`state`).
pub(crate) const DEFAULT_ROOT: &str = "/var/lib/containerd";
pub(crate) const DEFAULT_STATE: &str = "/run/containerd";
/// The system containerd's socket; dockerd uses it when it exists and no
/// `--containerd` flag is given (dockerd's `systemContainerdRunning`).
pub(crate) const SYSTEM_SOCKET: &str = "/run/containerd/containerd.sock";
/// Docker's namespace in containerd's metadata.
pub(crate) const DOCKER_NAMESPACE: &str = "moby";
/// The config file containerd reads by default.
pub(crate) const CONFIG_FILE: &str = "/etc/containerd/config.toml";

/// Which containerd serves Docker.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Serving {
    /// A containerd started by the service manager, shared with other users.
    System,
    /// The containerd dockerd starts itself, with its root inside the data-root.
    Managed,
}

impl std::fmt::Display for Serving {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Serving::System => "the system containerd",
            Serving::Managed => "dockerd's own containerd",
        })
    }
}

/// Where containerd's root and state came from.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Dirs {
    pub root: PathBuf,
    pub state: PathBuf,
    /// `containerd config dump`, a config file path, `managed by dockerd` or `defaults`.
    pub source: String,
}

/// Top-level `root` and `state` of a containerd config (versions 2 and 3
/// put both before the first table). A minimal TOML read: basic and literal
/// strings, comments; tables end the search.
pub(crate) fn parse_config(text: &str) -> (Option<PathBuf>, Option<PathBuf>) {
    let (mut root, mut state) = (None, None);
    for line in text.lines() {
        let line = line.trim();
        if line.starts_with('[') {
            break;
        }
        let Some((key, value)) = line.split_once('=') else { continue };
        let Some(value) = toml_string(value.trim()) else { continue };
        match key.trim() {
            "root" => root = Some(PathBuf::from(value)),
            "state" => state = Some(PathBuf::from(value)),
            _ => {}
        }
    }
    (root, state)
}

fn toml_string(v: &str) -> Option<String> {
    let quote = v.chars().next().filter(|c| *c == '"' || *c == '\'')?;
    let rest = &v[1..];
    let end = rest.find(quote)?;
    let s = &rest[..end];
    // Paths rarely hold escapes; a basic string's `\\` and `\"` are the ones seen.
    Some(if quote == '"' { s.replace("\\\\", "\\").replace("\\\"", "\"") } else { s.to_string() })
}

/// The system containerd's root and state: `containerd config dump` (the
/// merged config, with imports), else `config_file`, else the defaults.
pub(crate) fn system_dirs(config_file: &Path) -> Dirs {
    if let Ok(out) = Command::new("containerd").args(["config", "dump"]).output()
        && out.status.success()
        && let (Some(root), Some(state)) = parse_config(&String::from_utf8_lossy(&out.stdout))
    {
        return Dirs { root, state, source: "`containerd config dump`".into() };
    }
    match std::fs::read_to_string(config_file) {
        Ok(text) => {
            let (root, state) = parse_config(&text);
            Dirs {
                root: root.unwrap_or_else(|| DEFAULT_ROOT.into()),
                state: state.unwrap_or_else(|| DEFAULT_STATE.into()),
                source: config_file.display().to_string(),
            }
        }
        Err(_) => Dirs { root: DEFAULT_ROOT.into(), state: DEFAULT_STATE.into(), source: "containerd's defaults".into() },
    }
}

/// The managed containerd's dirs (dockerd's `libcontainerd/supervise`).
pub(crate) fn managed_dirs(data_root: &Path, exec_root: &Path) -> Dirs {
    Dirs {
        root: data_root.join("containerd/daemon"),
        state: exec_root.join("containerd/daemon"),
        source: "managed by dockerd, inside the data-root".into(),
    }
}

/// Decides which containerd serves Docker, most reliable evidence first:
/// the address the daemon reports (`/info` `Containerd.Address`, API 1.46+),
/// a `--containerd` flag on dockerd's command line, then whether the system
/// socket exists (what dockerd itself checks at start).
pub(crate) fn serving(reported: Option<&str>, argv: Option<&[String]>, system_socket: &Path) -> (Serving, Option<PathBuf>, String) {
    if let Some(addr) = reported.filter(|a| !a.is_empty()) {
        let managed = addr.contains("/docker/containerd/");
        let kind = if managed { Serving::Managed } else { Serving::System };
        return (kind, Some(PathBuf::from(addr)), "the daemon's /info".into());
    }
    if let Some(addr) = argv.and_then(|a| unit::flag_value(a, &["--containerd"])) {
        return (Serving::System, Some(PathBuf::from(addr)), "dockerd's --containerd flag".into());
    }
    if system_socket.exists() {
        return (Serving::System, Some(system_socket.into()), format!("{} exists", system_socket.display()));
    }
    (Serving::Managed, None, format!("no {} and no --containerd flag", system_socket.display()))
}

/// The namespaces in containerd's metadata, and how they were found. `ctr`
/// asks the running containerd; without it, the per-namespace task dirs
/// under the state dir show those with running containers only.
pub(crate) fn namespaces(address: Option<&Path>, state: &Path) -> (Vec<String>, String) {
    if let Some(addr) = address.filter(|a| a.exists())
        // Bounded: a containerd that hangs must not hang `status` or a backup.
        && let Ok(out) = Command::new("ctr").arg("--address").arg(addr).args(["--timeout", "10s", "namespaces", "ls", "-q"]).output()
        && out.status.success()
    {
        let mut ns: Vec<String> = String::from_utf8_lossy(&out.stdout).split_whitespace().map(String::from).collect();
        ns.sort();
        return (ns, "`ctr namespaces ls`".into());
    }
    let tasks = state.join("io.containerd.runtime.v2.task");
    let mut ns: Vec<String> =
        std::fs::read_dir(&tasks).into_iter().flatten().flatten().map(|e| e.file_name().to_string_lossy().into_owned()).collect();
    ns.sort();
    (ns, format!("task dirs in {} (namespaces with running containers only)", tasks.display()))
}

/// Namespaces other than Docker's: other users of the same store.
pub(crate) fn foreign(namespaces: &[String]) -> Vec<String> {
    namespaces.iter().filter(|n| *n != DOCKER_NAMESPACE && !n.starts_with("plugins.moby")).cloned().collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Trimmed from `containerd config dump` of containerd 2.1.9 (Debian sid).
    const DUMP_V3: &str = r#"version = 3
root = '/var/lib/containerd'
state = '/run/containerd'
temp = ''
disabled_plugins = []
imports = []

[grpc]
  address = '/run/containerd/containerd.sock'

[plugins."io.containerd.grpc.v1.cri".containerd]
  root = "/not/this"
"#;

    #[test]
    fn reads_top_level_root_and_state() {
        assert_eq!(parse_config(DUMP_V3), (Some("/var/lib/containerd".into()), Some("/run/containerd".into())));
        let v2 = "# moved to the data disk\nversion = 2\nroot = '/data/containerd' # comment\n[grpc]\n  address = \"/x\"\n";
        assert_eq!(parse_config(v2), (Some("/data/containerd".into()), None));
        assert_eq!(parse_config("[plugins]\nroot = \"/x\"\n"), (None, None));
    }

    #[test]
    fn config_file_then_defaults() {
        let d = tempfile::tempdir().unwrap();
        let f = d.path().join("config.toml");
        std::fs::write(&f, "version = 2\nroot = \"/srv/ctd\"\n").unwrap();
        let dirs = system_dirs(&f);
        // A host with containerd installed answers `config dump` instead.
        if dirs.source.starts_with("/") {
            assert_eq!((dirs.root, dirs.state), (PathBuf::from("/srv/ctd"), PathBuf::from(DEFAULT_STATE)));
        }
    }

    #[test]
    fn which_containerd() {
        let none = Path::new("/nonexistent/containerd.sock");
        let (k, a, _) = serving(Some("/var/run/docker/containerd/containerd.sock"), None, none);
        assert_eq!((k, a.unwrap()), (Serving::Managed, PathBuf::from("/var/run/docker/containerd/containerd.sock")));
        assert_eq!(serving(Some("/run/containerd/containerd.sock"), None, none).0, Serving::System);
        let argv: Vec<String> =
            ["/usr/bin/dockerd", "-H", "fd://", "--containerd=/run/containerd/containerd.sock"].map(String::from).into();
        assert_eq!(serving(None, Some(&argv), none).0, Serving::System);
        assert_eq!(serving(None, None, none).0, Serving::Managed);
        let d = tempfile::tempdir().unwrap();
        assert_eq!(serving(None, None, d.path()).0, Serving::System);
    }

    #[test]
    fn foreign_namespaces() {
        let ns = ["k8s.io", "moby", "plugins.moby"].map(String::from);
        assert_eq!(foreign(&ns), vec!["k8s.io".to_string()]);
    }
}
