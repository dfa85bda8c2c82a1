//! The second tree of a move (issue 8): with the containerd image store on
//! the system containerd, images, snapshots and containers' writable layers
//! are in containerd's root, so the move relocates that root beside the
//! data-root: its own target (default: next to the data-root's target,
//! named like the root, e.g. `/mnt/data/docker` and `/mnt/data/containerd`),
//! its own pre-copy, sync and verify, and its own switch (a second bind
//! mount, fstab line and containerd.service drop-in; or `root` in
//! containerd's config). Both stores are stopped and started together
//! ([`crate::service::engine::WholeEngine`]).

use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use serde::Serialize;

use super::preflight::{MoveRequest, SPACE_MARGIN_PERCENT, check_not_own_fs, check_target};
use super::probe;
use crate::docker::containerd::CONFIG_FILE;
use crate::docker::engine::EngineFacts;
use crate::docker::{facts, mountinfo};
use crate::plan::core::error::{PlanError, Result};
use crate::plan::core::journal::{Method, TreeMove};
use crate::plan::env::{Env, absolute};
use crate::service::ServiceKind;
use crate::service::engine::ContainerdRecord;

/// What the move does with containerd's root.
#[derive(Debug, Clone, Serialize)]
pub struct ContainerdPlan {
    pub source: PathBuf,
    pub target: PathBuf,
    pub size_bytes: u64,
    pub entries: u64,
    /// containerd's namespaces (`moby`, and others with `--shared-store`).
    pub namespaces: Vec<String>,
    /// The config whose `root` the data-root method edits.
    pub config: PathBuf,
    /// containerd.service's drop-in, with the bind method under systemd.
    pub dropin: Option<PathBuf>,
    #[serde(skip)]
    pub record: ContainerdRecord,
}

impl ContainerdPlan {
    /// The journal's record of this tree.
    pub(crate) fn tree(&self) -> TreeMove {
        TreeMove {
            source: self.source.clone(),
            target: self.target.clone(),
            old_tree: None,
            config: self.config.clone(),
            dropin: self.dropin.clone(),
        }
    }
}

/// Where a drop-in for containerd.service goes: beside docker.service's.
pub(crate) fn dropin_path(docker_dropin: &Path) -> PathBuf {
    let dir = docker_dropin.parent().and_then(Path::parent).unwrap_or(Path::new("/etc/systemd/system"));
    dir.join("containerd.service.d").join(docker_dropin.file_name().unwrap_or("dockroot-mount.conf".as_ref()))
}

/// The data-root's part of the preflight that the containerd tree adds to.
pub struct Primary<'a> {
    pub data_root: &'a Path,
    pub target: &'a Path,
    pub bytes: u64,
    pub service: &'a ServiceKind,
    pub mounts: &'a [mountinfo::MountEntry],
}

/// Checks the containerd tree and plans it; `None` when containerd's root
/// holds no image of Docker's outside the data-root (graph driver, or
/// dockerd's own containerd inside the data-root): then containerd is not
/// touched.
pub fn preflight(env: &Env, req: &MoveRequest, facts: &EngineFacts, p: &Primary) -> Result<Option<ContainerdPlan>> {
    if facts.images_outside(p.data_root).is_none() {
        return Ok(None);
    }
    let Some(record) = ContainerdRecord::for_engine(facts) else { return Ok(None) };
    let c = &facts.containerd;
    if !c.foreign_namespaces.is_empty() && !req.shared_store {
        return Err(PlanError::preflight(format!(
            "containerd's root {} is shared with other namespaces than Docker's: {} (from {}); moving it stops containerd and \
             everything in those namespaces too. Stop their users first (e.g. the kubelet) and pass --shared-store to move the \
             whole store anyway",
            record.root.display(),
            c.foreign_namespaces.join(", "),
            c.namespaces_source
        )));
    }
    if let ServiceKind::Pidfile(pf) = p.service {
        return Err(PlanError::preflight(format!(
            "Docker keeps its images in the system containerd's root {}, which must stop with Docker, but with --service \
             pidfile:{} dockroot cannot tell what starts containerd; use --service systemd|sysv|openrc if that manager runs \
             containerd, or move both by hand with Docker and containerd stopped",
            record.root.display(),
            pf.display()
        )));
    }
    let source = std::fs::canonicalize(&record.root).map_err(|e| PlanError::io("preflight", &record.root, e))?;
    let name = source.file_name().unwrap_or("containerd".as_ref());
    let target = absolute(&req.containerd_target.clone().unwrap_or_else(|| p.target.parent().unwrap_or(Path::new("/")).join(name)));
    check_target(&source, &target)?;
    for (a, b) in [(&target, p.target), (&target, p.data_root), (&source, p.target)] {
        if a.starts_with(b) || b.starts_with(a) {
            return Err(PlanError::preflight(format!(
                "containerd's target {} and {} contain one another; pass --containerd-to with a directory of its own",
                a.display(),
                b.display()
            )));
        }
    }
    let foreign: Vec<String> = mountinfo::below(p.mounts, &source)
        .into_iter()
        .filter(|m| m.fstype != "overlay" && m.mount_point != source)
        .map(|m| format!("{} ({})", m.mount_point.display(), m.fstype))
        .collect();
    if !foreign.is_empty() {
        return Err(PlanError::preflight(format!("mounts below {}: {}; unmount them first", source.display(), foreign.join(", "))));
    }
    if req.method == Method::Bind {
        check_not_own_fs(p.mounts, &source)?;
    }
    let size = facts::tree_size(&source).map_err(PlanError::docker("preflight"))?;
    check_space(&target, size.bytes, p)?;
    let dropin = (req.method == Method::Bind && *p.service == ServiceKind::Systemd).then(|| dropin_path(&env.dropin));
    Ok(Some(ContainerdPlan {
        source,
        target,
        size_bytes: size.bytes,
        entries: size.entries,
        namespaces: c.namespaces.clone(),
        config: CONFIG_FILE.into(),
        dropin,
        record,
    }))
}

/// The target must take containerd's root, and the data-root too when both
/// targets are on one filesystem (the data-root's own check counted only it).
fn check_space(target: &Path, bytes: u64, p: &Primary) -> Result<()> {
    let pr = probe::probe(target);
    if !pr.ok() {
        return Err(PlanError::preflight(format!("target {} ({}): {}", target.display(), pr.fs_type, pr.problems.join("; "))));
    }
    let dev = |t: &Path| std::fs::metadata(probe::existing_ancestor(t)).map(|m| m.dev()).ok();
    let shared = dev(target).is_some() && dev(target) == dev(p.target);
    let total = bytes + if shared { p.bytes } else { 0 };
    let need = total + total * SPACE_MARGIN_PERCENT / 100;
    if pr.free_bytes < need {
        return Err(PlanError::preflight(format!(
            "target {} has {} bytes free, but containerd's root holds {bytes} bytes{} (+{}% margin = {need}); choose a larger disk or free space",
            target.display(),
            pr.free_bytes,
            if shared { format!(" and the data-root, on the same filesystem, {} bytes", p.bytes) } else { String::new() },
            SPACE_MARGIN_PERCENT
        )));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn containerd_dropin_sits_beside_dockers() {
        assert_eq!(
            dropin_path(Path::new("/etc/systemd/system/docker.service.d/dockroot-mount.conf")),
            PathBuf::from("/etc/systemd/system/containerd.service.d/dockroot-mount.conf")
        );
    }
}
