//! The second store of a restore (issue 8): an archive of the containerd
//! image store carries containerd's root beside the data-root. It is
//! restored the way the data-root is, as one unit with it: extracted into
//! `<root>.dockroot-staging-<ts>` on the root's own filesystem (next to the
//! bind's source when the root is a bind mount, as after a two-store
//! `move --method bind`; inside it when it is a whole filesystem), verified
//! against its manifest before anything is replaced, then swapped by two
//! renames recorded in the same journaled step as the data-root's (the
//! current root kept as `<root>.dockroot-old-<ts>`; a bind on the root is
//! then moved to the new tree, see [`super::bind`]), so `rollback` after a
//! kill at any point puts both old trees and both binds back. Docker is stopped and started
//! together with containerd ([`crate::service::engine::WholeEngine`]),
//! which holds the root open while it runs.

use std::path::{Path, PathBuf};

use super::RestoreOptions;
use super::bind::{Place, Tree};
use crate::docker::containerd::{self, CONFIG_FILE, SYSTEM_SOCKET};
use crate::plan::backup::meta::BackupMeta;
use crate::plan::{PlanError, Result};
use crate::service::ServiceManager;
use crate::service::engine::{ContainerdRecord, WholeEngine};
use crate::service::wait::Timing;
use crate::util::atomic;

/// Where containerd's root goes on this host, and the names around it.
#[derive(Debug, Clone)]
pub(crate) struct Second {
    /// containerd's root as this host's containerd is configured.
    pub root: PathBuf,
    /// What is mounted at the root, and so where the tree is staged and swapped.
    pub place: Place,
    pub staging: PathBuf,
    /// The tree's manifest, streamed out of the archive next to the staging tree.
    pub manifest: PathBuf,
    /// Where the current root is kept (`None` when there is none).
    pub old: Option<PathBuf>,
    /// The socket this host's containerd listens on (its shims carry it).
    pub address: PathBuf,
}

fn system_dirs(opts: &RestoreOptions) -> containerd::Dirs {
    containerd::system_dirs(&opts.host_root.join(CONFIG_FILE.trim_start_matches('/')))
}

/// What is mounted at this host's containerd root, and where its tree would
/// be staged (`--dry-run`; the shared-store check waits for the restore).
pub fn place(opts: &RestoreOptions, ts: &str, warnings: &mut Vec<String>) -> Result<(Place, PathBuf)> {
    let place = Place::detect(&crate::plan::env::absolute(&system_dirs(opts).root), warnings)?;
    let staging = place.staging(ts);
    Ok((place, staging))
}

/// The second tree to restore, if the archive has one. Refuses a store that
/// other namespaces share, on either side, unless `--shared-store`: their
/// images would be replaced too.
pub fn plan(opts: &RestoreOptions, meta: &BackupMeta, ts: &str, warnings: &mut Vec<String>) -> Result<Option<Second>> {
    let Some(tree) = &meta.containerd_tree else { return Ok(None) };
    let dirs = system_dirs(opts);
    let root = crate::plan::env::absolute(&dirs.root);
    let address = opts.host_root.join(SYSTEM_SOCKET.trim_start_matches('/'));
    // The host's store as it is now: another user's namespaces there would be set aside with it.
    let (now, _) = containerd::namespaces(Some(&address), &dirs.state);
    let mut others = containerd::foreign(&tree.namespaces);
    others.extend(containerd::foreign(&now));
    others.sort();
    others.dedup();
    if !others.is_empty() && !opts.shared_store {
        return Err(PlanError::refused(format!(
            "containerd's root {} is shared with the namespaces {} (in the archive or on this host); a restore replaces the whole \
             store, theirs included. Pass --shared-store to restore it anyway (the current root is kept aside)",
            root.display(),
            others.join(", ")
        )));
    }
    let place = Place::detect(&root, warnings)?;
    let staging = place.staging(ts);
    Ok(Some(Second {
        manifest: atomic::with_suffix(&staging, ".manifest"),
        old: place.tree().symlink_metadata().is_ok().then(|| place.old(ts)),
        staging,
        root: place.data_root.clone(),
        place,
        address,
    }))
}

impl Second {
    /// Creates the (empty) staging directory next to the root, on its filesystem.
    pub(crate) fn make_staging(&self) -> Result<()> {
        let parent = self.staging.parent().unwrap_or(Path::new("/"));
        std::fs::create_dir_all(parent).map_err(PlanError::file("create", parent))?;
        std::fs::create_dir(&self.staging).map_err(PlanError::file("create the staging directory", &self.staging))
    }

    /// The tree that swaps (and rebinds) in the data-root's step.
    pub(crate) fn tree(&self) -> Tree {
        Tree { place: self.place.clone(), staging: self.staging.clone(), old: self.old.clone() }
    }

    /// Docker's manager, extended to stop containerd after Docker and start
    /// it before (its root is about to be replaced).
    pub(crate) fn whole_engine(&self, docker: Box<dyn ServiceManager>, timing: Timing) -> Box<dyn ServiceManager> {
        let rec = ContainerdRecord { address: self.address.clone(), root: self.root.clone() };
        Box::new(WholeEngine::new(docker, rec, timing))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::plan::backup::meta::StoreTree;

    fn meta(namespaces: &[&str]) -> BackupMeta {
        let j = serde_json::json!({
            "format": 1, "tool": "dockroot", "tool_version": "0", "engine_version": null, "storage_driver": null,
            "data_root": "/var/lib/docker", "hostname": "h", "created": "20260101T000000Z", "entries": 1, "bytes": 0,
            "docker": null,
        });
        let mut m: BackupMeta = serde_json::from_value(j).unwrap();
        m.containerd_tree = Some(StoreTree {
            root: "/var/lib/containerd".into(),
            entries: 1,
            bytes: 0,
            allocated: None,
            namespaces: namespaces.iter().map(|s| s.to_string()).collect(),
        });
        m
    }

    fn opts(host: &Path, shared: bool) -> RestoreOptions {
        RestoreOptions {
            source: "-".into(),
            data_root: None,
            service: crate::service::ServiceKind::None,
            api: crate::docker::api::DockerApi::new("/nonexistent.sock"),
            state_dir: host.join("state"),
            force: false,
            allow_downgrade: false,
            with_config: false,
            host_root: host.into(),
            daemon_json: host.join("etc/docker/daemon.json"),
            dockerd: "dockerd".into(),
            threads: 1,
            timing: Timing::default(),
            shared_store: shared,
            rootless: None,
            remap_ids: false,
        }
    }

    #[test]
    fn second_tree_names_and_the_shared_store_refusal() {
        let d = tempfile::tempdir().unwrap();
        let root = d.path().join("ctd");
        std::fs::create_dir_all(d.path().join("etc/containerd")).unwrap();
        let cfg = format!("version = 3\nroot = '{}'\nstate = '{}'\n", root.display(), d.path().join("run").display());
        std::fs::write(d.path().join("etc/containerd/config.toml"), cfg).unwrap();
        let plain = BackupMeta { containerd_tree: None, ..meta(&[]) };
        assert!(plan(&opts(d.path(), false), &plain, "T", &mut vec![]).unwrap().is_none());
        let e = plan(&opts(d.path(), false), &meta(&["k8s.io", "moby"]), "T", &mut vec![]).unwrap_err().to_string();
        assert!(e.contains("k8s.io") && e.contains("--shared-store"), "{e}");
        // `containerd config dump` (when installed) wins over the file: compare with what it says.
        let root = containerd::system_dirs(&d.path().join("etc/containerd/config.toml")).root;
        let s = plan(&opts(d.path(), true), &meta(&["k8s.io", "moby"]), "T", &mut vec![]).unwrap().unwrap();
        assert_eq!(s.root, root);
        assert_eq!(s.staging, atomic::with_suffix(&root, ".dockroot-staging-T"));
        assert_eq!(s.old.is_some(), root.exists());
        assert_eq!((s.place.data_root.as_path(), s.tree().staging), (root.as_path(), s.staging.clone()));
    }
}
