//! The checks the preflight of both stores (data-root, containerd's root) makes
//! of a target: where it is, that it is empty, that it has room.

use std::path::Path;

use crate::docker::mountinfo;
use crate::plan::core::error::{PlanError, Result};

/// Free space required beyond the data-root's size, in percent.
pub(crate) const SPACE_MARGIN_PERCENT: u64 = 10;

pub(super) fn check_target(dr: &Path, target: &Path) -> Result<()> {
    if target.starts_with(dr) || dr.starts_with(target) {
        return Err(PlanError::preflight(format!(
            "target {} and data-root {} contain one another; choose a directory outside the data-root",
            target.display(),
            dr.display()
        )));
    }
    match std::fs::symlink_metadata(target) {
        Err(e) if e.kind() == std::io::ErrorKind::NotFound && target.parent().is_some_and(|p| !p.is_dir()) => {
            Err(PlanError::preflight(format!(
                "the directory {} that would hold target {} does not exist; create it (or mount its disk) first",
                target.parent().unwrap_or(target).display(),
                target.display()
            )))
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(PlanError::preflight(format!("target {}: {e}", target.display()))),
        Ok(m) if !m.is_dir() => Err(PlanError::preflight(format!("target {} exists and is not a directory", target.display()))),
        Ok(_) => {
            let mut rd = std::fs::read_dir(target).map_err(|e| PlanError::preflight(format!("target {}: {e}", target.display())))?;
            match rd.next() {
                None => Ok(()),
                Some(Ok(e)) if e.file_name() == "lost+found" => Err(PlanError::preflight(format!(
                    "target {} is the root of a filesystem (it holds lost+found); use a directory inside it, e.g. {}",
                    target.display(),
                    target.join("docker").display()
                ))),
                Some(_) => {
                    Err(PlanError::preflight(format!("target {} is not empty; choose an empty or absent directory", target.display())))
                }
            }
        }
    }
}

/// The bind method renames the data-root; that fails when it is a
/// filesystem of its own (another device than its parent).
pub(super) fn check_not_own_fs(mounts: &[mountinfo::MountEntry], dr: &Path) -> Result<()> {
    let Some(me) = mounts.iter().rev().find(|m| m.mount_point == dr) else {
        return Ok(());
    };
    let parent = dr.parent().and_then(|p| mountinfo::containing(mounts, p));
    if parent.is_some_and(|p| p.major_minor != me.major_minor) {
        return Err(PlanError::preflight(format!(
            "{} is a filesystem of its own ({} on {}); the bind method cannot rename it: use --method data-root",
            dr.display(),
            me.fstype,
            me.source
        )));
    }
    Ok(())
}
