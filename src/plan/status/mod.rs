//! `dockroot status`: what a move would have to deal with, gathered without
//! changing anything; with a target, whether that target can take the data.

pub mod disks;

use std::path::{Path, PathBuf};

use serde::Serialize;

use self::disks::Disk;
use crate::docker::daemon_json::DaemonJson;
use crate::docker::discover::{self, Conflict, Source};
use crate::docker::engine::EngineFacts;
use crate::docker::fstab::Fstab;
use crate::docker::{facts, mountinfo};
use crate::plan::core::error::{PlanError, Result};
use crate::plan::core::journal::Journal;
use crate::plan::env::{Env, absolute};
use crate::plan::r#move::preflight::SPACE_MARGIN_PERCENT;
use crate::plan::r#move::probe::{self, ProbeResult};
use crate::service::engine::engine_facts;

/// The report (also the `--json` output).
#[derive(Debug, Clone, Serialize)]
pub struct Status {
    pub data_root: PathBuf,
    pub source: Source,
    pub conflicts: Vec<Conflict>,
    pub running_data_root: Option<PathBuf>,
    pub daemon_running: bool,
    pub engine_version: Option<String>,
    pub storage_driver: Option<String>,
    pub live_restore: Option<bool>,
    pub userns_dirs: Vec<PathBuf>,
    /// The image store and the containerd serving Docker, with its dirs.
    pub engine: EngineFacts,
    /// Set when a backup or move would be refused: images outside the data-root.
    pub containerd_warning: Option<String>,
    /// Trees that hold images while the running daemon's data-root holds none:
    /// the trap of a boot-time starter that still passes an old `--data-root`.
    pub stranded_trees: Vec<PathBuf>,
    /// Mounts below the data-root (container layers while Docker runs).
    pub mounts_below: Vec<String>,
    pub size_bytes: u64,
    pub entries: u64,
    pub service_manager: String,
    pub running_containers: Option<u64>,
    /// The mounted disks, the data-root's marked: where it could move.
    pub disks: Vec<Disk>,
    /// An unfinished or un-finalized move.
    pub journal: Option<JournalSummary>,
    pub target: Option<TargetStatus>,
}

/// The journal without the recorded dockerd environment (it may hold secrets).
#[derive(Debug, Clone, Serialize)]
pub struct JournalSummary {
    pub id: String,
    pub operation: String,
    pub outcome: crate::plan::core::journal::Outcome,
    pub data_root: PathBuf,
    pub target: PathBuf,
    pub method: crate::plan::core::journal::Method,
    pub steps: Vec<crate::plan::core::journal::StepRecord>,
    pub old_tree: Option<PathBuf>,
}

impl From<Journal> for JournalSummary {
    fn from(j: Journal) -> Self {
        Self {
            id: j.id,
            operation: j.operation,
            outcome: j.outcome,
            data_root: j.data_root,
            target: j.target,
            method: j.method,
            steps: j.steps,
            old_tree: j.old_tree,
        }
    }
}

/// Facts about a prospective target.
#[derive(Debug, Clone, Serialize)]
pub struct TargetStatus {
    pub path: PathBuf,
    pub fs_type: String,
    pub free_bytes: u64,
    /// The fstab line mounting the target's filesystem, if any.
    pub in_fstab: bool,
    pub probe: ProbeResult,
    pub enough_space: bool,
}

/// Gathers the status; `to` adds the target checks.
pub fn status(env: &Env, to: Option<&Path>) -> Result<Status> {
    let opts = discover::DiscoverOptions { daemon_json: env.daemon_json.clone(), api: Some(env.api.clone()), ..Default::default() };
    let d = discover::discover(&opts).map_err(PlanError::docker("status"))?;
    let data_root = env.data_root.clone().unwrap_or(d.data_root.clone());
    let cfg = DaemonJson::load(&env.daemon_json).map_err(PlanError::docker("status"))?;
    let info = env.api.ping().then(|| env.api.info().ok()).flatten();
    let size = facts::tree_size(&data_root).unwrap_or_default();
    let mounts = mountinfo::read_self().map_err(PlanError::docker("status"))?;
    let below = mountinfo::below(&mounts, &data_root).into_iter().map(|m| format!("{} ({})", m.mount_point.display(), m.fstype)).collect();
    let engine = engine_facts(&env.service, &cfg, &data_root, info.as_ref(), env.timing);
    let need = size.bytes + engine.images_outside(&data_root).map_or(0, |_| engine.containerd.root_bytes);
    let target = to.map(|t| target_status(env, &mounts, &absolute(t), need));
    let journal = crate::plan::r#move::pending(&env.state).map(JournalSummary::from);
    let stranded = match &info {
        Some(i) if i.images == 0 && i.containers == 0 => stranded_trees(&i.docker_root_dir, journal.as_ref()),
        _ => Vec::new(),
    };
    Ok(Status {
        source: d.source,
        conflicts: d.conflicts,
        running_data_root: info.as_ref().map(|i| i.docker_root_dir.clone()),
        daemon_running: info.is_some(),
        engine_version: info.as_ref().map(|i| i.server_version.clone()),
        storage_driver: d.storage_driver,
        live_restore: d.live_restore,
        userns_dirs: facts::userns_dirs(&data_root).unwrap_or_default(),
        // A move carries containerd's root (plan::move::containerd); a backup does not yet.
        containerd_warning: engine.warning(&data_root),
        engine,
        stranded_trees: stranded,
        mounts_below: below,
        size_bytes: size.bytes,
        entries: size.entries,
        service_manager: env.service.clone().resolve().to_string(),
        running_containers: info.as_ref().map(|i| i.containers_running),
        disks: disks::list(&mounts, &data_root),
        journal,
        target,
        data_root,
    })
}

fn target_status(env: &Env, mounts: &[mountinfo::MountEntry], t: &Path, need: u64) -> TargetStatus {
    let pr = probe::probe(t);
    let fst = Fstab::load(&env.fstab).ok();
    let mp = mountinfo::containing(mounts, t).map(|m| m.mount_point.clone());
    let in_fstab = match (fst, mp) {
        (Some(f), Some(mp)) => f.entries().iter().any(|e| e.file == mp),
        _ => false,
    };
    TargetStatus {
        path: t.into(),
        fs_type: pr.fs_type.clone(),
        free_bytes: pr.free_bytes,
        in_fstab,
        enough_space: pr.free_bytes >= need + need * SPACE_MARGIN_PERCENT / 100,
        probe: pr,
    }
}

/// Old or moved trees with images next to an empty running data-root:
/// `<data-root>.dockroot-old-*` siblings and a pending move's trees.
fn stranded_trees(running: &Path, journal: Option<&JournalSummary>) -> Vec<PathBuf> {
    let mut candidates = facts::old_trees(running);
    if let Some(j) = journal {
        candidates.extend([j.target.clone(), j.data_root.clone()]);
        candidates.extend(j.old_tree.clone());
    }
    candidates.sort();
    candidates.dedup();
    candidates.into_iter().filter(|t| t != running && facts::holds_images(t)).collect()
}
