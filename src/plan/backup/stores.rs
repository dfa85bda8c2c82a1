//! The second store of a backup: with the containerd image store and the
//! system containerd, images, layers and containers' writable layers live in
//! containerd's root, outside the data-root (issue 8). The backup archives
//! that root as one of its trees (`containerd/`, with its own manifest,
//! before the others; see [`crate::archive::layout`]), so an archive holds
//! everything Docker needs. Only the root (content store, snapshots,
//! metadata) goes in: the state dir holds sockets and running tasks only.
//!
//! containerd's metadata is shared by namespaces: `moby` is Docker's, and
//! another (`k8s.io` for a kubelet) is a second user of the same store. Its
//! images cannot be split off, so a backup of such a store is refused unless
//! the user says `--shared-store`: then the other namespaces are archived,
//! and later restored, with Docker's.

use std::path::{Path, PathBuf};

use crate::docker::engine::EngineFacts;
use crate::plan::backup::meta::StoreTree;
use crate::plan::{PlanError, Result};

/// The containerd root a backup of `data_root` must carry, or None when the
/// images are in the data-root. Refuses a store shared with other
/// namespaces unless `shared`, and a root that cannot be read.
pub(crate) fn containerd_root(facts: &EngineFacts, data_root: &Path, shared: bool) -> Result<Option<PathBuf>> {
    let Some(root) = facts.images_outside(data_root) else { return Ok(None) };
    if !root.is_dir() {
        // Cannot be archived: the refusal that explains where the images are.
        facts.check_complete("back up", data_root).map_err(PlanError::docker_at("check the image store"))?;
    }
    let others = &facts.containerd.foreign_namespaces;
    if !others.is_empty() && !shared {
        return Err(PlanError::refused(format!(
            "containerd's root {} holds Docker's images and also the namespaces {} of another user of the same containerd \
             (e.g. a kubelet); their data cannot be split from Docker's. Pass --shared-store to archive (and later restore) \
             them with Docker's, or stop that user first",
            root.display(),
            others.join(", ")
        )));
    }
    if data_root.starts_with(root) {
        return Err(PlanError::refused(format!(
            "the data-root {} is inside containerd's root {}; dockroot cannot archive the two apart",
            data_root.display(),
            root.display()
        )));
    }
    Ok(Some(root.to_path_buf()))
}

/// Counts the tree for meta.json (Docker is stopped by now).
pub fn describe(root: &Path, facts_namespaces: &[String]) -> StoreTree {
    let (entries, bytes, allocated) = crate::tree::estimate::estimate_with_allocated(root);
    StoreTree { root: root.to_path_buf(), entries, bytes, allocated: Some(allocated), namespaces: facts_namespaces.to_vec() }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::docker::engine::ImageStore;

    fn facts(root: &Path, ns: &[&str]) -> EngineFacts {
        crate::docker::engine::test_facts(ImageStore::Containerd, root.to_str().unwrap(), ns)
    }

    #[test]
    fn shared_store_is_refused_unless_asked_and_a_missing_root_is_explained() {
        let d = tempfile::tempdir().unwrap();
        let dr = d.path().join("docker");
        let root = d.path().join("containerd");
        std::fs::create_dir(&root).unwrap();
        assert_eq!(containerd_root(&facts(&root, &["moby"]), &dr, false).unwrap(), Some(root.clone()));
        let e = containerd_root(&facts(&root, &["k8s.io", "moby"]), &dr, false).unwrap_err().to_string();
        assert!(e.contains("k8s.io") && e.contains("--shared-store"), "{e}");
        assert_eq!(containerd_root(&facts(&root, &["k8s.io", "moby"]), &dr, true).unwrap(), Some(root.clone()));
        let gone = d.path().join("gone");
        let e = containerd_root(&facts(&gone, &["moby"]), &dr, false).unwrap_err().to_string();
        assert!(e.contains("cannot back up"), "{e}");
        // Inside the data-root (dockerd's own containerd): nothing extra to carry.
        assert_eq!(containerd_root(&facts(&dr.join("containerd/daemon"), &["moby"]), &dr, false).unwrap(), None);
    }
}
