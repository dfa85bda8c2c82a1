//! `dockroot restore ARCHIVE --volume NAME [--as NEWNAME]`: one volume back
//! from a whole backup while Docker keeps running.
//!
//! The volume is looked up through the API (created, with the driver,
//! options and labels the archive recorded, when it is missing). Its files
//! are extracted from the archive next to the volume's `_data`, on its
//! filesystem (`_data.dockroot-staging-<ts>`), and verified against the
//! archive's manifest entries of that subtree. Only then are the containers
//! that use it stopped (refused without `--stop-containers`), the tree
//! swapped in by two renames (the current `_data` is kept as
//! `_data.dockroot-old-<ts>`), and those containers started again. Every
//! other container keeps running; the engine is never stopped.
//!
//! Every step is journaled with its intents before it acts, in the shared
//! journal (operation `restore-volume`): `rollback` after a failure, a kill
//! or a finished restore renames the old `_data` back, starts the
//! containers it stopped and removes a volume it created.

use std::path::{Path, PathBuf};
use std::time::{Instant, SystemTime};

use serde::Serialize;

use super::live::{self, Place, Swapped, Users};
use crate::archive;
use crate::archive::pick::{Pick, volume_name_ok};
use crate::docker::api::DockerApi;
use crate::docker::volumes::{User, VolumeNow, VolumeSpec};
use crate::plan::backup::meta::BackupMeta;
use crate::plan::core::intent::{self, Intent};
use crate::plan::core::journal::{Journal, Method, Outcome, StateDir};
use crate::plan::core::runner::Runner;
use crate::plan::{PlanError, Result};
use crate::progress::Progress;
use crate::service::wait::Timing;
use crate::util::atomic;

pub(crate) use crate::plan::core::journal::RESTORE_VOLUME as OPERATION;

#[derive(Debug, Clone)]
pub struct VolumeOptions {
    /// The archive (a file: `-` cannot be read twice and is refused by the CLI).
    pub source: PathBuf,
    pub api: DockerApi,
    pub state_dir: PathBuf,
    /// The volume in the archive.
    pub name: String,
    /// The volume to restore it as (default: the same name).
    pub as_name: Option<String>,
    /// Stop the containers that use the volume, and start them again afterwards.
    pub stop_containers: bool,
    pub threads: usize,
    pub timing: Timing,
}

#[derive(Debug, Clone, Serialize)]
pub struct VolumeSummary {
    /// The volume restored into.
    pub volume: String,
    /// The volume of the archive it came from.
    pub from: String,
    /// Whether it was created (it did not exist).
    pub created: bool,
    /// Its files: `<data-root>/volumes/NAME/_data`.
    pub mountpoint: PathBuf,
    /// Where its previous files are kept.
    pub old: PathBuf,
    pub entries: u64,
    pub bytes: u64,
    /// Containers stopped for the swap and started again.
    pub restarted: Vec<String>,
    pub warnings: Vec<String>,
    pub seconds: f64,
}

/// The volume as the archive describes it. Archives of older dockroot
/// versions record only names: a plain `local` volume then.
fn spec_of(meta: &BackupMeta, name: &str, warnings: &mut Vec<String>) -> Result<VolumeSpec> {
    let spec = match &meta.volumes {
        Some(all) => all.iter().find(|v| v.name == name).cloned(),
        None => {
            let listed = meta.docker.as_ref().map(|d| d.volumes.iter().any(|v| v == name));
            if listed == Some(false) {
                return Err(not_in_archive(name, meta));
            }
            warnings.push(format!(
                "the archive (dockroot {}) does not record volume options and labels; `{name}` is created as a plain local volume if missing",
                meta.tool_version
            ));
            Some(VolumeSpec {
                name: name.into(),
                driver: "local".into(),
                options: Default::default(),
                labels: Default::default(),
                users: vec![],
            })
        }
    };
    let spec = spec.ok_or_else(|| not_in_archive(name, meta))?;
    if let Some(why) = spec.data_elsewhere() {
        return Err(PlanError::refused(format!("volume `{name}` cannot be restored from the archive: {why}")));
    }
    Ok(spec)
}

fn not_in_archive(name: &str, meta: &BackupMeta) -> PlanError {
    let names: Vec<&str> = match (&meta.volumes, &meta.docker) {
        (Some(v), _) => v.iter().map(|v| v.name.as_str()).collect(),
        (None, Some(d)) => d.volumes.iter().map(String::as_str).collect(),
        _ => vec![],
    };
    PlanError::refused(format!(
        "the archive has no volume `{name}`; it has: {}",
        if names.is_empty() { "none".into() } else { names.join(", ") }
    ))
}

/// The containers that see the volume.
fn users<'a>(opts: &'a VolumeOptions, list: &'a dyn Fn() -> crate::docker::error::Result<Vec<User>>, what: &'a str) -> Users<'a> {
    Users { api: &opts.api, list, may_stop: opts.stop_containers, what }
}

/// Where the volume's files are, checked: a local volume's `_data` below
/// the engine's data-root, a directory and no mount point.
fn mountpoint(v: &VolumeNow, root: &Path) -> Result<PathBuf> {
    if let Some(why) = v.spec.data_elsewhere() {
        return Err(PlanError::refused(format!("volume `{}` on this engine cannot take the archive's files: {why}", v.spec.name)));
    }
    let want = root.join("volumes").join(&v.spec.name).join("_data");
    if v.mountpoint != want {
        return Err(PlanError::refused(format!(
            "volume `{}` keeps its files in {}, not in {}; dockroot restores only volumes below the data-root",
            v.spec.name,
            v.mountpoint.display(),
            want.display()
        )));
    }
    let mounts = crate::docker::mountinfo::read_self().map_err(PlanError::docker_at("read mountinfo"))?;
    if crate::docker::mountinfo::is_mount_point(&mounts, &want) {
        return Err(PlanError::refused(format!("{} is a mount point: a container still uses the volume", want.display())));
    }
    Ok(want)
}

/// Runs the restore (see the module docs).
pub fn restore_volume(opts: &VolumeOptions, progress: &dyn Progress) -> Result<VolumeSummary> {
    let start = Instant::now();
    let mut warnings = Vec::new();
    let mut reader = archive::open(&opts.source)?;
    let meta = BackupMeta::parse(&reader.meta)?;
    let pick = Pick::volume(&opts.name)?;
    let target = opts.as_name.clone().unwrap_or_else(|| opts.name.clone());
    if !volume_name_ok(&target) {
        return Err(PlanError::refused(format!("`{}` is not a Docker volume name ([a-zA-Z0-9][a-zA-Z0-9_.-]+)", target.escape_debug())));
    }
    let spec = spec_of(&meta, &opts.name, &mut warnings)?;
    let root = opts.api.info().map_err(PlanError::docker_at("ask Docker for its data-root"))?.docker_root_dir;
    let now = opts.api.volume(&target).map_err(PlanError::docker_at("look up the volume"))?;
    let data = match &now {
        Some(v) => mountpoint(v, &root)?,
        None => root.join("volumes").join(&target).join("_data"),
    };
    let what = format!("volume `{target}`");
    let list = || opts.api.volume_users(&target);
    users(opts, &list, &what).active()?;

    let state = StateDir::new(&opts.state_dir);
    let _lock = state.lock()?;
    state.refuse_unfinished()?;
    let ts = atomic::utc_timestamp(SystemTime::now());
    let staging = atomic::with_suffix(&data, &format!("{}{ts}", super::STAGING_INFIX));
    let old = atomic::with_suffix(&data, &format!("{}{ts}", super::OLD_INFIX));
    let mut j = Journal::new(OPERATION, format!("{OPERATION}-{ts}"), data.clone(), staging.clone(), Method::Swap);
    j.socket = opts.api.socket.clone();
    j.archive = Some(opts.source.clone());
    j.old_tree = Some(old.clone());
    j.volume = Some(target.clone());
    let mut r = Runner { state: &state, j, progress };
    r.save()?;
    let at = Swap { data: &data, staging: &staging, old: &old, root: &root };
    let run = steps(opts, &mut r, &mut reader, (&pick, &spec, now.is_none()), &target, at, &users(opts, &list, &what));
    match run {
        Ok(Swapped { entries, bytes, restarted }) => {
            r.j.outcome = Outcome::Done;
            r.save()?;
            Ok(VolumeSummary {
                volume: target,
                from: opts.name.clone(),
                created: now.is_none(),
                mountpoint: data,
                old,
                entries,
                bytes,
                restarted,
                warnings,
                seconds: start.elapsed().as_secs_f64(),
            })
        }
        Err(e) => {
            let undo = crate::plan::core::undo::undo_journal(&opts.api, opts.timing, &state, &mut r.j, progress);
            Err(e.undone(undo.err()))
        }
    }
}

/// The names the swap uses.
struct Swap<'a> {
    data: &'a Path,
    staging: &'a Path,
    old: &'a Path,
    root: &'a Path,
}

/// The journaled steps: the volume is created if missing, then swapped in.
fn steps(
    opts: &VolumeOptions,
    r: &mut Runner,
    reader: &mut archive::ArchiveReader,
    (pick, spec, create): (&Pick, &VolumeSpec, bool),
    target: &str,
    at: Swap<'_>,
    users: &Users,
) -> Result<Swapped> {
    if create {
        let made = Intent::CreateVolume { socket: opts.api.socket.clone(), name: target.into(), dir: None };
        r.step_with("create-volume", vec![made], |j| {
            let v = opts.api.create_volume(target, spec).map_err(PlanError::docker_at("create the volume"))?;
            // Its directory identifies the volume for the undo.
            for i in j.steps.iter_mut().flat_map(|s| s.intents.iter_mut()) {
                if let Intent::CreateVolume { dir, name, .. } = i
                    && name == target
                {
                    *dir = intent::volume_dir_id(&v.mountpoint);
                }
            }
            let got = mountpoint(&v, at.root)?;
            if got != at.data {
                return Err(PlanError::refused(format!("the new volume keeps its files in {}, not {}", got.display(), at.data.display())));
            }
            Ok(())
        })?;
    }
    let place = Place {
        pick,
        staging: at.staging,
        parent: at.data.parent().unwrap_or(Path::new("/")),
        renames: vec![Intent::rename(at.data, at.old, false), Intent::rename(at.staging, at.data, false)],
    };
    live::swap_in(r, reader, opts.threads, &place, users)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::docker::snapshot::DockerState;

    fn meta(volumes: Option<Vec<VolumeSpec>>, names: &[&str]) -> BackupMeta {
        let j = serde_json::json!({
            "format": 1, "tool": "dockroot", "tool_version": "0.1", "engine_version": null, "storage_driver": null,
            "data_root": "/var/lib/docker", "hostname": "h", "created": "20260101T000000Z", "entries": 1, "bytes": 0,
            "docker": DockerState::new(vec![], vec![], names.iter().map(|s| s.to_string()).collect()),
        });
        BackupMeta { volumes, ..serde_json::from_value(j).unwrap() }
    }

    fn spec(name: &str, options: &[(&str, &str)]) -> VolumeSpec {
        VolumeSpec {
            name: name.into(),
            driver: "local".into(),
            options: options.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect(),
            labels: [("app".to_string(), "db".to_string())].into(),
            users: vec![],
        }
    }

    #[test]
    fn the_spec_comes_from_meta_or_is_plain_local_for_old_archives() {
        let mut w = vec![];
        let m = meta(Some(vec![spec("db", &[]), spec("nfs", &[("type", "nfs"), ("device", ":/x")])]), &["db", "nfs"]);
        assert_eq!(spec_of(&m, "db", &mut w).unwrap().labels["app"], "db");
        assert!(w.is_empty());
        let e = spec_of(&m, "nfs", &mut w).unwrap_err().to_string();
        assert!(e.contains("mounts `:/x`"), "{e}");
        let e = spec_of(&m, "nope", &mut w).unwrap_err().to_string();
        assert!(e.contains("has no volume `nope`") && e.contains("db, nfs"), "{e}");
        // An archive of an older dockroot: names only.
        let old = meta(None, &["db"]);
        let s = spec_of(&old, "db", &mut w).unwrap();
        assert!(s.labels.is_empty() && s.driver == "local");
        assert!(w[0].contains("plain local volume"), "{w:?}");
        assert!(spec_of(&old, "other", &mut w).is_err());
    }
}
