//! Restore onto a data-root that is a mount point (issue 8). Renaming a mount
//! point fails with EBUSY, and renaming the directory beneath it would leave
//! Docker on the old tree, so where the new tree goes depends on what is
//! mounted there, judged from mountinfo by mount and device IDs:
//!
//! - a **bind mount** of a directory elsewhere (`move --method bind`, or a
//!   hand-made bind): the tree is staged next to the bind's source, swapped
//!   in at the source path (the old source is renamed aside), and the bind on
//!   the data-root is replaced by a bind of the new source. The fstab line
//!   stays right because the source path is unchanged.
//! - a **whole filesystem** (a dedicated disk): the tree is staged in a hidden
//!   directory at the filesystem's root, and the swap exchanges the
//!   contents: every top-level entry is renamed into a hidden old directory,
//!   then every staged entry into the root. Each rename is an intent of its
//!   own, so the shared undo puts every entry back; the mount point itself
//!   is never renamed.
//!
//! `--data-root <bind source>` while that source is bound on another path is
//! the bind case of that path: the result is the same.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use serde::Serialize;

use super::{OLD_INFIX, STAGING_INFIX};
use crate::docker::mountinfo::{self, MountKind};
use crate::plan::core::intent::{self, Intent};
use crate::plan::core::runner::Runner;
use crate::plan::{PlanError, Result};
use crate::util::atomic;

/// What is mounted at the data-root, and so how the new tree goes in.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "case", rename_all = "kebab-case")]
pub enum Layout {
    /// A plain directory: the staged tree is renamed onto the data-root.
    Plain,
    /// The data-root is a bind mount of the directory `source`.
    Bind { source: PathBuf },
    /// A whole filesystem (`device`, `fstype`) is mounted at the data-root.
    Filesystem { device: String, fstype: String },
}

/// The data-root to restore and what is mounted there.
#[derive(Debug, Clone, Serialize)]
pub struct Place {
    pub data_root: PathBuf,
    #[serde(flatten)]
    pub layout: Layout,
}

fn refused(msg: String) -> PlanError {
    PlanError::refused(msg)
}

impl Place {
    /// Finds what is mounted at `dr`; a `dr` that is the source of a bind
    /// mount becomes that bind's mount point (with a warning).
    pub(crate) fn detect(dr: &Path, warnings: &mut Vec<String>) -> Result<Place> {
        let mounts = mountinfo::read_self().map_err(PlanError::docker_at("read the mount table"))?;
        let mut dr = dr.to_path_buf();
        if mountinfo::kind_at(&mounts, &dr) == MountKind::None {
            match mountinfo::binds_of(&mounts, &dr)[..] {
                [] => {}
                [ref point] => {
                    warnings.push(format!(
                        "{} is bind-mounted on {}; restoring as a restore of {} (the tree is replaced at {} and the bind follows it)",
                        dr.display(),
                        point.display(),
                        point.display(),
                        dr.display()
                    ));
                    dr = point.clone();
                }
                ref points => {
                    return Err(refused(format!(
                        "{} is bind-mounted on {}; restore onto one of those paths with --data-root",
                        dr.display(),
                        points.iter().map(|p| p.display().to_string()).collect::<Vec<_>>().join(", ")
                    )));
                }
            }
        }
        let layout = match mountinfo::kind_at(&mounts, &dr) {
            MountKind::None => Layout::Plain,
            MountKind::Filesystem { source, fstype } => Layout::Filesystem { device: source, fstype },
            MountKind::Bind { source: None, major_minor } => {
                return Err(refused(format!(
                    "data-root {} is a bind mount of a directory of filesystem {major_minor}, which no other mount shows; mount that \
                     filesystem so the bind's source is reachable, and run the restore again",
                    dr.display()
                )));
            }
            MountKind::Bind { source: Some(source), .. } => {
                if !source.is_dir() || mountinfo::is_mount_point(&mounts, &source) {
                    return Err(refused(format!(
                        "data-root {} is bound from {}, which is {}; make the bind's source a plain directory and run the restore again",
                        dr.display(),
                        source.display(),
                        if source.is_dir() { "itself a mount point" } else { "not a directory" }
                    )));
                }
                Layout::Bind { source }
            }
        };
        Ok(Place { data_root: dr, layout })
    }

    /// The path whose tree is replaced (the bind's source, else the data-root).
    pub(crate) fn tree(&self) -> &Path {
        match &self.layout {
            Layout::Bind { source } => source,
            _ => &self.data_root,
        }
    }

    /// Where the archive is staged: next to the tree, or inside a whole
    /// filesystem (the rename must stay on one filesystem).
    pub fn staging(&self, ts: &str) -> PathBuf {
        self.name(STAGING_INFIX, ts)
    }

    /// Where the current tree (or its entries) is kept.
    pub(crate) fn old(&self, ts: &str) -> PathBuf {
        self.name(OLD_INFIX, ts)
    }

    fn name(&self, infix: &str, ts: &str) -> PathBuf {
        match self.layout {
            Layout::Filesystem { .. } => self.data_root.join(format!("{infix}{ts}")),
            _ => atomic::with_suffix(self.tree(), &format!("{infix}{ts}")),
        }
    }

    /// What the swap will rename and remount, for `--dry-run`.
    pub fn describe(&self) -> String {
        let (dr, tree) = (self.data_root.display(), self.tree().display());
        match &self.layout {
            Layout::Plain => format!("rename {dr} to {dr}{OLD_INFIX}<UTC time> and the restored tree to {dr}"),
            Layout::Bind { .. } => format!(
                "{dr} is a bind mount of {tree}: rename {tree} to {tree}{OLD_INFIX}<UTC time> and the restored tree (staged as \
                 {tree}{STAGING_INFIX}<UTC time>) to {tree}, then unmount {dr} and bind {tree} on it again"
            ),
            Layout::Filesystem { device, fstype } => format!(
                "{dr} is the mount point of {device} ({fstype}): stage in {dr}/{STAGING_INFIX}<UTC time>, rename every top-level \
                 entry of {dr} into {dr}/{OLD_INFIX}<UTC time> and every restored entry into {dr}; the mount stays"
            ),
        }
    }

    /// What the user must know after a restore that kept `old` aside.
    pub(crate) fn note(&self, old: Option<&Path>) -> Option<String> {
        match (&self.layout, old) {
            (Layout::Filesystem { .. }, Some(old)) => Some(format!(
                "the previous entries are kept in {} inside {}; delete it when satisfied (a backup taken before then includes it)",
                old.display(),
                self.data_root.display()
            )),
            _ => None,
        }
    }

    /// The intents of the swap step: renames (and, for a whole filesystem,
    /// the directory that takes the old entries), in the order they act.
    fn swap_intents(&self, staging: &Path, old: Option<&Path>) -> Result<Vec<Intent>> {
        let tree = self.tree();
        let mut v = Vec::new();
        if !matches!(self.layout, Layout::Filesystem { .. }) {
            if let Some(old) = old {
                v.push(Intent::rename(tree, old, false));
            }
            v.push(Intent::rename(staging, tree, false));
            return Ok(v);
        }
        let old = old.ok_or_else(|| refused(format!("no name recorded for the old entries of {}", tree.display())))?;
        v.push(Intent::MakeDir { path: old.into() });
        for name in entries(tree)? {
            v.push(Intent::rename(&tree.join(&name), &old.join(&name), false));
        }
        for name in entries(staging)? {
            // By name, not identity: dockerd replaces some entries of its
            // root when it starts (runtimes/). What these renames carry back
            // is restored content, deleted with the staging tree, which goes
            // by its own identity.
            let (from, to) = (staging.join(&name), tree.join(&name));
            v.push(Intent::Rename { from, to, leave_empty: false, id: None });
        }
        Ok(v)
    }
}

/// A further tree that swaps in the data-root's step (containerd's root):
/// where it is, its staging tree, and where its current tree goes.
#[derive(Debug, Clone)]
pub struct Tree {
    pub place: Place,
    pub staging: PathBuf,
    pub old: Option<PathBuf>,
}

impl Tree {
    /// The bind on the mount point moved to the new tree, if it is a bind.
    fn rebind(&self) -> Option<Intent> {
        match (&self.place.layout, &self.old) {
            (Layout::Bind { source }, Some(old)) => {
                Some(Intent::Rebind { target: self.place.data_root.clone(), source: source.clone(), old: old.clone() })
            }
            _ => None,
        }
    }
}

/// The names in `dir`, without dockroot's own hidden staging and old
/// directories (of this restore or an earlier one).
fn entries(dir: &Path) -> Result<BTreeSet<std::ffi::OsString>> {
    let rd = std::fs::read_dir(dir).map_err(PlanError::file("list", dir))?;
    let mut names = BTreeSet::new();
    for e in rd {
        let name = e.map_err(PlanError::file("list", dir))?.file_name();
        let s = name.to_string_lossy();
        if !(s.starts_with(STAGING_INFIX) || s.starts_with(OLD_INFIX)) {
            names.insert(name);
        }
    }
    Ok(names)
}

/// The swap step (and, for a bind, the rebind step): every name is recorded
/// before the first rename acts. `more` swaps in the same steps (containerd's
/// root), so an undo from any point puts both trees and both binds back.
pub(super) fn swap(r: &mut Runner, place: &Place, more: Option<Tree>) -> Result<()> {
    let first = Tree { place: place.clone(), staging: r.j.target.clone(), old: r.j.old_tree.clone() };
    let trees: Vec<Tree> = std::iter::once(first).chain(more).collect();
    let mut intents = Vec::new();
    for t in &trees {
        intents.extend(t.place.swap_intents(&t.staging, t.old.as_deref())?);
    }
    r.step_with("swap", intents.clone(), |_| {
        let mut dirs = BTreeSet::new();
        for i in &intents {
            match i {
                Intent::Rename { from, to, .. } => {
                    std::fs::rename(from, to).map_err(PlanError::file("rename", from))?;
                    dirs.extend([from, to].iter().filter_map(|p| p.parent().map(Path::to_path_buf)));
                }
                Intent::MakeDir { path } => std::fs::create_dir(path).map_err(PlanError::file("create", path))?,
                _ => {}
            }
        }
        for d in dirs {
            std::fs::File::open(&d).and_then(|f| f.sync_all()).map_err(PlanError::file("sync", &d))?;
        }
        Ok::<_, PlanError>(())
    })?;
    let rebinds: Vec<Intent> = trees.iter().filter_map(Tree::rebind).collect();
    if rebinds.is_empty() {
        return Ok(());
    }
    r.step_with("rebind", rebinds.clone(), |_| {
        for i in &rebinds {
            if let Intent::Rebind { target, source, .. } = i {
                // Also removes dockerd's bind of the data-root onto itself, if it left one.
                intent::unmount_all(target)?;
                crate::sys::mount::bind(source, target).map_err(PlanError::file("bind-mount the restored tree on", target))?;
            }
        }
        Ok::<_, PlanError>(())
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn whole_filesystem_swap_names_every_entry_and_skips_its_own() {
        let d = tempfile::tempdir().unwrap();
        let (root, staging, old) = (d.path().to_path_buf(), d.path().join(".dockroot-staging-T"), d.path().join(".dockroot-old-T"));
        for p in [root.join("image"), root.join("lost+found"), staging.clone(), staging.join("image"), root.join(".dockroot-old-X")] {
            std::fs::create_dir(&p).unwrap();
        }
        std::fs::write(staging.join("engine-id"), "x").unwrap();
        let place = Place { data_root: root.clone(), layout: Layout::Filesystem { device: "/dev/x".into(), fstype: "ext4".into() } };
        assert_eq!(place.staging("T"), staging);
        let v = place.swap_intents(&staging, Some(&old)).unwrap();
        let r = |a: &Path, b: &Path, n: &str| Intent::rename(&a.join(n), &b.join(n), false);
        let by_name = |a: &Path, b: &Path, n: &str| Intent::Rename { from: a.join(n), to: b.join(n), leave_empty: false, id: None };
        assert_eq!(
            v,
            vec![
                Intent::MakeDir { path: old.clone() },
                r(&root, &old, "image"),
                r(&root, &old, "lost+found"),
                by_name(&staging, &root, "engine-id"),
                by_name(&staging, &root, "image"),
            ]
        );
        // Applied, then undone in reverse from the observed state.
        std::fs::create_dir(&old).unwrap();
        for i in &v[1..] {
            if let Intent::Rename { from, to, .. } = i {
                std::fs::rename(from, to).unwrap();
            }
        }
        assert!(root.join("engine-id").exists() && old.join("lost+found").exists());
        for i in v.iter().rev() {
            intent::undo(i).unwrap();
        }
        assert!(staging.join("engine-id").exists() && root.join("lost+found").exists() && !old.exists());
    }

    #[test]
    fn bind_names_follow_the_source() {
        let place = Place { data_root: "/var/lib/docker".into(), layout: Layout::Bind { source: "/data/docker".into() } };
        assert_eq!(place.staging("T"), PathBuf::from("/data/docker.dockroot-staging-T"));
        assert_eq!(place.old("T"), PathBuf::from("/data/docker.dockroot-old-T"));
        assert!(place.describe().contains("bind /data/docker on it again"));
        let tree = |place: Place| Tree { staging: place.staging("T"), old: Some(place.old("T")), place };
        assert_eq!(
            tree(place.clone()).rebind(),
            Some(Intent::Rebind { target: "/var/lib/docker".into(), source: "/data/docker".into(), old: place.old("T") })
        );
        assert_eq!(tree(Place { layout: Layout::Plain, ..place }).rebind(), None);
    }
}
