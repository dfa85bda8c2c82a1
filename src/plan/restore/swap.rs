//! Restore's switch-over, as journaled steps of the shared runner: stop
//! Docker, flush the staged tree to disk, swap it in by two renames (both
//! recorded before the first acts; [`super::bind`] when the data-root is a
//! mount point), put the configuration back if asked,
//! start Docker and compare its objects with the archive's.

use std::path::PathBuf;

use super::{RestoreOptions, archive_show, config_name_ok};
use crate::archive;
use crate::docker::snapshot::DockerState;
use crate::plan::backup::meta::BackupMeta;
use crate::plan::core::health::identity;
use crate::plan::core::intent::{self, Intent};
use crate::plan::core::runner::Runner;
use crate::plan::core::stop::{Record, stop_step};
use crate::plan::{PlanError, Result};
use crate::service::ServiceManager;

/// What the swap replaces: the data-root where it is mounted, containerd's
/// root when the archive carries it, and the image-store pin in daemon.json.
pub(super) struct Where<'a> {
    pub place: &'a super::bind::Place,
    pub second: Option<&'a super::stores::Second>,
    /// Bind sources, swapped in after the stores.
    pub binds: &'a [super::binds::BindPlace],
    pub pin: Option<&'a super::pin::Pin>,
}

/// Runs the steps; returns the config files written.
pub(super) fn swap_and_start(
    opts: &RestoreOptions,
    ex: &archive::Extracted,
    meta: &BackupMeta,
    at: Where<'_>,
    r: &mut Runner,
    svc: &dyn ServiceManager,
    none: bool,
) -> Result<Vec<PathBuf>> {
    let Where { place, second, binds, pin } = at;
    let progress = r.progress;
    let staging = r.j.target.clone();
    // Recorded before the stop: even a half-done stop is undone by starting again.
    svc.remember().map_err(PlanError::service_at("stop Docker"))?;
    r.j.service = Some(svc.record());
    stop_step(r, svc, &opts.api, opts.timing, Record::Always, PlanError::service("stop"))?;
    r.step("flush", |_| {
        intent::flush("flush", &staging)?;
        // containerd's root (issue 8): its own filesystem may differ.
        second.map_or(Ok(()), |s| intent::flush("flush", &s.staging))?;
        binds.iter().try_for_each(|b| intent::flush("flush", &b.staging))
    })?;
    // Both stores swap in this one step, all renames recorded before the first acts.
    super::bind::swap(r, place, second.map(|s| s.tree()))?;
    super::binds::swap(r, binds)?;
    let mut config = Vec::new();
    if opts.with_config {
        let mut edits = Vec::new();
        for (name, bytes) in &ex.config {
            if !config_name_ok(name) {
                return Err(PlanError::refused(format!(
                    "config member `{}` is outside /etc/docker and docker.service.d",
                    archive_show(name)
                )));
            }
            let path = opts.host_root.join(String::from_utf8_lossy(name).as_ref());
            edits.push((intent::edit(&path, &r.j.id), bytes));
            config.push(path);
        }
        r.step_with("config", edits.iter().map(|(i, _)| i.clone()).collect(), |_| {
            for (i, bytes) in &edits {
                if let Intent::EditFile { path, .. } = i
                    && let Some(p) = path.parent()
                {
                    std::fs::create_dir_all(p).map_err(PlanError::file("create", p))?;
                }
                intent::apply_edit("config", i, bytes)?;
            }
            Ok::<_, PlanError>(())
        })?;
    }
    super::pin::apply(r, pin)?;
    r.step("start", |_| svc.start(progress).map_err(PlanError::service_at("start Docker")))?;
    if !none && let Some(want) = &meta.docker {
        r.step("health", |_| {
            let got = DockerState::capture(&opts.api).map_err(PlanError::docker_at("list images, containers and volumes"))?;
            let d = identity(want).diff(&identity(&got));
            if !d.is_empty() {
                return Err(PlanError::StateDiffers(d.join("; ")));
            }
            Ok(())
        })?;
    }
    if !binds.is_empty() {
        // The carried bind sources are in place and match their manifests.
        r.step("check binds", |_| {
            let bad = super::binds::check(binds, opts.threads, progress);
            if bad.is_empty() { Ok(()) } else { Err(PlanError::StateDiffers(bad.join("; "))) }
        })?;
    }
    Ok(config)
}
