//! Pinning the image store on restore (issue 8): Docker 29 picks the
//! containerd image store by default for a data-root without graph-driver
//! layers, older engines the graph driver. A restored tree must come up in
//! the store it was archived from, or Docker finds none of its images. When
//! the installed engine would choose otherwise, restore writes
//! `features.containerd-snapshotter` into daemon.json: a journaled, atomic
//! edit with a backup, undone by `rollback`.

use std::path::{Path, PathBuf};

use super::RestoreOptions;
use crate::docker::daemon_json::DaemonJson;
use crate::docker::engine::{self, ImageStore};
use crate::docker::facts;
use crate::plan::backup::meta::BackupMeta;
use crate::plan::core::intent;
use crate::plan::core::runner::Runner;
use crate::plan::{PlanError, Result};

/// A daemon.json edit that pins the archive's image store.
#[derive(Debug, Clone)]
pub(crate) struct Pin {
    pub path: PathBuf,
    pub contents: Vec<u8>,
    /// For the output: what was set and why.
    pub said: String,
}

/// The pin the restored tree `tree` needs on this host, if any. Not with
/// `--with-config`: the archive's own daemon.json then comes back.
pub fn plan(opts: &RestoreOptions, meta: &BackupMeta, tree: &Path) -> Result<Option<Pin>> {
    let Some(want) = meta.engine.as_ref().map(|e| e.image_store).filter(|_| !opts.with_config) else { return Ok(None) };
    let path = opts.host_root.join("etc/docker/daemon.json");
    let cfg = DaemonJson::load(&path).map_err(PlanError::docker_at("read daemon.json"))?;
    let version = facts::engine_version(&opts.dockerd).ok();
    let Some(pinned) = engine::store_pin(want, &cfg, version.as_ref().map(|v| v.numbers.0), tree) else { return Ok(None) };
    let engine = version.map(|v| format!("Docker {}", v.version)).unwrap_or_else(|| "the installed Docker".into());
    let said = format!(
        "set features.containerd-snapshotter to {} in {}: the archive holds a data-root of the {want}, which {engine} \
         would not use by default",
        want == ImageStore::Containerd,
        path.display()
    );
    Ok(Some(Pin { path, contents: pinned.to_text().into_bytes(), said }))
}

/// The journaled edit, before Docker starts on the restored tree.
pub(crate) fn apply(r: &mut Runner, pin: Option<&Pin>) -> Result<()> {
    let Some(p) = pin else { return Ok(()) };
    let edit = intent::edit(&p.path, &r.j.id);
    r.step_with("pin-store", vec![edit.clone()], |_| {
        if let Some(dir) = p.path.parent() {
            std::fs::create_dir_all(dir).map_err(PlanError::file("create", dir))?;
        }
        intent::apply_edit("pin-store", &edit, &p.contents)
    })
}
