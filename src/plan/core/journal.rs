//! The journal of every operation that changes the system (move, restore,
//! backup): one JSON file in the state directory naming its operation,
//! rewritten atomically (temp file, fsync, rename, fsync of the directory)
//! before and after every step. Before a step acts, its record holds every
//! name it will create or rename ([`Intent`]), so a `rollback` in another
//! process (after a crash, kill -9 or power loss) knows exactly what to undo.
//! A `flock` on `<state-dir>/lock` keeps two dockroot runs apart, and an
//! unfinished operation of any kind refuses the next one.

use std::fs::{self, File, OpenOptions};
use std::os::fd::AsFd;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::error::{PlanError, Result};
use super::identity::FileId;
use super::intent::Intent;
use crate::docker::snapshot::DockerState;
use crate::service::ServiceRecord;

/// The format written by this version: steps carry their intents, and
/// renames and made trees their identities (issue 17). Version 2 had no
/// identities; version 1 (no `version` field) recorded step names only.
pub(crate) const VERSION: u32 = 3;
/// The restore journal of dockroot versions before the shared journal.
pub(crate) const LEGACY_RESTORE_FILE: &str = "restore.json";

fn legacy_version() -> u32 {
    1
}

const FILE: &str = "journal.json";

/// The journal's operation name of `restore --volume`.
pub(crate) const RESTORE_VOLUME: &str = "restore-volume";
/// The journal's operation name of `restore --bind`.
pub(crate) const RESTORE_BIND: &str = "restore-bind";

/// Operations that swap one piece in while Docker runs: a finished one can
/// still be rolled back (its previous files are kept aside).
pub(crate) fn is_piece(operation: &str) -> bool {
    operation == RESTORE_VOLUME || operation == RESTORE_BIND
}

/// How the new location is made Docker's data-root.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Method {
    /// Bind-mount the target on the old data-root path (fstab line).
    Bind,
    /// Point `data-root` in daemon.json at the target.
    DataRoot,
    /// Restore: the staged tree is renamed onto the data-root path.
    Swap,
    /// Backup: the data stays where it is.
    None,
}

impl std::fmt::Display for Method {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Method::Bind => "bind mount",
            Method::DataRoot => "data-root in daemon.json",
            Method::Swap => "swap of the staged tree",
            Method::None => "none",
        })
    }
}

/// The state of one step.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum StepState {
    Started,
    Done,
    Undone,
}

/// One step as recorded.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StepRecord {
    pub name: String,
    pub state: StepState,
    /// What the step changes, recorded with `started` before it acts.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub intents: Vec<Intent>,
}

/// Backups of configuration files taken before editing them; `None` when
/// the file did not exist (undo then removes it).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Backups {
    pub fstab: Option<PathBuf>,
    pub daemon_json: Option<PathBuf>,
    pub dropin: Option<PathBuf>,
}

/// The overall state of the recorded operation.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Outcome {
    /// Steps are running or were interrupted.
    InProgress,
    /// The move finished and Docker passed the health check; `finalize` may delete the old tree.
    Moved,
    /// The operation was undone.
    RolledBack,
    /// The operation finished and needs nothing more (restore, backup).
    Done,
    /// `finalize` began deleting the old tree: only `finalize` may go on.
    Finalizing,
}

impl std::fmt::Display for Outcome {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Outcome::InProgress => "in progress",
            Outcome::Moved => "moved",
            Outcome::RolledBack => "rolled back",
            Outcome::Done => "done",
            Outcome::Finalizing => "being finalized",
        })
    }
}

/// Everything a later process needs to undo or finish a move.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Journal {
    #[serde(default = "legacy_version")]
    pub version: u32,
    pub id: String,
    /// `move`, `restore` or `backup`.
    pub operation: String,
    pub outcome: Outcome,
    pub data_root: PathBuf,
    pub target: PathBuf,
    pub method: Method,
    /// Pidfile mode: dockerd's `--data-root` flag is rewritten instead of daemon.json.
    #[serde(default)]
    pub rewrite_argv: bool,
    /// How to start Docker again as it was (filled at the stop step).
    pub service: Option<ServiceRecord>,
    pub socket: PathBuf,
    pub fstab: PathBuf,
    pub daemon_json: PathBuf,
    pub dropin: Option<PathBuf>,
    pub steps: Vec<StepRecord>,
    pub backups: Backups,
    /// Where the old data-root was renamed to (bind method).
    pub old_tree: Option<PathBuf>,
    /// Seconds Docker was down (stop → healthy start).
    pub downtime_seconds: Option<f64>,
    /// The archive a restore reads.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub archive: Option<PathBuf>,
    /// Backup: how the stopped state was captured (`btrfs`, `reflink`), when
    /// the archive is read from a snapshot with Docker running again.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub snapshot: Option<String>,
    /// A live backup's entries and bytes per phase.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub phases: Option<serde_json::Value>,
    /// A move of the containerd image store: containerd's root moves too.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub containerd_move: Option<TreeMove>,
    /// `restore --volume`: the volume whose files are swapped (its users
    /// are stopped while an undo renames them back).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub volume: Option<String>,
    /// `restore --bind`: the bind source whose files are swapped (the
    /// containers that mount it are stopped while an undo renames them back).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bind: Option<PathBuf>,
    /// Docker's images, containers and volumes when the operation began: the
    /// health check after a rollback compares with them.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub before: Option<DockerState>,
    /// The trees the operation started from, with their identity (a move's
    /// data-root and containerd root: what `finalize` may delete).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub sources: Vec<Recorded>,
    /// Seconds since the epoch when the operation finished (moved or done).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub finished_at: Option<u64>,
    /// Trees the undo found where it expected none and kept under a new name.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub kept_aside: Vec<PathBuf>,
}

/// A path and the identity of what was there when it was recorded.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Recorded {
    pub path: PathBuf,
    pub id: FileId,
}

/// A second tree a move relocates (containerd's root), beside the data-root.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TreeMove {
    pub source: PathBuf,
    pub target: PathBuf,
    /// Where the old tree is kept until `finalize` (the renamed source with
    /// `bind`, the source itself with `data-root`).
    pub old_tree: Option<PathBuf>,
    /// containerd's config file, whose `root` the data-root method edits.
    pub config: PathBuf,
    /// containerd.service's drop-in (`RequiresMountsFor=`), bind method under systemd.
    pub dropin: Option<PathBuf>,
}

impl Journal {
    /// The recorded state of `name`, if the step began.
    pub(crate) fn state(&self, name: &str) -> Option<StepState> {
        self.steps.iter().rev().find(|s| s.name == name).map(|s| s.state)
    }

    /// Whether `name` was started (done or not) and not undone.
    pub(crate) fn touched(&self, name: &str) -> bool {
        matches!(self.state(name), Some(StepState::Started | StepState::Done))
    }

    pub(crate) fn set(&mut self, name: &str, state: StepState) {
        match self.steps.iter_mut().find(|s| s.name == name) {
            Some(s) => s.state = state,
            None => self.steps.push(StepRecord { name: name.into(), state, intents: Vec::new() }),
        }
    }

    /// Marks `name` started with what it will change (saved by the caller before it acts).
    pub(crate) fn begin(&mut self, name: &str, intents: Vec<Intent>) {
        self.set(name, StepState::Started);
        if let Some(s) = self.steps.iter_mut().find(|s| s.name == name) {
            s.intents = intents;
        }
    }

    /// The identity recorded for the tree at `path`: what a done rename
    /// moved there, or a source tree recorded when the operation began.
    pub(crate) fn recorded_id(&self, path: &Path) -> Option<FileId> {
        let renamed = self.steps.iter().filter(|s| s.state == StepState::Done).flat_map(|s| &s.intents).find_map(|i| match i {
            Intent::Rename { to, id, .. } if to == path => *id,
            _ => None,
        });
        renamed.or_else(|| self.sources.iter().find(|r| r.path == path).map(|r| r.id))
    }

    /// Records the identity of the tree at `path` as one the operation starts from.
    pub(crate) fn record_source(&mut self, path: &Path) {
        if let Some(id) = FileId::of(path) {
            self.sources.push(Recorded { path: path.into(), id });
        }
    }

    /// Whether any begun step changes files, names or mounts.
    pub(crate) fn switched(&self) -> bool {
        self.steps.iter().any(|s| s.state != StepState::Undone && !s.intents.is_empty())
    }

    /// A journal for operation `operation` (`id` = `<operation>-<UTC time>`).
    pub fn new(operation: &str, id: String, data_root: PathBuf, target: PathBuf, method: Method) -> Journal {
        Journal {
            version: VERSION,
            id,
            operation: operation.into(),
            outcome: Outcome::InProgress,
            data_root,
            target,
            method,
            rewrite_argv: false,
            service: None,
            socket: PathBuf::new(),
            fstab: PathBuf::new(),
            daemon_json: PathBuf::new(),
            dropin: None,
            steps: Vec::new(),
            backups: Backups::default(),
            old_tree: None,
            downtime_seconds: None,
            archive: None,
            snapshot: None,
            phases: None,
            containerd_move: None,
            volume: None,
            bind: None,
            before: None,
            sources: Vec::new(),
            finished_at: None,
            kept_aside: Vec::new(),
        }
    }
}

/// Room for the journal and its temporary copy, with a margin.
const JOURNAL_ROOM: u64 = 4 << 20;
/// Bytes of one manifest line, generously (a data-root's paths are long).
pub(crate) const MANIFEST_BYTES_PER_ENTRY: u64 = 384;

/// The state directory: journal, lock and manifests.
#[derive(Debug, Clone)]
pub struct StateDir {
    pub dir: PathBuf,
}

impl StateDir {
    pub fn new(dir: impl Into<PathBuf>) -> Self {
        Self { dir: dir.into() }
    }

    pub(crate) fn journal_path(&self) -> PathBuf {
        self.dir.join(FILE)
    }

    /// Where the manifests of move `id` go.
    pub(crate) fn work_dir(&self, id: &str) -> PathBuf {
        self.dir.join(id)
    }

    fn err(&self, path: &Path, e: impl std::fmt::Display) -> PlanError {
        PlanError::Journal { path: path.into(), msg: e.to_string() }
    }

    /// Creates the directory (0700) if missing.
    pub(crate) fn ensure(&self) -> Result<()> {
        use std::os::unix::fs::DirBuilderExt;
        fs::DirBuilder::new().recursive(true).mode(0o700).create(&self.dir).map_err(|e| self.err(&self.dir, e))
    }

    /// Takes the exclusive lock without waiting; held until the returned file is dropped.
    pub(crate) fn lock(&self) -> Result<File> {
        self.ensure()?;
        let path = self.dir.join("lock");
        let f = OpenOptions::new().create(true).truncate(false).write(true).open(&path).map_err(|e| self.err(&path, e))?;
        if !crate::sys::process::try_lock_exclusive(f.as_fd()).unwrap_or(false) {
            return Err(PlanError::Locked { path });
        }
        // Under the lock a journal temp file is the leftover of a killed run.
        let tmp = crate::util::atomic::temp_name(&self.journal_path());
        match fs::remove_file(&tmp) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => return Err(self.err(&tmp, e)),
            _ => {}
        }
        Ok(f)
    }

    /// Refuses, before Docker is stopped, when the state directory's
    /// filesystem lacks room for the journal (rewritten at every step) and
    /// `manifests` bytes of manifests: a full disk there would fail a step
    /// with Docker down. The disk a user moves Docker off is often the full
    /// one that holds /var/lib/dockroot.
    pub(crate) fn check_room(&self, manifests: u64) -> Result<()> {
        let need = JOURNAL_ROOM + manifests;
        let at = self.dir.ancestors().find(|a| a.exists()).unwrap_or(Path::new("/"));
        let (_, free) = crate::sys::process::statfs(at).map_err(|e| self.err(at, e))?;
        if free < need {
            return Err(PlanError::preflight(format!(
                "the state directory {} has {free} bytes free, but the journal and manifests need about {need}; free space there, or pass --state-dir with a directory on another filesystem",
                self.dir.display()
            )));
        }
        Ok(())
    }

    /// Reads the journal, if any.
    pub fn load(&self) -> Result<Option<Journal>> {
        let path = self.journal_path();
        match fs::read(&path) {
            Ok(b) => serde_json::from_slice(&b)
                .map(Some)
                .map_err(|e| self.err(&path, format!("{e}; the file is damaged: repair it by hand or move it away"))),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(self.err(&path, e)),
        }
    }

    /// Atomically writes the journal: temp file, fsync, rename, fsync dir.
    pub(crate) fn save(&self, j: &Journal) -> Result<()> {
        let path = self.journal_path();
        let text = serde_json::to_vec_pretty(j).map_err(|e| self.err(&path, e))?;
        // 0600: the journal holds dockerd's environment, which may carry secrets.
        crate::util::atomic::write_atomic(&path, &text, 0o600).map_err(|e| self.err(&path, e))
    }

    /// Removes the journal and the move's work directory.
    pub(crate) fn clear(&self, j: &Journal) -> Result<()> {
        let path = self.journal_path();
        let _ = crate::sys::remove::remove_tree(&self.work_dir(&j.id));
        match fs::remove_file(&path) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => return Err(self.err(&path, e)),
            _ => {}
        }
        File::open(&self.dir).and_then(|d| d.sync_all()).map_err(|e| self.err(&self.dir, e))
    }

    /// Refuses when an unfinished operation of any kind is recorded. One
    /// that ended before it stopped Docker (e.g. ^C during the pre-copy) and
    /// changed no file or name does not block (a running one holds the lock).
    pub fn refuse_unfinished(&self) -> Result<()> {
        self.refuse_legacy_restore()?;
        match self.load()? {
            Some(j) if j.outcome == Outcome::InProgress && j.state("stop").is_none() && !j.switched() => Ok(()),
            Some(j) if matches!(j.outcome, Outcome::InProgress | Outcome::Moved | Outcome::Finalizing) => Err(PlanError::Unfinished {
                state: match j.outcome {
                    Outcome::Moved => "a finished but not finalized",
                    Outcome::Finalizing => "a half-finalized",
                    _ => "an unfinished",
                },
                hint: match j.outcome {
                    Outcome::Moved => "run `dockroot finalize` to keep it or `dockroot rollback` to undo it first",
                    Outcome::Finalizing => "run `dockroot finalize` to finish it first",
                    _ => "run `dockroot rollback` first (or `dockroot move --resume` for a move)",
                },
                operation: j.operation,
                data_root: j.data_root,
                path: self.journal_path(),
            }),
            _ => Ok(()),
        }
    }

    /// An interrupted restore recorded by a dockroot older than the shared
    /// journal cannot be undone by this one: say what to do by hand.
    pub(crate) fn refuse_legacy_restore(&self) -> Result<()> {
        let path = self.dir.join(LEGACY_RESTORE_FILE);
        let Ok(bytes) = fs::read(&path) else { return Ok(()) };
        let v: serde_json::Value = serde_json::from_slice(&bytes).unwrap_or_default();
        if v["outcome"] != "running" {
            return Ok(());
        }
        Err(PlanError::Journal {
            path,
            msg: format!(
                "an interrupted restore into {} was recorded by an older dockroot; stop Docker, put the data-root back from {} if it is missing (remove {} if present), start Docker, then delete this file",
                v["data_root"].as_str().unwrap_or("?"),
                v["old"].as_str().unwrap_or("?"),
                v["staging"].as_str().unwrap_or("?")
            ),
        })
    }
}

#[cfg(test)]
impl Journal {
    /// A move journal with every path below `dir`, for unit tests.
    pub(crate) fn for_test(dir: &Path, method: Method) -> Journal {
        Journal {
            id: "t".into(),
            socket: dir.join("sock"),
            fstab: dir.join("fstab"),
            daemon_json: dir.join("daemon.json"),
            ..Journal::new("move", String::new(), dir.join("root"), dir.join("target"), method)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn save_load_lock_refuse() {
        let d = tempfile::tempdir().unwrap();
        let s = StateDir::new(d.path().join("state"));
        assert!(s.load().unwrap().is_none());
        let _l = s.lock().unwrap();
        assert!(matches!(s.lock(), Err(PlanError::Locked { .. })));
        let mut j = Journal::for_test(Path::new("/x"), Method::Bind);
        j.set("precopy", StepState::Started);
        s.save(&j).unwrap();
        assert!(s.refuse_unfinished().is_ok(), "nothing changed before the stop");
        j.set("stop", StepState::Started);
        j.set("stop", StepState::Done);
        s.save(&j).unwrap();
        let back = s.load().unwrap().unwrap();
        assert_eq!(back, j);
        assert_eq!(back.state("stop"), Some(StepState::Done));
        let e = s.refuse_unfinished().unwrap_err().to_string();
        assert!(e.contains("dockroot rollback"), "{e}");
        s.clear(&j).unwrap();
        assert!(s.refuse_unfinished().is_ok());
    }
}
