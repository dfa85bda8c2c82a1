//! `.dockroot/meta.json`, the archive's first member: what made the archive
//! and what it holds. `inspect` shows it, `restore` checks it.

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use crate::archive::error::{ArchiveError, Result};
use crate::docker::engine::EngineMeta;
use crate::docker::snapshot::DockerState;

/// Version of the `meta.json` layout.
pub(crate) const META_FORMAT: u32 = 1;

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
}

impl BackupMeta {
    pub fn parse(bytes: &[u8]) -> Result<BackupMeta> {
        serde_json::from_slice(bytes).map_err(|e| ArchiveError::Meta(e.to_string()))
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
    /// Every namespace in containerd's metadata (`moby` and, with `--shared-store`, others).
    pub namespaces: Vec<String>,
}
