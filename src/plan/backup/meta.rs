//! `.dockroot/meta.json`, the archive's first member: what made the archive
//! and what it holds. `inspect` shows it, `restore` checks it.

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use crate::archive::error::{ArchiveError, Result};
use crate::docker::engine::EngineMeta;
use crate::docker::rootless::RootlessIds;
use crate::docker::snapshot::DockerState;
use crate::docker::userns::Remap;
use crate::docker::volumes::VolumeSpec;

/// Version of the archive's layout (docs/archive-format.md): 2 since bind
/// trees and two phases over every tree; readers accept 1 and 2.
pub(crate) const META_FORMAT: u32 = 2;

/// `.dockroot/meta.json`: what `inspect` shows and `restore` checks.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct BackupMeta {
    pub format: u32,
    pub tool: String,
    pub tool_version: String,
    /// `dockerd --version` of the engine that owned the data (`None` if unknown).
    pub engine_version: Option<String>,
    pub storage_driver: Option<String>,
    pub data_root: PathBuf,
    pub hostname: String,
    /// UTC, `YYYYMMDDTHHMMSSZ`.
    pub created: String,
    /// Entries and bytes of the data-root, counted after Docker stopped
    /// (an estimate: the manifest's trailer has the exact entry count).
    pub entries: u64,
    pub bytes: u64,
    /// Bytes the data-root's files took on disk (st_blocks, holes excluded):
    /// the room a restore stages (absent in archives of older versions).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub allocated: Option<u64>,
    /// Images, containers and volumes as the daemon listed them before the stop.
    pub docker: Option<DockerState>,
    /// Image store and containerd (absent in archives of older dockroot versions).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub engine: Option<EngineMeta>,
    /// How the stopped state was captured before it was archived with Docker
    /// running again (`btrfs`, `reflink`); absent: archived with Docker stopped.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub snapshot: Option<String>,
    /// A live backup in two phases (see `archive::phase2`): members after
    /// the phase-2 marker replace earlier ones, then names are deleted.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub two_phase: bool,
    /// containerd's root, archived as the tree `containerd/` (absent: the images are in the data-root).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub containerd_tree: Option<StoreTree>,
    /// The engine's userns-remap: its setting, the user's subordinate ranges
    /// and the `<uid>.<gid>` subtree (absent: no remapping, or an older dockroot).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub userns: Option<Remap>,
    /// Every volume as the API described it before the stop: driver,
    /// options, labels and the containers that mount it (absent in archives
    /// of older dockroot versions: `restore --volume` then creates a plain
    /// `local` volume).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub volumes: Option<Vec<VolumeSpec>>,
    /// A rootless daemon's owner and id maps (absent: the system daemon).
    /// A restore compares them with the target user's (issue 19).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rootless: Option<RootlessIds>,
    /// Bind sources carried, each as the tree `binds/<index>/` (format 2).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub binds: Vec<BindTree>,
    /// Bind sources the containers use that are not carried, with the reason.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub binds_skipped: Vec<SkippedBind>,
}

/// What a bind tree holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum BindKind {
    /// `binds/<n>/` is the source directory.
    Dir,
    /// `binds/<n>/` is the file's parent (never restored), holding the file alone.
    File,
}

/// meta.json's record of a bind source carried as `binds/<index>/`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BindTree {
    pub index: u32,
    /// The source's absolute path on the host that made the backup, and where a restore puts it.
    pub path: PathBuf,
    pub kind: BindKind,
    /// Entries and bytes counted before the archive (the manifest has the exact count).
    pub entries: u64,
    pub bytes: u64,
    /// Bytes on disk, as [`BackupMeta::allocated`].
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub allocated: Option<u64>,
    /// The containers that mount it.
    pub containers: Vec<String>,
    /// Mount points at or below the source (relative): archived as empty directories.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub mounts_inside: Vec<String>,
}

impl BindTree {
    pub fn tree(&self) -> crate::archive::Tree {
        crate::archive::Tree::Bind(self.index)
    }
}

/// meta.json's record of a bind source that was not carried.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SkippedBind {
    pub path: PathBuf,
    pub reason: String,
    pub containers: Vec<String>,
}

impl BackupMeta {
    pub fn parse(bytes: &[u8]) -> Result<BackupMeta> {
        serde_json::from_slice(bytes).map_err(|e| ArchiveError::Meta(e.to_string()))
    }

    /// Estimated entries and bytes of every tree (for a progress total).
    pub fn totals(&self) -> (u64, u64) {
        let (ce, cb) = self.containerd_tree.as_ref().map_or((0, 0), |t| (t.entries, t.bytes));
        let (be, bb) = self.binds.iter().fold((0, 0), |(e, b), t| (e + t.entries, b + t.bytes));
        (self.entries + ce + be, self.bytes + cb + bb)
    }
}

/// meta.json's record of the containerd tree (absent: the archive has none).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StoreTree {
    /// containerd's root on the host that made the backup.
    pub root: PathBuf,
    /// Entries and bytes counted after Docker stopped (the tree's manifest has the exact count).
    pub entries: u64,
    pub bytes: u64,
    /// Bytes on disk, as [`BackupMeta::allocated`].
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub allocated: Option<u64>,
    /// Every namespace in containerd's metadata (`moby` and, with `--shared-store`, others).
    pub namespaces: Vec<String>,
}
