//! `dockroot restore ARCHIVE --bind PATH [--stop-containers]`: one bind
//! source (an app's data outside the data-root) back from a whole backup
//! while Docker keeps running.
//!
//! PATH must be a source the archive carried (`inspect` lists them); its
//! record in meta.json is untrusted and goes through the same checks as a
//! whole restore's ([`super::binds::place`]): never plumbing, never inside
//! the data-root. The user named the path, so a non-empty one is replaced
//! without `--force`, and kept aside as `PATH.dockroot-old-<ts>`. The swap
//! itself is [`super::live`]'s, shared with `restore --volume`: only the
//! containers whose bind mounts overlap PATH are stopped (refused without
//! `--stop-containers`), and journaled as operation `restore-bind`. A file
//! bind is staged in a directory beside it, which stays (empty) after the
//! swap: a `rollback` renames the file back into it.

use std::path::{Path, PathBuf};
use std::time::{Instant, SystemTime};

use serde::Serialize;

use super::binds::{self, Existing};
use super::live::{self, Place, Users};
use crate::archive::{self, Tree, pick::Pick};
use crate::docker::api::DockerApi;
use crate::plan::backup::meta::{BackupMeta, BindKind};
use crate::plan::core::intent::Intent;
use crate::plan::core::journal::{Journal, Method, Outcome, RESTORE_BIND, StateDir};
use crate::plan::core::runner::Runner;
use crate::plan::{PlanError, Result};
use crate::progress::Progress;
use crate::service::wait::Timing;
use crate::util::atomic;

#[derive(Debug, Clone)]
pub struct BindOptions {
    /// The archive (a file: `-` cannot be read twice and is refused by the CLI).
    pub source: PathBuf,
    pub api: DockerApi,
    pub state_dir: PathBuf,
    /// The bind source, as the archive records it.
    pub path: PathBuf,
    /// Stop the containers that mount it, and start them again afterwards.
    pub stop_containers: bool,
    pub threads: usize,
    pub timing: Timing,
}

#[derive(Debug, Clone, Serialize)]
pub struct BindSummary {
    pub path: PathBuf,
    pub kind: BindKind,
    /// What was at the path before.
    pub existing: Existing,
    /// Where the previous files are kept (`None`: nothing was there).
    pub old: Option<PathBuf>,
    pub entries: u64,
    pub bytes: u64,
    /// The containers that used it when the backup ran.
    pub containers: Vec<String>,
    /// Containers stopped for the swap and started again.
    pub restarted: Vec<String>,
    pub seconds: f64,
}

/// The archive's bind tree for `path`, by position.
fn find(meta: &BackupMeta, path: &Path) -> Result<usize> {
    let want = path.components().collect::<PathBuf>();
    meta.binds.iter().position(|b| b.path == want).ok_or_else(|| {
        let have: Vec<String> = meta.binds.iter().map(|b| b.path.display().to_string()).collect();
        PlanError::refused(format!(
            "the archive carries no bind source {}; it carries: {}",
            path.display(),
            if have.is_empty() { "none (made without bind sources, or by an older dockroot)".into() } else { have.join(", ") }
        ))
    })
}

/// The piece of `extract --bind`: the whole bind tree of `path` (a file
/// bind's tree is a directory holding the file).
pub fn pick(meta: &BackupMeta, path: &Path) -> Result<Pick> {
    Ok(Pick { tree: Tree::Bind(meta.binds[find(meta, path)?].index), prefix: Vec::new() })
}

/// The directories above `path` that do not exist yet, outermost first
/// (a reinstalled host may lack `/srv/app`).
fn missing_parents(path: &Path) -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = path.ancestors().skip(1).take_while(|a| a.symlink_metadata().is_err()).map(Path::to_path_buf).collect();
    v.reverse();
    v
}

/// Runs the restore (see the module docs).
pub fn restore_bind(opts: &BindOptions, progress: &dyn Progress) -> Result<BindSummary> {
    let start = Instant::now();
    let mut reader = archive::open(&opts.source)?;
    let meta = BackupMeta::parse(&reader.meta)?;
    let i = find(&meta, &opts.path)?;
    let info = opts.api.info().map_err(PlanError::docker_at("ask Docker for its data-root"))?;
    let ts = atomic::utc_timestamp(SystemTime::now());
    let containerd = meta.engine.as_ref().map(|e| e.containerd_root.as_path());
    let place = binds::place(&meta, i, &info.data_root(), containerd, true, &ts)?;
    let path = place.bind.path.clone();
    let what = format!("bind source {}", path.display());
    let list = || opts.api.bind_users(&path);
    let users = Users { api: &opts.api, list: &list, may_stop: opts.stop_containers, what: &what };
    users.active()?;
    let need = super::room::Need { staging: &place.staging, bytes: place.bind.allocated.unwrap_or(0), what: what.clone() };
    super::room::check(&[need], super::room::free)?;

    let state = StateDir::new(&opts.state_dir);
    let _lock = state.lock()?;
    state.refuse_unfinished()?;
    let mut j = Journal::new(RESTORE_BIND, format!("{RESTORE_BIND}-{ts}"), path.clone(), place.staging.clone(), Method::Swap);
    j.socket = opts.api.socket.clone();
    j.archive = Some(opts.source.clone());
    j.old_tree = place.old.clone();
    j.bind = Some(path.clone());
    let mut r = Runner { state: &state, j, progress };
    r.save()?;
    let run = steps(opts, &mut r, &mut reader, &place, &users);
    match run {
        Ok(s) => {
            r.j.outcome = Outcome::Done;
            r.save()?;
            Ok(BindSummary {
                path,
                kind: place.bind.kind,
                existing: place.existing,
                old: place.old,
                entries: s.entries,
                bytes: s.bytes,
                containers: place.bind.containers,
                restarted: s.restarted,
                seconds: start.elapsed().as_secs_f64(),
            })
        }
        Err(e) => {
            let undo = crate::plan::core::undo::undo_journal(&opts.api, opts.timing, &state, &mut r.j, progress);
            Err(e.undone(undo.err()))
        }
    }
}

fn steps(
    opts: &BindOptions,
    r: &mut Runner,
    reader: &mut archive::ArchiveReader,
    place: &binds::BindPlace,
    users: &Users,
) -> Result<live::Swapped> {
    let made = missing_parents(&place.bind.path);
    if let Some(top) = made.first() {
        r.step_with("make-parents", vec![Intent::make_tree(top)], |_| {
            made.iter().try_for_each(|d| std::fs::create_dir(d).map_err(PlanError::file("create", d)))
        })?;
    }
    let parent = place.bind.path.parent().unwrap_or(Path::new("/"));
    let pick = Pick { tree: Tree::Bind(place.bind.index), prefix: Vec::new() };
    let at = Place { pick: &pick, staging: &place.staging, parent, renames: place.renames() };
    // A file's staging directory, empty now, stays: undoing the swap
    // renames the file back into it (a rollback then removes it).
    live::swap_in(r, reader, opts.threads, &at, users)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn missing_parents_are_listed_outermost_first() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("a/b/c");
        assert_eq!(missing_parents(&p), [d.path().join("a"), d.path().join("a/b")]);
        std::fs::create_dir_all(d.path().join("a/b")).unwrap();
        assert!(missing_parents(&p).is_empty());
    }
}
