//! Finding the data-root the way dockerd would, and explaining the answer.
//!
//! Sources, in order: `data-root` (or legacy `graph`) in daemon.json; a
//! `--data-root`/`-g`/`--graph` flag in docker.service's (or, when only the
//! snap is installed, snap.docker.dockerd.service's) effective ExecStart
//! (drop-ins included, see [`super::unit`]); the running daemon's
//! `DockerRootDir`; the default `/var/lib/docker`. dockerd refuses to start
//! when one directive is given both as a flag and in daemon.json, so that
//! case is reported as a [`Conflict`] instead of silently picking one.

use super::api::DockerApi;
use super::daemon_json::DaemonJson;
use super::error::Result;
use super::layout::{self, Layout};
use super::unit::{self, DATA_ROOT_FLAGS, STORAGE_DRIVER_FLAGS, USERNS_REMAP_FLAGS};
use super::{DEFAULT_DAEMON_JSON, DEFAULT_DATA_ROOT};
use serde::Serialize;
use std::path::{Path, PathBuf};

/// Where to look. [`Default`] is the real host.
#[derive(Debug, Clone)]
pub struct DiscoverOptions {
    /// daemon.json path.
    pub daemon_json: PathBuf,
    /// systemd unit directories, highest priority first.
    pub unit_dirs: Vec<PathBuf>,
    /// The daemon to ask, if any.
    pub api: Option<DockerApi>,
}

impl Default for DiscoverOptions {
    fn default() -> Self {
        Self {
            daemon_json: PathBuf::from(DEFAULT_DAEMON_JSON),
            unit_dirs: unit::UNIT_DIRS.iter().map(PathBuf::from).collect(),
            api: Some(DockerApi::from_env()),
        }
    }
}

/// Where a setting came from.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub enum Source {
    /// A key in daemon.json.
    DaemonJson { path: PathBuf, key: String },
    /// A flag on dockerd's command line in a unit file.
    UnitFlag { path: PathBuf, flag: String },
    /// The running daemon's `/info`.
    RunningDaemon { socket: PathBuf },
    /// Nothing configured it; Docker's built-in default.
    Default,
}

impl std::fmt::Display for Source {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Source::DaemonJson { path, key } => write!(f, "`{key}` in {}", path.display()),
            Source::UnitFlag { path, flag } => write!(f, "{flag} in {}", path.display()),
            Source::RunningDaemon { socket } => {
                write!(f, "the running daemon on {}", socket.display())
            }
            Source::Default => write!(f, "Docker's default"),
        }
    }
}

/// A directive set both as a dockerd flag and in daemon.json.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Conflict {
    /// The daemon.json key, e.g. `data-root`.
    pub directive: String,
    /// Value of the flag.
    pub flag_value: String,
    /// The unit file holding the flag.
    pub flag_source: PathBuf,
    /// Value in daemon.json.
    pub json_value: String,
    /// The daemon.json path.
    pub json_source: PathBuf,
}

/// The outcome of discovery.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Discovery {
    /// The data-root dockerd uses (or will use on next start).
    pub data_root: PathBuf,
    /// Where [`Discovery::data_root`] came from.
    pub source: Source,
    /// Directives dockerd would refuse because they are set twice.
    pub conflicts: Vec<Conflict>,
    /// The running daemon's data-root, if a daemon answered (the parent of
    /// the `<uid>.<gid>` subtree it reports when it remaps).
    pub running_data_root: Option<PathBuf>,
    /// `live-restore` from daemon.json.
    pub live_restore: Option<bool>,
    /// `userns-remap` from daemon.json or dockerd's command line.
    pub userns_remap: Option<String>,
    /// Storage driver: daemon.json, flag, or running daemon.
    pub storage_driver: Option<String>,
}

/// Discovers the data-root. Fails only when daemon.json exists but is invalid.
/// The data-root: as given, or discovered the way dockerd would find it
/// (`daemon_json` is the one --daemon-config names).
pub(crate) fn data_root(given: Option<&Path>, daemon_json: &Path, api: &DockerApi) -> Result<PathBuf> {
    if let Some(d) = given {
        return Ok(d.to_path_buf());
    }
    let opts = DiscoverOptions { daemon_json: daemon_json.into(), api: Some(api.clone()), ..Default::default() };
    Ok(discover(&opts)?.data_root)
}

pub fn discover(opts: &DiscoverOptions) -> Result<Discovery> {
    let cfg = DaemonJson::load(&opts.daemon_json)?;
    // The snap's unit when it is the only Docker installed.
    let name = match layout::find(&opts.unit_dirs).as_slice() {
        [Layout::Snap] => layout::SNAP_UNIT,
        _ => layout::SYSTEM_UNIT,
    };
    let files = unit::load_unit(&opts.unit_dirs, name);
    let exec = unit::exec_start(&files);
    let info = opts.api.as_ref().filter(|a| a.ping()).and_then(|a| a.info().ok().map(|i| (a, i)));
    let flag = exec.as_ref().and_then(|(argv, p)| unit::find_flag(argv, DATA_ROOT_FLAGS).map(|f| (f, p.clone())));
    let userns_remap =
        cfg.userns_remap().map(String::from).or_else(|| exec.as_ref().and_then(|(argv, _)| unit::flag_value(argv, USERNS_REMAP_FLAGS)));
    // A remapped engine reports its `<uid>.<gid>` subtree as DockerRootDir.
    let running = info.as_ref().map(|(a, i)| (&a.socket, i.data_root()));
    let (data_root, source) = choose(&cfg, flag.as_ref(), running.as_ref().map(|(s, r)| (*s, r)));
    let conflicts = conflicts(&cfg, exec.as_ref());
    let driver_flag = exec.as_ref().and_then(|(argv, _)| unit::flag_value(argv, STORAGE_DRIVER_FLAGS));
    let storage_driver = cfg.storage_driver().map(String::from).or(driver_flag).or_else(|| info.as_ref().map(|(_, i)| i.driver.clone()));
    Ok(Discovery {
        data_root,
        source,
        conflicts,
        running_data_root: running.map(|(_, r)| r),
        live_restore: cfg.live_restore(),
        userns_remap,
        storage_driver,
    })
}

type Flag = ((String, String), PathBuf);

fn choose(cfg: &DaemonJson, flag: Option<&Flag>, running: Option<(&PathBuf, &PathBuf)>) -> (PathBuf, Source) {
    if let Some((root, key)) = cfg.data_root() {
        return (root, Source::DaemonJson { path: cfg.path().into(), key: key.into() });
    }
    if let Some(((name, value), path)) = flag {
        return (PathBuf::from(value), Source::UnitFlag { path: path.clone(), flag: name.clone() });
    }
    if let Some((socket, root)) = running {
        return (root.clone(), Source::RunningDaemon { socket: socket.clone() });
    }
    (PathBuf::from(DEFAULT_DATA_ROOT), Source::Default)
}

fn conflicts(cfg: &DaemonJson, exec: Option<&(Vec<String>, PathBuf)>) -> Vec<Conflict> {
    let Some((argv, unit_path)) = exec else {
        return Vec::new();
    };
    let checks: [(&str, Option<String>, &[&str]); 2] = [
        ("data-root", cfg.data_root().map(|(p, _)| p.display().to_string()), DATA_ROOT_FLAGS),
        ("storage-driver", cfg.storage_driver().map(String::from), STORAGE_DRIVER_FLAGS),
    ];
    checks
        .into_iter()
        .filter_map(|(directive, json, flags)| {
            let (json_value, flag_value) = (json?, unit::flag_value(argv, flags)?);
            Some(Conflict {
                directive: directive.into(),
                flag_value,
                flag_source: unit_path.clone(),
                json_value,
                json_source: cfg.path().into(),
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::Path;

    struct Host {
        dir: tempfile::TempDir,
    }

    impl Host {
        fn new() -> Self {
            let dir = tempfile::tempdir().unwrap();
            for d in ["etc/systemd/system/docker.service.d", "lib/systemd/system", "run/systemd/system", "docker"] {
                std::fs::create_dir_all(dir.path().join(d)).unwrap();
            }
            Self { dir }
        }
        fn write(&self, rel: &str, text: &str) {
            std::fs::write(self.dir.path().join(rel), text).unwrap();
        }
        fn opts(&self) -> DiscoverOptions {
            let p = |s: &str| self.dir.path().join(s);
            DiscoverOptions {
                daemon_json: p("docker/daemon.json"),
                unit_dirs: vec![p("etc/systemd/system"), p("run/systemd/system"), p("lib/systemd/system")],
                api: Some(DockerApi::new(p("none.sock"))),
            }
        }
    }

    #[test]
    fn default_when_nothing_configured() {
        let h = Host::new();
        let d = discover(&h.opts()).unwrap();
        assert_eq!((d.data_root.as_path(), &d.source), (Path::new(DEFAULT_DATA_ROOT), &Source::Default));
        assert!(d.conflicts.is_empty() && d.running_data_root.is_none());
    }

    #[test]
    fn unit_flag_then_daemon_json_with_conflict() {
        let h = Host::new();
        h.write("lib/systemd/system/docker.service", "[Service]\nExecStart=/usr/bin/dockerd -H fd://\n");
        h.write(
            "etc/systemd/system/docker.service.d/override.conf",
            "[Service]\nExecStart=\nExecStart=/usr/bin/dockerd --graph=/srv/g -s overlay2\n",
        );
        let d = discover(&h.opts()).unwrap();
        assert_eq!(d.data_root, PathBuf::from("/srv/g"));
        assert!(matches!(&d.source, Source::UnitFlag { flag, .. } if flag == "--graph"));
        assert_eq!(d.storage_driver.as_deref(), Some("overlay2"));
        h.write("docker/daemon.json", r#"{"data-root":"/data/docker","live-restore":true}"#);
        let d = discover(&h.opts()).unwrap();
        assert_eq!(d.data_root, PathBuf::from("/data/docker"));
        assert!(matches!(&d.source, Source::DaemonJson { key, .. } if key == "data-root"));
        assert_eq!(d.conflicts.len(), 1);
        assert_eq!((d.conflicts[0].flag_value.as_str(), d.conflicts[0].json_value.as_str()), ("/srv/g", "/data/docker"));
        assert_eq!(d.live_restore, Some(true));
    }

    #[test]
    fn invalid_daemon_json_is_an_error() {
        let h = Host::new();
        h.write("docker/daemon.json", "{\"data-root\": \"/x\",}");
        assert!(discover(&h.opts()).is_err());
    }
}
