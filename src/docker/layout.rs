//! Which way Docker is installed and run on this host (issue 19): a system
//! service (a distribution's packages or Docker CE's, handed the system
//! containerd or not), the snap, or a daemon known by its pidfile. The
//! storage driver and userns-remap are facts of every layout and are kept
//! beside it in [`LayoutFacts`]. Each finder reads unit files only, so
//! another layout (rootless daemons of ordinary users) is one more variant
//! and one more finder, not a change to these.

use std::path::{Path, PathBuf};

use serde::Serialize;

use super::unit;

/// The snap's dockerd unit.
pub const SNAP_UNIT: &str = "snap.docker.dockerd.service";
/// The snap's data-root (`$SNAP_COMMON/var-lib-docker`).
pub const SNAP_DATA_ROOT: &str = "/var/snap/docker/common/var-lib-docker";
/// The snap's daemon.json (`$SNAP_DATA/config/daemon.json`).
pub const SNAP_DAEMON_JSON: &str = "/var/snap/docker/current/config/daemon.json";
/// The system service unit of the docker.io and docker-ce packages.
pub const SYSTEM_UNIT: &str = "docker.service";
/// dockerd's flag naming the containerd to use.
const CONTAINERD_FLAGS: &[&str] = &["--containerd"];

/// How dockerd is installed and supervised.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "kind", rename_all = "kebab-case")]
pub enum Layout {
    /// `docker.service` run by the system manager (or an init script).
    SystemService {
        /// The system containerd's socket when the unit hands it to dockerd
        /// (`--containerd=`, as Docker CE's docker-ce and Debian's docker.io
        /// since 26 do); None: dockerd starts a containerd of its own.
        containerd: Option<PathBuf>,
    },
    /// The snap's `snap.docker.dockerd.service`, with its paths below `/var/snap/docker`.
    Snap,
    /// A dockerd started some other way, known by its pidfile (`--service pidfile:`).
    Daemon { pidfile: PathBuf },
}

impl Layout {
    /// The systemd unit that runs dockerd in this layout.
    pub fn unit(&self) -> Option<&'static str> {
        match self {
            Layout::SystemService { .. } => Some(SYSTEM_UNIT),
            Layout::Snap => Some(SNAP_UNIT),
            Layout::Daemon { .. } => None,
        }
    }

    /// The daemon.json this layout's dockerd reads by default.
    pub fn daemon_json(&self) -> &'static Path {
        match self {
            Layout::SystemService { .. } | Layout::Daemon { .. } => Path::new(super::DEFAULT_DAEMON_JSON),
            Layout::Snap => Path::new(SNAP_DAEMON_JSON),
        }
    }
}

impl std::fmt::Display for Layout {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Layout::SystemService { containerd: Some(c) } => write!(f, "system service ({SYSTEM_UNIT}, system containerd {})", c.display()),
            Layout::SystemService { containerd: None } => write!(f, "system service ({SYSTEM_UNIT})"),
            Layout::Snap => write!(f, "snap ({SNAP_UNIT})"),
            Layout::Daemon { pidfile } => write!(f, "a dockerd of its own (pidfile {})", pidfile.display()),
        }
    }
}

/// The layout with the facts that hold in every layout.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct LayoutFacts {
    /// None when nothing was found, or several were ([`LayoutFacts::choices`]).
    pub layout: Option<Layout>,
    /// Every layout found when there is more than one: dockroot cannot tell
    /// which one owns the data-root, `--service` must say.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub choices: Vec<Layout>,
    /// The storage driver (daemon.json, flag, or the running daemon).
    pub storage_driver: Option<String>,
    /// userns-remap's subtree (`<data-root>/<uid>.<gid>`), when remapping is on.
    pub userns_subtree: Option<PathBuf>,
}

/// The daemon.json dockerd reads here when none is named: the snap's when
/// the snap is the only Docker installed, else `/etc/docker/daemon.json`.
pub fn default_daemon_json() -> PathBuf {
    let dirs: Vec<PathBuf> = unit::UNIT_DIRS.iter().map(PathBuf::from).collect();
    match find(&dirs).as_slice() {
        [Layout::Snap] => SNAP_DAEMON_JSON.into(),
        _ => super::DEFAULT_DAEMON_JSON.into(),
    }
}

/// The layouts whose units exist in `unit_dirs`, in a fixed order. More than
/// one is an ambiguity the caller must refuse, naming them.
pub fn find(unit_dirs: &[PathBuf]) -> Vec<Layout> {
    let mut found = Vec::new();
    if let Some((argv, _)) = unit::exec_start(&unit::load_unit(unit_dirs, SYSTEM_UNIT)) {
        let containerd = unit::flag_value(&argv, CONTAINERD_FLAGS).map(PathBuf::from);
        found.push(Layout::SystemService { containerd });
    }
    if unit_dirs.iter().any(|d| d.join(SNAP_UNIT).is_file()) {
        found.push(Layout::Snap);
    }
    found
}

impl LayoutFacts {
    /// The layout from the layouts `found` (see [`find`]); a daemon run by
    /// its pidfile (`pidfile`) is that, whatever units exist.
    pub fn new(found: Vec<Layout>, pidfile: Option<&Path>, storage_driver: Option<String>, userns_subtree: Option<PathBuf>) -> Self {
        let (layout, choices) = match (pidfile, found.len()) {
            (Some(p), _) => (Some(Layout::Daemon { pidfile: p.into() }), Vec::new()),
            (None, 1) => (found.into_iter().next(), Vec::new()),
            (None, _) => (None, found),
        };
        Self { layout, choices, storage_driver, userns_subtree }
    }

    /// The refusal when several layouts are installed, naming them and the choice to make.
    pub fn ambiguity(&self) -> Option<String> {
        (self.choices.len() > 1).then(|| {
            let names: Vec<String> = self.choices.iter().map(|l| l.to_string()).collect();
            format!("Docker is installed more than once here: {}; say which one with --service (and --data-root)", names.join(" and "))
        })
    }
}

/// The filesystem a storage driver needs under its data-root, if it needs one.
pub(crate) fn driver_filesystem(driver: &str) -> Option<&'static str> {
    match driver {
        "btrfs" => Some("btrfs"),
        "zfs" => Some("zfs"),
        _ => None,
    }
}

/// Why `target` (of filesystem type `fs_type`) cannot take the data-root of
/// an engine with storage `driver`: its layers are that filesystem's own
/// objects (btrfs subvolumes), which no other filesystem can hold.
pub(crate) fn driver_refusal(driver: &str, fs_type: &str, target: &Path) -> Option<String> {
    let need = driver_filesystem(driver)?;
    (need != fs_type).then(|| {
        format!(
            "the {driver} storage driver keeps every layer as a {need} subvolume, and {} is on {fs_type}: choose a target on {need}, or switch the engine to another storage driver first (its images are then pulled or loaded again)",
            target.display()
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dirs(root: &Path) -> Vec<PathBuf> {
        ["etc/systemd/system", "lib/systemd/system"].iter().map(|d| root.join(d)).collect()
    }

    fn write(root: &Path, rel: &str, text: &str) {
        let p = root.join(rel);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(p, text).unwrap();
    }

    #[test]
    fn finds_each_layout_and_both() {
        let r = tempfile::tempdir().unwrap();
        assert!(find(&dirs(r.path())).is_empty());
        write(r.path(), "lib/systemd/system/docker.service", "[Service]\nExecStart=/usr/sbin/dockerd -H fd:// $DOCKER_OPTS\n");
        assert_eq!(find(&dirs(r.path())), vec![Layout::SystemService { containerd: None }]);
        write(
            r.path(),
            "lib/systemd/system/docker.service",
            "[Service]\nExecStart=/usr/bin/dockerd -H fd:// --containerd=/run/containerd/containerd.sock\n",
        );
        let ce = Layout::SystemService { containerd: Some("/run/containerd/containerd.sock".into()) };
        assert_eq!(find(&dirs(r.path())), vec![ce]);
        write(r.path(), "etc/systemd/system/snap.docker.dockerd.service", "[Service]\nExecStart=/usr/bin/snap run docker.dockerd\n");
        let both = find(&dirs(r.path()));
        assert_eq!(both.len(), 2);
        assert_eq!(both[1], Layout::Snap);
        assert_eq!(both[1].daemon_json(), Path::new(SNAP_DAEMON_JSON));
        let f = LayoutFacts::new(both.clone(), None, None, None);
        assert!(f.layout.is_none() && f.ambiguity().unwrap().contains("snap (snap.docker.dockerd.service)"));
        let f = LayoutFacts::new(both.clone(), Some(Path::new("/run/d.pid")), Some("btrfs".into()), None);
        assert_eq!(f.layout.unwrap().to_string(), "a dockerd of its own (pidfile /run/d.pid)");
        assert_eq!(both[0].to_string(), "system service (docker.service, system containerd /run/containerd/containerd.sock)");
    }

    #[test]
    fn btrfs_driver_needs_btrfs() {
        assert_eq!(driver_refusal("overlay2", "ext2/ext3", Path::new("/t")), None);
        assert_eq!(driver_refusal("btrfs", "btrfs", Path::new("/t")), None);
        let m = driver_refusal("btrfs", "xfs", Path::new("/t")).unwrap();
        assert!(m.contains("btrfs storage driver") && m.contains("/t is on xfs"), "{m}");
    }
}
