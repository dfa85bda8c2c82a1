//! Which way Docker is installed and run on this host (issue 19): a system
//! service from a distribution's or Docker CE's packages, or the snap. The
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

/// How dockerd is installed and supervised.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "kind", rename_all = "kebab-case")]
pub enum Layout {
    /// `docker.service` run by the system manager (or an init script).
    SystemService {
        /// Whose packaging the unit's command line looks like.
        packaging: Packaging,
    },
    /// The snap's `snap.docker.dockerd.service`, with its paths below `/var/snap/docker`.
    Snap,
}

impl Layout {
    /// The systemd unit that runs dockerd in this layout.
    pub fn unit(&self) -> &'static str {
        match self {
            Layout::SystemService { .. } => SYSTEM_UNIT,
            Layout::Snap => SNAP_UNIT,
        }
    }

    /// The daemon.json this layout's dockerd reads by default.
    pub fn daemon_json(&self) -> &'static Path {
        match self {
            Layout::SystemService { .. } => Path::new(super::DEFAULT_DAEMON_JSON),
            Layout::Snap => Path::new(SNAP_DAEMON_JSON),
        }
    }
}

impl std::fmt::Display for Layout {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Layout::SystemService { packaging } => write!(f, "system service ({SYSTEM_UNIT}, {packaging})"),
            Layout::Snap => write!(f, "snap ({SNAP_UNIT})"),
        }
    }
}

/// Whose packages installed the system service, told from its command line.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Packaging {
    /// Docker CE (`docker-ce`, `containerd.io`): dockerd is given the system
    /// containerd's socket with `--containerd=`.
    DockerCe,
    /// A distribution's package (Debian's `docker.io`) or a unit of the user's own.
    Distribution,
}

impl std::fmt::Display for Packaging {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Packaging::DockerCe => "Docker CE's packages",
            Packaging::Distribution => "distribution packages",
        })
    }
}

/// The layout with the facts that hold in every layout.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct LayoutFacts {
    pub layout: Layout,
    /// The storage driver (daemon.json, flag, or the running daemon).
    pub storage_driver: Option<String>,
    /// userns-remap's subtree (`<data-root>/<uid>.<gid>`), when remapping is on.
    pub userns_subtree: Option<PathBuf>,
}

/// The layouts whose units exist in `unit_dirs`, in a fixed order. More than
/// one is an ambiguity the caller must refuse, naming them.
pub fn find(unit_dirs: &[PathBuf]) -> Vec<Layout> {
    let mut found = Vec::new();
    if let Some((argv, _)) = unit::exec_start(&unit::load_unit(unit_dirs, SYSTEM_UNIT)) {
        found.push(Layout::SystemService { packaging: packaging(&argv) });
    }
    if unit_dirs.iter().any(|d| d.join(SNAP_UNIT).is_file()) {
        found.push(Layout::Snap);
    }
    found
}

/// Docker CE's unit runs `dockerd -H fd:// --containerd=/run/containerd/containerd.sock`;
/// Debian's runs `dockerd -H fd:// $DOCKER_OPTS` and lets dockerd find containerd.
fn packaging(argv: &[String]) -> Packaging {
    match unit::flag_value(argv, &["--containerd"]) {
        Some(_) => Packaging::DockerCe,
        None => Packaging::Distribution,
    }
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
        assert_eq!(find(&dirs(r.path())), vec![Layout::SystemService { packaging: Packaging::Distribution }]);
        write(
            r.path(),
            "lib/systemd/system/docker.service",
            "[Service]\nExecStart=/usr/bin/dockerd -H fd:// --containerd=/run/containerd/containerd.sock\n",
        );
        assert_eq!(find(&dirs(r.path())), vec![Layout::SystemService { packaging: Packaging::DockerCe }]);
        write(r.path(), "etc/systemd/system/snap.docker.dockerd.service", "[Service]\nExecStart=/usr/bin/snap run docker.dockerd\n");
        let both = find(&dirs(r.path()));
        assert_eq!(both.len(), 2);
        assert_eq!(both[1], Layout::Snap);
        assert_eq!(both[1].daemon_json(), Path::new(SNAP_DAEMON_JSON));
        assert_eq!(both[0].to_string(), "system service (docker.service, Docker CE's packages)");
    }
}
