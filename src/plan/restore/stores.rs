//! The second store of a restore (issue 8): an archive of the containerd
//! image store carries containerd's root beside the data-root. It is
//! restored the way the data-root is, as one unit with it: extracted into
//! `<root>.dockroot-staging-<ts>` on the root's own filesystem, verified
//! against its manifest before anything is replaced, then swapped by two
//! renames recorded in the same journaled step as the data-root's (the
//! current root kept as `<root>.dockroot-old-<ts>`), so `rollback` after a
//! kill at any point puts both old trees back. Docker is stopped and started
//! together with containerd ([`crate::service::engine::WholeEngine`]),
//! which holds the root open while it runs.

use std::path::{Path, PathBuf};

use super::{OLD_INFIX, RestoreOptions, STAGING_INFIX};
use crate::docker::atomic;
use crate::docker::containerd::{self, CONFIG_FILE, SYSTEM_SOCKET};
use crate::plan::archive_error::{BackupError, Result};
use crate::plan::backup::BackupMeta;
use crate::plan::intent::Intent;
use crate::service::ServiceManager;
use crate::service::engine::{ContainerdRecord, WholeEngine};
use crate::service::wait::Timing;

/// Where containerd's root goes on this host, and the names around it.
#[derive(Debug, Clone)]
pub struct Second {
    /// containerd's root as this host's containerd is configured.
    pub root: PathBuf,
    pub staging: PathBuf,
    /// The tree's manifest, streamed out of the archive next to the staging tree.
    pub manifest: PathBuf,
    /// Where the current root is kept (`None` when there is none).
    pub old: Option<PathBuf>,
    /// The socket this host's containerd listens on (its shims carry it).
    pub address: PathBuf,
}

/// The second tree to restore, if the archive has one. Refuses a store that
/// other namespaces share, on either side, unless `--shared-store`: their
/// images would be replaced too.
pub fn plan(opts: &RestoreOptions, meta: &BackupMeta, ts: &str) -> Result<Option<Second>> {
    let Some(tree) = &meta.containerd_tree else { return Ok(None) };
    let dirs = containerd::system_dirs(&opts.host_root.join(CONFIG_FILE.trim_start_matches('/')));
    let root = super::super::absolute(&dirs.root);
    let address = opts.host_root.join(SYSTEM_SOCKET.trim_start_matches('/'));
    // The host's store as it is now: another user's namespaces there would be set aside with it.
    let (now, _) = containerd::namespaces(Some(&address), &dirs.state);
    let mut others = containerd::foreign(&tree.namespaces);
    others.extend(containerd::foreign(&now));
    others.sort();
    others.dedup();
    if !others.is_empty() && !opts.shared_store {
        return Err(BackupError::Refused(format!(
            "containerd's root {} is shared with the namespaces {} (in the archive or on this host); a restore replaces the whole \
             store, theirs included. Pass --shared-store to restore it anyway (the current root is kept aside)",
            root.display(),
            others.join(", ")
        )));
    }
    let staging = atomic::with_suffix(&root, &format!("{STAGING_INFIX}{ts}"));
    Ok(Some(Second {
        manifest: atomic::with_suffix(&staging, ".manifest"),
        old: root.symlink_metadata().is_ok().then(|| atomic::with_suffix(&root, &format!("{OLD_INFIX}{ts}"))),
        staging,
        root,
        address,
    }))
}

impl Second {
    /// Creates the (empty) staging directory next to the root, on its filesystem.
    pub fn make_staging(&self) -> Result<()> {
        let parent = self.staging.parent().unwrap_or(Path::new("/"));
        std::fs::create_dir_all(parent).map_err(BackupError::io("create", parent))?;
        std::fs::create_dir(&self.staging).map_err(BackupError::io("create the staging directory", &self.staging))
    }

    /// The renames of the swap, recorded with the data-root's before any acts.
    pub fn renames(&self) -> Vec<Intent> {
        let mut v = Vec::new();
        if let Some(old) = &self.old {
            v.push(Intent::Rename { from: self.root.clone(), to: old.clone(), leave_empty: false });
        }
        v.push(Intent::Rename { from: self.staging.clone(), to: self.root.clone(), leave_empty: false });
        v
    }

    /// Docker's manager, extended to stop containerd after Docker and start
    /// it before (its root is about to be replaced).
    pub fn whole_engine(&self, docker: Box<dyn ServiceManager>, timing: Timing) -> Box<dyn ServiceManager> {
        let rec = ContainerdRecord { address: self.address.clone(), root: self.root.clone() };
        Box::new(WholeEngine::new(docker, rec, timing))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::plan::backup_stores::StoreTree;

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
            dockerd: "dockerd".into(),
            threads: 1,
            timing: Timing::default(),
            shared_store: shared,
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
        assert!(plan(&opts(d.path(), false), &plain, "T").unwrap().is_none());
        let e = plan(&opts(d.path(), false), &meta(&["k8s.io", "moby"]), "T").unwrap_err().to_string();
        assert!(e.contains("k8s.io") && e.contains("--shared-store"), "{e}");
        // `containerd config dump` (when installed) wins over the file: compare with what it says.
        let root = containerd::system_dirs(&d.path().join("etc/containerd/config.toml")).root;
        let s = plan(&opts(d.path(), true), &meta(&["k8s.io", "moby"]), "T").unwrap().unwrap();
        assert_eq!(s.root, root);
        assert_eq!(s.staging, atomic::with_suffix(&root, ".dockroot-staging-T"));
        assert_eq!(s.old.is_some(), root.exists());
        let renames = s.renames();
        assert_eq!(renames.last(), Some(&Intent::Rename { from: s.staging.clone(), to: root, leave_empty: false }));
    }
}
