//! The engine's whole state, not one directory: which image store Docker
//! uses, which containerd serves it, and where that containerd keeps its
//! root and state. With the containerd image store and the system
//! containerd, images, layers and every container's writable layer live in
//! containerd's root, outside the data-root; a backup or move of the
//! data-root alone would silently leave them behind (issue 8).

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::api::Info;
use super::containerd::{self, Dirs, Serving};
use super::daemon_json::DaemonJson;
use super::error::{DockerError, ImagesOutside};
use super::facts;

/// `DriverStatus` `driver-type` of the containerd image store.
pub(crate) const SNAPSHOTTER_DRIVER_TYPE: &str = "io.containerd.snapshotter.v1";
/// Graph drivers: their directory in a data-root holds the image layers.
pub(crate) const GRAPH_DRIVERS: &[&str] = &["overlay2", "fuse-overlayfs", "btrfs", "zfs", "vfs", "devicemapper", "aufs", "overlay"];
/// The first engine that defaults to the containerd image store on a fresh install.
pub(crate) const CONTAINERD_DEFAULT_MAJOR: u32 = 29;

/// Where Docker keeps images.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum ImageStore {
    /// A graph driver (`overlay2`, ...): layers under the data-root.
    GraphDriver,
    /// containerd's snapshotters and content store.
    Containerd,
}

impl std::fmt::Display for ImageStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            ImageStore::GraphDriver => "graph driver",
            ImageStore::Containerd => "containerd image store",
        })
    }
}

/// The image store and why we think so.
pub(crate) fn image_store(info: Option<&Info>, cfg: &DaemonJson, engine_major: Option<u32>, data_root: &Path) -> (ImageStore, String) {
    if let Some(i) = info {
        let snap = i.driver_status.iter().any(|kv| kv.len() == 2 && kv[0] == "driver-type" && kv[1] == SNAPSHOTTER_DRIVER_TYPE);
        return if snap {
            (ImageStore::Containerd, format!("the daemon's DriverStatus driver-type {SNAPSHOTTER_DRIVER_TYPE}"))
        } else {
            (ImageStore::GraphDriver, format!("the daemon's storage driver {}", i.driver))
        };
    }
    let key = format!("features.containerd-snapshotter in {}", cfg.path().display());
    match cfg.map().get("features").and_then(|f| f.get("containerd-snapshotter")).and_then(|v| v.as_bool()) {
        Some(true) => return (ImageStore::Containerd, format!("{key} (daemon not running)")),
        Some(false) => return (ImageStore::GraphDriver, format!("{key} (daemon not running)")),
        None => {}
    }
    if let Some(d) = cfg.storage_driver() {
        return (ImageStore::GraphDriver, format!("storage-driver {d} in {} (daemon not running)", cfg.path().display()));
    }
    let has_layers = GRAPH_DRIVERS.iter().any(|d| data_root.join(d).is_dir());
    if engine_major.is_some_and(|m| m >= CONTAINERD_DEFAULT_MAJOR) && !has_layers {
        return (
            ImageStore::Containerd,
            format!(
                "Docker {CONTAINERD_DEFAULT_MAJOR}+ defaults to it when the data-root has no graph-driver directory (daemon not running)"
            ),
        );
    }
    (ImageStore::GraphDriver, "the engine's default (daemon not running)".into())
}

/// The containerd serving Docker, with its dirs, sizes and namespaces.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ContainerdFacts {
    pub serving: Serving,
    /// Why [`ContainerdFacts::serving`] (the evidence used).
    pub serving_source: String,
    /// The socket, when known.
    pub address: Option<PathBuf>,
    pub dirs: Dirs,
    /// Allocated bytes under root and state (0 when absent).
    pub root_bytes: u64,
    pub state_bytes: u64,
    pub namespaces: Vec<String>,
    pub namespaces_source: String,
    /// Namespaces other than Docker's `moby`: a second user of the store.
    pub foreign_namespaces: Vec<String>,
}

/// Everything about the engine that decides what a backup or move must cover.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct EngineFacts {
    pub image_store: ImageStore,
    pub image_store_source: String,
    pub containerd: ContainerdFacts,
}

/// What an archive records about the engine beyond its version (meta.json,
/// additive: archives without it read as `None`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct EngineMeta {
    pub image_store: ImageStore,
    pub containerd_serving: Serving,
    /// containerd's version as the engine reports it (`GET /version`).
    pub containerd_version: Option<String>,
    pub containerd_root: PathBuf,
}

impl EngineMeta {
    pub fn new(facts: &EngineFacts, containerd_version: Option<String>) -> Self {
        Self {
            image_store: facts.image_store,
            containerd_serving: facts.containerd.serving.clone(),
            containerd_version,
            containerd_root: facts.containerd.dirs.root.clone(),
        }
    }
}

/// Refuses to restore a graph-driver archive onto an engine told to use the
/// containerd image store (or the reverse): its images would not be found,
/// and the health check would undo the restore after the downtime.
pub(crate) fn check_store_pin(archive: ImageStore, cfg: &DaemonJson) -> Result<(), String> {
    let feature = cfg.map().get("features").and_then(|f| f.get("containerd-snapshotter")).and_then(|v| v.as_bool());
    let clash = match (archive, feature) {
        (ImageStore::GraphDriver, Some(true)) => "true",
        (ImageStore::Containerd, Some(false)) => "false",
        _ => return Ok(()),
    };
    Err(format!(
        "the archive holds a data-root of the {archive}, but features.containerd-snapshotter is {clash} in {}, so Docker \
         would not find its images; change that setting (or remove it) before restoring",
        cfg.path().display()
    ))
}

/// The daemon.json that makes an engine of `engine_major` use `want` for
/// the restored data-root `data_root` (its tree decides Docker 29's
/// default), or None when it would pick `want` anyway. The pin is
/// `features.containerd-snapshotter`, which every engine since 24 reads.
pub(crate) fn store_pin(want: ImageStore, cfg: &DaemonJson, engine_major: Option<u32>, data_root: &Path) -> Option<DaemonJson> {
    let (picked, _) = image_store(None, cfg, engine_major, data_root);
    if picked == want {
        return None;
    }
    let mut pinned = cfg.clone();
    pinned.set_containerd_snapshotter(want == ImageStore::Containerd);
    Some(pinned)
}

/// Inputs of [`inspect`] (tests point them at fixtures).
#[derive(Debug, Clone)]
pub(crate) struct EngineProbe<'a> {
    pub data_root: &'a Path,
    pub cfg: &'a DaemonJson,
    pub info: Option<&'a Info>,
    /// dockerd's command line (systemd ExecStart or the pidfile daemon's).
    pub argv: Option<&'a [String]>,
    pub engine_major: Option<u32>,
    pub system_socket: &'a Path,
    pub containerd_config: &'a Path,
}

/// Gathers [`EngineFacts`]; reads only, never fails (unknowns fall back to
/// the engine's defaults and say so in the `*_source` fields).
pub(crate) fn inspect(p: &EngineProbe) -> EngineFacts {
    let (image_store, image_store_source) = image_store(p.info, p.cfg, p.engine_major, p.data_root);
    let reported = p.info.and_then(|i| i.containerd.as_ref()).map(|c| c.address.as_str());
    let (serving, address, serving_source) = containerd::serving(reported, p.argv, p.system_socket);
    let exec_root = PathBuf::from(p.cfg.str_value("exec-root").unwrap_or("/var/run/docker"));
    let dirs = match serving {
        Serving::System => containerd::system_dirs(p.containerd_config),
        Serving::Managed => containerd::managed_dirs(p.data_root, &exec_root),
    };
    let size = |d: &Path| if d.is_dir() { facts::tree_size(d).map(|s| s.bytes).unwrap_or(0) } else { 0 };
    let (namespaces, namespaces_source) = containerd::namespaces(address.as_deref(), &dirs.state);
    EngineFacts {
        image_store,
        image_store_source,
        containerd: ContainerdFacts {
            serving,
            serving_source,
            address,
            root_bytes: size(&dirs.root),
            state_bytes: size(&dirs.state),
            foreign_namespaces: containerd::foreign(&namespaces),
            namespaces,
            namespaces_source,
            dirs,
        },
    }
}

impl EngineFacts {
    /// containerd's root when it holds Docker's images outside `data_root`.
    pub(crate) fn images_outside(&self, data_root: &Path) -> Option<&Path> {
        let root = &self.containerd.dirs.root;
        (self.image_store == ImageStore::Containerd && !root.starts_with(data_root)).then_some(root.as_path())
    }

    /// Refuses `operation` (`back up`, `move`) when it would leave Docker's
    /// images behind: dockroot does not yet carry containerd's root.
    pub(crate) fn check_complete(&self, operation: &'static str, data_root: &Path) -> Result<(), DockerError> {
        let Some(root) = self.images_outside(data_root) else { return Ok(()) };
        Err(DockerError::ImagesOutsideDataRoot(Box::new(ImagesOutside {
            operation,
            data_root: data_root.into(),
            root: root.into(),
            bytes: self.containerd.root_bytes,
            evidence: self.image_store_source.clone(),
            others: self.containerd.foreign_namespaces.clone(),
        })))
    }

    /// A one-line warning for `status`: backup and move carry containerd's
    /// root beside the data-root, except when it is missing (they refuse),
    /// and only with `--shared-store` when other namespaces share it.
    pub(crate) fn warning(&self, data_root: &Path) -> Option<String> {
        let root = self.images_outside(data_root)?;
        if !root.is_dir() {
            return self.check_complete("back up or move", data_root).err().map(|e| e.to_string());
        }
        let others = &self.containerd.foreign_namespaces;
        (!others.is_empty()).then(|| {
            format!(
                "containerd's root {} holds Docker's images and also the namespaces {} of another user of the same containerd; \
                 backup, restore and move replace or carry the whole store, so they need --shared-store",
                root.display(),
                others.join(", ")
            )
        })
    }
}

/// Facts of a system containerd with `root` and namespaces `ns` (unit tests).
#[cfg(test)]
pub(crate) fn test_facts(store: ImageStore, root: &str, ns: &[&str]) -> EngineFacts {
    let namespaces: Vec<String> = ns.iter().map(|s| s.to_string()).collect();
    EngineFacts {
        image_store: store,
        image_store_source: "test".into(),
        containerd: ContainerdFacts {
            serving: Serving::System,
            serving_source: "test".into(),
            address: None,
            dirs: Dirs { root: root.into(), state: "/run/containerd".into(), source: "test".into() },
            root_bytes: 11 << 20,
            state_bytes: 0,
            foreign_namespaces: containerd::foreign(&namespaces),
            namespaces,
            namespaces_source: "test".into(),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::docker::api::InfoContainerd;

    /// `GET /info` of Docker 28.5.2 (Debian sid) in both modes, trimmed.
    const INFO_CONTAINERD: &str = r#"{"DockerRootDir":"/var/lib/docker","Driver":"overlayfs",
        "DriverStatus":[["driver-type","io.containerd.snapshotter.v1"]],"ServerVersion":"28.5.2+dfsg4",
        "Containers":2,"ContainersRunning":1,"Images":6,
        "Containerd":{"Address":"/run/containerd/containerd.sock","Namespaces":{"Containers":"moby","Plugins":"plugins.moby"}}}"#;
    const INFO_OVERLAY2: &str = r#"{"DockerRootDir":"/var/lib/docker","Driver":"overlay2",
        "DriverStatus":[["Backing Filesystem","extfs"],["Supports d_type","true"],["Using metacopy","false"]],
        "ServerVersion":"28.5.2+dfsg4","Containers":2,"ContainersRunning":1,"Images":6,
        "Containerd":{"Address":"/run/containerd/containerd.sock","Namespaces":{"Containers":"moby","Plugins":"plugins.moby"}}}"#;
    /// Docker 20.10 has no `Containerd` in `/info`.
    const INFO_2010: &str = r#"{"DockerRootDir":"/d","Driver":"overlay2","DriverStatus":[["Backing Filesystem","extfs"]],
        "ServerVersion":"20.10.24+dfsg1","Containers":0,"ContainersRunning":0,"Images":0}"#;

    fn cfg(text: &str) -> DaemonJson {
        DaemonJson::parse(Path::new("/etc/docker/daemon.json"), text.as_bytes()).unwrap()
    }

    #[test]
    fn store_from_the_api_not_the_driver_name() {
        let empty = cfg("{}");
        let i: Info = serde_json::from_str(INFO_CONTAINERD).unwrap();
        assert_eq!(i.containerd, Some(InfoContainerd { address: "/run/containerd/containerd.sock".into() }));
        assert_eq!(image_store(Some(&i), &empty, None, Path::new("/x")).0, ImageStore::Containerd);
        let i: Info = serde_json::from_str(INFO_OVERLAY2).unwrap();
        // daemon.json claims the feature, but the running daemon decides.
        let on = cfg(r#"{"features":{"containerd-snapshotter":true}}"#);
        assert_eq!(image_store(Some(&i), &on, None, Path::new("/x")).0, ImageStore::GraphDriver);
        let i: Info = serde_json::from_str(INFO_2010).unwrap();
        assert_eq!(i.containerd, None);
        assert_eq!(image_store(Some(&i), &empty, None, Path::new("/x")).0, ImageStore::GraphDriver);
    }

    #[test]
    fn store_without_a_daemon() {
        let d = tempfile::tempdir().unwrap();
        let on = cfg(r#"{"features":{"containerd-snapshotter":true}}"#);
        assert_eq!(image_store(None, &on, Some(20), d.path()).0, ImageStore::Containerd);
        let empty = cfg("{}");
        assert_eq!(image_store(None, &empty, Some(28), d.path()).0, ImageStore::GraphDriver);
        assert_eq!(image_store(None, &empty, Some(29), d.path()).0, ImageStore::Containerd);
        std::fs::create_dir(d.path().join("overlay2")).unwrap();
        assert_eq!(image_store(None, &empty, Some(29), d.path()).0, ImageStore::GraphDriver);
        let off = cfg(r#"{"features":{"containerd-snapshotter":false}}"#);
        assert_eq!(image_store(None, &off, Some(29), Path::new("/nonexistent")).0, ImageStore::GraphDriver);
    }

    #[test]
    fn store_pin_clash() {
        let on = cfg(r#"{"features":{"containerd-snapshotter":true}}"#);
        assert!(check_store_pin(ImageStore::GraphDriver, &on).unwrap_err().contains("features.containerd-snapshotter is true"));
        assert!(check_store_pin(ImageStore::Containerd, &on).is_ok());
        assert!(check_store_pin(ImageStore::GraphDriver, &cfg("{}")).is_ok());
    }

    #[test]
    fn store_pin_only_where_the_engine_would_choose_otherwise() {
        let d = tempfile::tempdir().unwrap();
        let empty = cfg(r#"{"iptables":false,"features":{"buildkit":true}}"#);
        // Docker 28 picks the graph driver: a containerd archive needs the feature.
        let p = store_pin(ImageStore::Containerd, &empty, Some(28), d.path()).unwrap();
        assert_eq!(p.map()["features"], serde_json::json!({"buildkit": true, "containerd-snapshotter": true}));
        assert_eq!(p.map()["iptables"], false);
        assert!(store_pin(ImageStore::GraphDriver, &empty, Some(28), d.path()).is_none());
        // Docker 29 on a tree without graph-driver layers picks containerd: a graph archive is pinned back.
        let p = store_pin(ImageStore::GraphDriver, &empty, Some(29), d.path()).unwrap();
        assert_eq!(p.map()["features"]["containerd-snapshotter"], false);
        assert!(store_pin(ImageStore::Containerd, &empty, Some(29), d.path()).is_none());
        std::fs::create_dir(d.path().join("overlay2")).unwrap();
        assert!(store_pin(ImageStore::GraphDriver, &empty, Some(29), d.path()).is_none());
        // Already said in daemon.json: nothing to add.
        let on = cfg(r#"{"features":{"containerd-snapshotter":true}}"#);
        assert!(store_pin(ImageStore::Containerd, &on, Some(28), d.path()).is_none());
    }

    #[test]
    fn refuses_only_when_images_are_outside() {
        let dr = Path::new("/var/lib/docker");
        assert!(test_facts(ImageStore::GraphDriver, "/var/lib/containerd", &["moby"]).check_complete("back up", dr).is_ok());
        assert!(test_facts(ImageStore::Containerd, "/var/lib/docker/containerd/daemon", &["moby"]).check_complete("back up", dr).is_ok());
        let e = test_facts(ImageStore::Containerd, "/var/lib/containerd", &["k8s.io", "moby"]).check_complete("back up", dr).unwrap_err();
        let m = e.to_string();
        assert!(m.contains("/var/lib/containerd") && m.contains("/var/lib/docker") && m.contains("k8s.io"), "{m}");
    }
}
