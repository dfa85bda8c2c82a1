//! The bind sources a backup carries (issue 18 item 2): every container's
//! bind mounts, classified by [`crate::docker::mounts`]; each app-data
//! source becomes a tree of its own (`binds/<n>/`, see
//! docs/archive-format.md) archived with the same fidelity and phases as
//! the data-root, and every other source is named with the reason.

use std::path::{Path, PathBuf};

use crate::archive::TreeSource;
use crate::archive::layout::Tree;
use crate::docker::api::DockerApi;
use crate::docker::mountinfo;
use crate::docker::mounts::{self, BindClass, Carried, SourceKind};
use crate::plan::backup::meta::{BindKind, BindTree, SkippedBind};
use crate::plan::{PlanError, Result};

/// `--binds`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Binds {
    /// Carry every app-data bind source.
    #[default]
    Auto,
    /// Carry none (each is named as skipped).
    None,
}

/// The bind sources of a backup: the trees to archive and what meta.json says.
#[derive(Debug, Clone, Default)]
pub struct Selected {
    pub carried: Vec<BindTree>,
    pub skipped: Vec<SkippedBind>,
}

impl Selected {
    /// The trees to archive, in archive order.
    pub fn sources(&self) -> Vec<TreeSource> {
        self.carried
            .iter()
            .map(|b| match b.kind {
                BindKind::Dir => TreeSource::dir(b.tree(), &b.path),
                BindKind::File => TreeSource::file(b.tree(), &b.path),
            })
            .collect()
    }

    /// Bytes of every carried source (for the space check).
    pub fn bytes(&self) -> u64 {
        self.carried.iter().map(|b| b.bytes).sum()
    }
}

/// Reads every container's mounts (API or, with Docker stopped, the
/// containers' files) and selects the sources to carry.
pub fn select(mode: Binds, exclude: &[PathBuf], api: &DockerApi, carried: &Carried) -> Result<Selected> {
    let containers = mounts::read_all(Some(api), &carried.data_root).map_err(PlanError::docker_at("list the containers' mounts"))?;
    let table = mountinfo::read_self().unwrap_or_default();
    let exclude: Vec<PathBuf> = exclude.iter().map(|p| std::fs::canonicalize(p).unwrap_or_else(|_| p.clone())).collect();
    let survey = mounts::survey(&containers, carried, &exclude, &mut |p: &Path| mounts::probe(p, &table));
    let mut out = Selected::default();
    for b in survey {
        let reason = match (&b.class, mode) {
            (BindClass::AppData, Binds::None) => Some("--binds none".to_string()),
            (c, _) => c.reason().map(str::to_string),
        };
        if let Some(reason) = reason {
            out.skipped.push(SkippedBind { path: b.path, reason, containers: b.containers });
            continue;
        }
        let index = u32::try_from(out.carried.len()).map_err(|_| PlanError::refused("too many bind sources"))?;
        let kind = if b.kind == SourceKind::File { BindKind::File } else { BindKind::Dir };
        // A file is archived with its parent's root member: one entry more.
        let entries = b.entries + u64::from(kind == BindKind::File);
        out.carried.push(BindTree {
            index,
            path: b.path,
            kind,
            entries,
            bytes: b.size_bytes,
            allocated: Some(b.allocated),
            containers: b.containers,
            mounts_inside: b.mounts_inside,
        });
    }
    Ok(out)
}

/// The tree of the archive a bind source is, for messages.
pub fn describe(b: &BindTree) -> String {
    let tree = String::from_utf8_lossy(&Tree::Bind(b.index).prefix()).into_owned();
    let mounts = if b.mounts_inside.is_empty() {
        String::new()
    } else {
        format!(" (stops at the mounts {}: their contents are not carried)", b.mounts_inside.join(", "))
    };
    format!("{} as {tree}, used by {}{mounts}", b.path.display(), b.containers.join(", "))
}
