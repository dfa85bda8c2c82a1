//! Executing a [`MovePlan`]: pre-copy passes verified while Docker runs
//! ([`precopy`]), stop, delta sync, verify (content of what the sync
//! wrote, metadata of every entry), switch, start, health check. Every step is journaled; any failure
//! or signal after the stop undoes the switch and starts Docker on the old
//! data before the error is returned.
//!
//! How Docker is pointed at the target depends on the method and on how it
//! is supervised:
//! - `bind`: the data-root path stays; the target is bind-mounted on it and an
//!   fstab line (with `x-systemd.requires-mounts-for=TARGET`) makes that
//!   survive a reboot. Under systemd a drop-in
//!   (`systemd/docker.service.d/dockroot-mount.conf`, `RequiresMountsFor=`)
//!   keeps docker.service from starting before the bind is mounted.
//! - `data-root`: `data-root` is set in daemon.json (other keys kept, backup
//!   taken). Refused when docker.service passes `--data-root` itself, since
//!   dockerd rejects a directive given twice. In pidfile mode dockerd is
//!   restarted from its recorded command line; if that line carries
//!   `--data-root` (or `-g`/`--graph`), the flag's value is rewritten to the
//!   target and daemon.json is left alone. Whoever starts that dockerd later
//!   must pass the new path too, or it comes up on the old (empty after
//!   `finalize`) directory.
//!
//! A signal ends the step in progress at its next entry or chunk (the
//! walks check for it, see [`crate::plan::core::signal`]); past the stop
//! the move then undoes itself and starts Docker on the old data.

pub mod checks;
pub mod containerd;
pub mod finalize;
pub mod precopy;
pub mod preflight;
pub mod probe;
pub mod resume;
pub mod switch;

use std::path::{Path, PathBuf};
use std::time::{Instant, SystemTime};

use serde::Serialize;

use self::precopy::Passes;
use self::preflight::MovePlan;
use crate::audit::verify_tree_since;
use crate::copy::{CopyOptions, copy_tree};
use crate::docker::snapshot::DockerState;
use crate::docker::unit;
use crate::plan::core::error::{PlanError, Result};
use crate::plan::core::health::{self, expected_root};
use crate::plan::core::journal::{Journal, Method, Outcome, StateDir};
use crate::plan::core::runner::Runner;
use crate::plan::core::signal;
use crate::plan::core::stop::{Record, stop_step};
use crate::plan::env::Env;
use crate::progress::Progress;
use crate::service::pidfile::{DaemonCommand, PidfileService};
use crate::service::{ServiceKind, ServiceManager, ServiceRecord};
use crate::util::atomic;

/// What the user asked for.
#[derive(Debug, Clone)]
pub struct MoveRequest {
    pub target: PathBuf,
    pub method: Method,
    pub precopy: bool,
    /// Where containerd's root goes (containerd image store); default: beside `target`.
    pub containerd_target: Option<PathBuf>,
    /// Move a containerd store that other namespaces than Docker's use too.
    pub shared_store: bool,
}

/// What a finished move reports.
#[derive(Debug, Clone, Serialize)]
pub struct MoveReport {
    pub id: String,
    pub data_root: PathBuf,
    pub target: PathBuf,
    pub method: Method,
    pub old_tree: Option<PathBuf>,
    pub downtime_seconds: f64,
    /// Wall-clock seconds since the epoch when Docker was stopped and when it
    /// was started again (for logs and tests that correlate events).
    pub stopped_at_unix: f64,
    pub started_at_unix: f64,
    pub precopy_entries: u64,
    /// The passes before the stop (absent with `--no-precopy`).
    pub precopy: Option<precopy::Passes>,
    pub sync_rewritten: u64,
    pub verified_entries: u64,
    /// Bytes of content the verify read with Docker stopped.
    pub verified_bytes_stopped: u64,
    /// Seconds each step took with Docker down, in order (where the downtime goes).
    pub downtime_steps: Vec<(String, f64)>,
    pub journal: PathBuf,
    /// containerd's root and where it went, with the containerd image store.
    pub containerd_source: Option<PathBuf>,
    pub containerd_target: Option<PathBuf>,
    pub containerd_old_tree: Option<PathBuf>,
    pub containerd_precopy: Option<Passes>,
}

impl MoveReport {
    fn new(id: String, plan: &MovePlan, env: &Env) -> Self {
        MoveReport {
            id,
            data_root: plan.data_root.clone(),
            target: plan.target.clone(),
            method: plan.method,
            old_tree: None,
            downtime_seconds: 0.0,
            stopped_at_unix: 0.0,
            started_at_unix: 0.0,
            precopy_entries: 0,
            precopy: None,
            sync_rewritten: 0,
            verified_entries: 0,
            verified_bytes_stopped: 0,
            downtime_steps: Vec::new(),
            journal: env.state.journal_path(),
            containerd_source: plan.containerd.as_ref().map(|c| c.source.clone()),
            containerd_target: plan.containerd.as_ref().map(|c| c.target.clone()),
            containerd_old_tree: None,
            containerd_precopy: None,
        }
    }
}

fn unix_now() -> f64 {
    SystemTime::now().duration_since(SystemTime::UNIX_EPOCH).map(|d| d.as_secs_f64()).unwrap_or(0.0)
}

/// One tree the move relocates, with the names of its journaled steps.
struct Tree {
    source: PathBuf,
    target: PathBuf,
    /// Manifests of this tree's passes.
    work: PathBuf,
    steps: [&'static str; 4],
}

impl Tree {
    fn final_manifest(&self) -> PathBuf {
        self.work.join("final.manifest")
    }
}

/// The data-root, then containerd's root when it moves too.
fn trees(plan: &MovePlan, work: &Path) -> Vec<Tree> {
    let mut v = vec![Tree {
        source: plan.data_root.clone(),
        target: plan.target.clone(),
        work: work.into(),
        steps: ["precopy", "sync", "verify", "flush"],
    }];
    if let Some(c) = &plan.containerd {
        v.push(Tree {
            source: c.source.clone(),
            target: c.target.clone(),
            work: work.join("containerd"),
            steps: ["precopy-containerd", "sync-containerd", "verify-containerd", "flush-containerd"],
        });
    }
    v
}

/// Runs the plan. The caller holds no lock; this takes it.
pub fn execute(env: &Env, plan: &MovePlan, progress: &dyn Progress) -> Result<MoveReport> {
    // A signal only sets a flag: before the stop it ends the pre-copy (the
    // journal is closed), after it the move undoes itself instead of dying
    // with Docker down.
    signal::install();
    let _lock = env.state.lock()?;
    env.state.refuse_unfinished()?;
    if let Some(old) = env.state.load()? {
        // A rolled-back or abandoned move's manifests are of no further use.
        let _ = crate::sys::remove::remove_tree(&env.state.work_dir(&old.id));
    }
    let id = format!("move-{}", atomic::utc_timestamp(SystemTime::now()));
    let work = env.state.work_dir(&id);
    let trees = trees(plan, &work);
    for t in &trees {
        std::fs::create_dir_all(&t.work).map_err(|e| PlanError::io("journal", &t.work, e))?;
    }
    let mut r = Runner { state: &env.state, j: new_journal(env, plan, id.clone()), progress };
    r.save()?;
    let svc = plan.service_record().rebuild(&env.ctx(&plan.data_root));
    let before = DockerState::capture(&env.api).map_err(PlanError::docker("snapshot"))?;
    // What a rollback, however late, must find again.
    r.j.before = Some(before.clone());
    r.save()?;
    let mut report = MoveReport::new(id, plan, env);

    // Before the stop nothing on the host has changed: a failure only ends the move.
    let mut passes = Vec::new();
    if let Err(e) = before_stop(env, plan, &trees, &mut r, &mut passes) {
        r.j.outcome = Outcome::RolledBack;
        r.save()?;
        return Err(e);
    }
    report.precopy_entries = passes.iter().flatten().map(|p| p.entries).sum();
    report.precopy = passes.first().cloned().flatten();
    report.containerd_precopy = passes.get(1).cloned().flatten();

    let stopped_at = Instant::now();
    report.stopped_at_unix = unix_now();
    let stopped = Stopped { env, plan, trees: &trees, passes: &passes, svc: svc.as_ref(), before: &before, lap: Instant::now() };
    if let Err(cause) = stopped.run(&mut r, &mut report) {
        return Err(undo_after_failure(env, &mut r, cause));
    }
    report.downtime_seconds = stopped_at.elapsed().as_secs_f64();
    r.j.downtime_seconds = Some(report.downtime_seconds);
    r.j.outcome = Outcome::Moved;
    r.j.finished_at = Some(crate::plan::core::identity::unix_now());
    if r.j.method == Method::DataRoot {
        // The old data stays where it was; finalize deletes it.
        r.j.old_tree = Some(r.j.data_root.clone());
        if let Some(c) = r.j.containerd_move.as_mut() {
            c.old_tree = Some(c.source.clone());
        }
    }
    report.old_tree = r.j.old_tree.clone();
    report.containerd_old_tree = r.j.containerd_move.as_ref().and_then(|c| c.old_tree.clone());
    r.save_finished()?;
    Ok(report)
}

fn new_journal(env: &Env, plan: &MovePlan, id: String) -> Journal {
    let mut j = Journal::new("move", id, plan.data_root.clone(), plan.target.clone(), plan.method);
    j.rewrite_argv = plan.rewrite_argv;
    // With containerd's record: an undo after a crash during the stop starts it again.
    j.service = Some(plan.service_record());
    j.socket = env.api.socket.clone();
    j.fstab = env.fstab.clone();
    j.daemon_json = env.daemon_json.clone();
    j.dropin = plan.use_dropin.then(|| env.dropin.clone());
    j.containerd_move = plan.containerd.as_ref().map(|c| c.tree());
    // The trees `finalize` may delete, known by identity (issue 17).
    j.record_source(&plan.data_root);
    if let Some(c) = &plan.containerd {
        j.record_source(&c.source);
    }
    j
}

/// The pre-copy of every tree and the live-restore check, with Docker running.
fn before_stop(env: &Env, plan: &MovePlan, trees: &[Tree], r: &mut Runner, passes: &mut Vec<Option<Passes>>) -> Result<()> {
    let progress = r.progress;
    for t in trees {
        let p = match plan.precopy {
            true => Some(r.step(t.steps[0], |_| precopy::run(&t.source, &t.target, &t.work, env.threads, progress))?),
            false => None,
        };
        passes.push(p);
    }
    let cfg = crate::docker::daemon_json::DaemonJson::load(&env.daemon_json).map_err(PlanError::docker("stop"))?;
    crate::service::check_live_restore(&cfg, &env.api).map_err(PlanError::service("stop"))?;
    if signal::caught() {
        return Err(PlanError::Interrupted { step: "precopy" });
    }
    Ok(())
}

/// The steps with Docker down, each timed into the report.
struct Stopped<'a> {
    env: &'a Env,
    plan: &'a MovePlan,
    trees: &'a [Tree],
    passes: &'a [Option<Passes>],
    svc: &'a dyn ServiceManager,
    before: &'a DockerState,
    lap: Instant,
}

impl Stopped<'_> {
    fn mark(&mut self, report: &mut MoveReport, step: &str) {
        report.downtime_steps.push((step.to_string(), self.lap.elapsed().as_secs_f64()));
        self.lap = Instant::now();
    }

    fn run(mut self, r: &mut Runner, report: &mut MoveReport) -> Result<()> {
        let (env, progress) = (self.env, r.progress);
        stop_step(r, self.svc, &env.api, env.timing, Record::WhenCaptured, PlanError::service("stop"))?;
        self.mark(report, "stop");
        for (t, p) in self.trees.iter().zip(self.passes) {
            self.sync_and_verify(r, t, p.as_ref(), report)?;
        }
        // Every copy must be on disk before anything points Docker at it.
        for t in self.trees {
            r.step(t.steps[3], |_| crate::plan::core::intent::flush("flush", &t.target))?;
            self.mark(report, t.steps[3]);
        }
        switch::apply(r, self.plan.use_dropin)?;
        self.mark(report, "switch");
        let starter = target_starter(&r.j, env);
        report.started_at_unix = unix_now();
        r.step("start", |_| starter.start(progress).map_err(PlanError::service("start")))?;
        self.mark(report, "start");
        let expected = expected_root(&r.j);
        r.step("health", |_| health::check(&env.api, &expected, Some(self.before), progress))?;
        self.mark(report, "health");
        Ok(())
    }

    /// The delta sync of one tree and the verify of the copy.
    fn sync_and_verify(&mut self, r: &mut Runner, t: &Tree, passes: Option<&Passes>, report: &mut MoveReport) -> Result<()> {
        let (env, progress) = (self.env, r.progress);
        let m2 = t.final_manifest();
        let baseline = passes.map(|p| p.source_manifest.clone());
        let trusted = passes.map(|p| p.target_manifest.clone());
        let opts = copy_opts(env, true, false, baseline, Some(m2.clone()));
        report.sync_rewritten += r.step(t.steps[1], |_| copy_step("sync", &t.source, &t.target, &opts, progress))?;
        self.mark(report, t.steps[1]);
        let (entries, bytes) = r.step(t.steps[2], |_| {
            let rep = verify_tree_since(&t.target, &m2, trusted.as_deref(), env.threads, progress).map_err(PlanError::engine("verify"))?;
            if !rep.ok() {
                let first = rep.differences.first().map(|d| d.to_string()).or_else(|| rep.errors.first().cloned());
                return Err(PlanError::VerifyFailed {
                    target: t.target.clone(),
                    count: rep.differences.len() + rep.errors.len(),
                    first: first.unwrap_or_default(),
                });
            }
            Ok((rep.entries, rep.bytes))
        })?;
        report.verified_entries += entries;
        report.verified_bytes_stopped += bytes;
        self.mark(report, t.steps[2]);
        Ok(())
    }
}

fn copy_opts(env: &Env, delete: bool, live: bool, baseline: Option<PathBuf>, manifest: Option<PathBuf>) -> CopyOptions {
    CopyOptions { delete, checksum: false, live, sparsify: false, clone: false, baseline, manifest, threads: env.threads }
}

fn copy_step(step: &'static str, src: &Path, dst: &Path, opts: &CopyOptions, progress: &dyn Progress) -> Result<u64> {
    let s = copy_tree(src, dst, opts, progress).map_err(PlanError::engine(step))?;
    if !s.ok() {
        return Err(PlanError::CopyErrors { step, target: dst.into(), errors: s.errors });
    }
    // The engine has already warned about each mount point it skipped.
    Ok(if opts.delete { s.stats.rewritten } else { s.stats.entries })
}

/// The manager that starts Docker on the new location: the recorded one,
/// except in pidfile mode with `--data-root` on the command line, where the
/// flag is rewritten to the target.
pub(crate) fn target_starter(j: &Journal, env: &Env) -> Box<dyn ServiceManager> {
    let ctx = env.ctx(&j.data_root);
    let rec = j.service.clone().unwrap_or(ServiceRecord { kind: ServiceKind::None, command: None, containerd: None });
    match (&rec.kind, &rec.command) {
        (ServiceKind::Pidfile(p), Some(cmd)) if j.rewrite_argv => {
            rec.with_containerd(Box::new(PidfileService::with_command(p.clone(), env.timing, rewrite_data_root(cmd, &j.target))), &ctx)
        }
        _ => rec.rebuild(&ctx),
    }
}

/// `cmd` with the value of its `--data-root`/`-g`/`--graph` flag replaced.
pub(crate) fn rewrite_data_root(cmd: &DaemonCommand, target: &Path) -> DaemonCommand {
    let t = target.to_string_lossy().to_string();
    let mut out = cmd.clone();
    let mut i = 0;
    while i < out.argv.len() {
        let a = out.argv[i].clone();
        for f in unit::DATA_ROOT_FLAGS {
            if a == *f && i + 1 < out.argv.len() {
                out.argv[i + 1] = t.clone();
                i += 1;
            } else if a.starts_with(&format!("{f}=")) {
                out.argv[i] = format!("{f}={t}");
            }
        }
        i += 1;
    }
    out
}

/// After a failure past the stop: stop Docker if it runs, undo the switch,
/// start Docker on the old data.
fn undo_after_failure(env: &Env, r: &mut Runner, cause: PlanError) -> PlanError {
    r.progress.warn(&format!("{cause}; undoing the move"));
    match crate::plan::core::undo::undo_journal(&env.api, env.timing, &env.state, &mut r.j, r.progress) {
        Ok(_) => PlanError::RolledBack { cause: Box::new(cause), data_root: r.j.data_root.clone(), target: r.j.target.clone() },
        Err(undo) => PlanError::UndoFailed { cause: Box::new(cause), undo: Box::new(undo), journal: env.state.journal_path() },
    }
}

/// Whether a journal at `state` refuses new operations (for `status`).
pub(crate) fn pending(state: &StateDir) -> Option<Journal> {
    state.load().ok().flatten().filter(|j| matches!(j.outcome, Outcome::InProgress | Outcome::Moved | Outcome::Finalizing))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rewrites_every_data_root_flag_form() {
        let c = DaemonCommand {
            argv: ["dockerd", "--data-root", "/a", "-g=/b", "--pidfile", "/p"].iter().map(|s| s.to_string()).collect(),
            env: vec![],
            cwd: "/".into(),
            log: "/l".into(),
        };
        let r = rewrite_data_root(&c, Path::new("/new"));
        assert_eq!(r.argv, ["dockerd", "--data-root", "/new", "-g=/new", "--pidfile", "/p"]);
    }
}
