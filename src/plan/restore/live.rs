//! One piece swapped in while Docker runs, the part `restore --volume` and
//! `restore --bind` share: the piece is extracted next to its place (same
//! filesystem) and verified against the archive's manifest; only then are
//! the containers that see it stopped (refused unless the user allowed it),
//! the piece renamed in (the current files kept aside) and those containers
//! started again. Every other container keeps running. Each step is
//! journaled with its intents before it acts, so `rollback` after a
//! failure, a kill or a finished restore puts the previous files back.

use std::os::unix::fs::MetadataExt;
use std::path::Path;

use super::piece;
use crate::archive::{self, pick::Pick};
use crate::docker::api::DockerApi;
use crate::docker::volumes::User;
use crate::plan::core::intent::{self, Intent};
use crate::plan::core::runner::Runner;
use crate::plan::{PlanError, Result};
use crate::util::atomic;

/// The containers that see the piece, and whether they may be stopped.
pub(crate) struct Users<'a> {
    pub api: &'a DockerApi,
    /// Lists them, in any state (volume or bind users).
    pub list: &'a dyn Fn() -> crate::docker::error::Result<Vec<User>>,
    /// `--stop-containers`.
    pub may_stop: bool,
    /// What the refusal names: "volume `db`", "bind source /srv/app".
    pub what: &'a str,
}

impl Users<'_> {
    /// The running ones: refused unless they may be stopped.
    pub(crate) fn active(&self) -> Result<Vec<User>> {
        let users: Vec<User> =
            (self.list)().map_err(PlanError::docker_at("list the containers"))?.into_iter().filter(User::active).collect();
        if !users.is_empty() && !self.may_stop {
            let names: Vec<&str> = users.iter().map(|u| u.name.as_str()).collect();
            return Err(PlanError::refused(format!(
                "{} is used by running containers: {}; stop them first, or pass --stop-containers to stop them for the swap and start them again afterwards",
                self.what,
                names.join(", ")
            )));
        }
        Ok(users)
    }
}

/// Where the piece goes.
pub(crate) struct Place<'a> {
    pub pick: &'a Pick,
    /// Created by the extract step; the piece's root takes its metadata.
    pub staging: &'a Path,
    /// The directory whose entries change: its times come back on undo.
    pub parent: &'a Path,
    /// The swap's renames, in order (the current files aside, the piece in).
    pub renames: Vec<Intent>,
}

/// What was swapped in.
pub(crate) struct Swapped {
    pub entries: u64,
    pub bytes: u64,
    /// The containers stopped for the swap and started again, by name.
    pub restarted: Vec<String>,
}

/// Runs the journaled steps `extract`, `stop-containers`, `flush`, `swap`
/// and `start-containers` (see the module docs).
pub(crate) fn swap_in(r: &mut Runner, reader: &mut archive::ArchiveReader, threads: usize, at: &Place, users: &Users) -> Result<Swapped> {
    let progress = r.progress;
    let mpath = atomic::with_suffix(at.staging, ".manifest");
    let m = std::fs::metadata(at.parent).map_err(PlanError::file("stat", at.parent))?;
    let times = Intent::DirTimes { path: at.parent.to_path_buf(), sec: m.mtime(), nsec: m.mtime_nsec() as u32 };
    let made = vec![times, Intent::make_tree(at.staging), Intent::make_tree(&mpath)];
    let p = r.step_with("extract", made, |_| {
        std::fs::create_dir(at.staging).map_err(PlanError::file("create the staging directory", at.staging))?;
        let p = piece::extract_verified(reader, at.pick, at.staging, &mpath, threads, progress);
        let _ = std::fs::remove_file(&mpath);
        let p = p?;
        if !p.report.ok() {
            let rep = &p.report;
            let first = rep.differences.first().map(|d| d.to_string()).or_else(|| rep.errors.first().cloned()).unwrap_or_default();
            return Err(PlanError::StagingDiffers { count: rep.differences.len() as u64 + rep.more + rep.errors.len() as u64, first });
        }
        Ok(p)
    })?;
    // From here a signal only sets a flag, checked between steps: the
    // restore undoes itself instead of leaving containers stopped.
    crate::plan::core::signal::install();
    // Checked again: containers may have started during the extraction.
    let running = users.active()?;
    if !running.is_empty() {
        let ids: Vec<String> = running.iter().map(|u| u.id.clone()).collect();
        let stop = Intent::StopContainers { socket: users.api.socket.clone(), ids };
        r.step_with("stop-containers", vec![stop], |_| {
            for u in &running {
                users.api.stop_container(&u.id).map_err(PlanError::docker_at("stop a container that uses the restored files"))?;
            }
            Users { may_stop: false, ..*users }.active().map(drop)
        })?;
    }
    r.step("flush", |_| intent::flush("flush", at.staging))?;
    r.step_with("swap", at.renames.clone(), |_| {
        for i in &at.renames {
            if let Intent::Rename { from, to, .. } = i {
                std::fs::rename(from, to).map_err(PlanError::file("rename into place", from))?;
            }
        }
        std::fs::File::open(at.parent).and_then(|d| d.sync_all()).map_err(PlanError::file("sync", at.parent))
    })?;
    r.step("start-containers", |_| {
        for u in &running {
            users.api.start_container(&u.id).map_err(PlanError::docker_at("start a container that uses the restored files again"))?;
        }
        Ok::<_, PlanError>(())
    })?;
    Ok(Swapped { entries: p.entries, bytes: p.report.bytes, restarted: running.into_iter().map(|u| u.name).collect() })
}
