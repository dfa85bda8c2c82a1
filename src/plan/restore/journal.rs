//! The restore journal (`<state-dir>/restore.json`), rewritten after every
//! step, and the undo that reads it: the same undo runs when a step fails and
//! when `dockroot rollback` finds a restore that was interrupted (killed,
//! power loss), so Docker never stays down or on a half-swapped tree.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::super::archive_error::{BackupError, Result};
use crate::docker::atomic;
use crate::progress::Progress;
use crate::service::{ServiceContext, ServiceRecord};

/// Steps, in the order they happen; the journal lists those done.
pub mod step {
    pub const STAGING: &str = "staging-created";
    pub const EXTRACTED: &str = "extracted";
    pub const VERIFIED: &str = "verified";
    pub const STOPPED: &str = "stopped";
    /// The previous data-root was renamed to `old`.
    pub const ASIDE: &str = "old-aside";
    /// The staging tree is the data-root.
    pub const SWAPPED: &str = "swapped";
    pub const CONFIG: &str = "config";
    pub const STARTED: &str = "started";
    pub const HEALTHY: &str = "healthy";
}

/// A configuration file the restore replaced, and its backup (`None`: it did not exist).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ConfigChange {
    pub path: PathBuf,
    pub backup: Option<PathBuf>,
}

#[derive(Debug, Serialize, Deserialize)]
pub struct Journal {
    pub operation: String,
    pub archive: PathBuf,
    pub data_root: PathBuf,
    pub staging: PathBuf,
    pub old: PathBuf,
    /// How to start Docker again (recorded when it is stopped).
    #[serde(default)]
    pub service: Option<ServiceRecord>,
    #[serde(default)]
    pub config: Vec<ConfigChange>,
    pub steps: Vec<String>,
    /// `running` until the restore ends: `done`, `refused`, `undone`,
    /// `undo-failed` or `rolled-back`.
    pub outcome: String,
    #[serde(skip)]
    pub path: PathBuf,
}

pub fn path(state_dir: &Path) -> PathBuf {
    state_dir.join("restore.json")
}

impl Journal {
    pub fn new(state_dir: &Path, archive: &Path, data_root: &Path, staging: &Path, old: &Path) -> Journal {
        Journal {
            operation: "restore".into(),
            archive: archive.into(),
            data_root: data_root.into(),
            staging: staging.into(),
            old: old.into(),
            service: None,
            config: Vec::new(),
            steps: Vec::new(),
            outcome: "running".into(),
            path: path(state_dir),
        }
    }

    /// The journal of the last restore, if any.
    pub fn load(state_dir: &Path) -> Result<Option<Journal>> {
        let p = path(state_dir);
        let bytes = match std::fs::read(&p) {
            Ok(b) => b,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(BackupError::io("read the restore journal", &p)(e)),
        };
        let mut j: Journal = serde_json::from_slice(&bytes).map_err(|e| {
            BackupError::Refused(format!("the restore journal {} is damaged ({e}); check and remove it by hand", p.display()))
        })?;
        j.path = p;
        Ok(Some(j))
    }

    pub fn done(&self, s: &str) -> bool {
        self.steps.iter().any(|x| x == s)
    }

    /// Records a finished step. Written before the next step starts, so an
    /// interruption is undone from what really happened.
    pub fn step(&mut self, s: &str) -> Result<()> {
        self.steps.push(s.to_string());
        self.save()?;
        super::super::crash_hook(&format!("restore:{s}"));
        Ok(())
    }

    pub fn end(&mut self, outcome: &str) -> Result<()> {
        self.outcome = outcome.into();
        self.save()
    }

    pub fn save(&self) -> Result<()> {
        let dir = self.path.parent().unwrap_or(Path::new("/"));
        std::fs::create_dir_all(dir).map_err(BackupError::io("create the state directory", dir))?;
        let j = serde_json::to_vec_pretty(self).map_err(|e| BackupError::Refused(format!("cannot encode the journal: {e}")))?;
        atomic::write_atomic(&self.path, &j, 0o600).map_err(BackupError::docker("write the restore journal"))
    }

    /// Puts everything back the way it was before the restore: config files,
    /// the previous data-root, no staging tree, and Docker running if it was
    /// stopped. Returns what could not be undone (empty when all went well).
    pub fn undo(&mut self, ctx: &ServiceContext, progress: &dyn Progress) -> Vec<String> {
        let mut failed = Vec::new();
        let svc = self.service.as_ref().map(|r| r.rebuild(ctx));
        // Docker may already run on the restored tree (the health check failed).
        if let Some(svc) = &svc
            && self.done(step::STOPPED)
            && svc.is_running().unwrap_or(false)
            && let Err(e) = svc.stop(progress)
        {
            failed.push(format!("stop Docker: {e}"));
        }
        for c in self.config.iter().rev() {
            let r = match &c.backup {
                Some(b) => std::fs::rename(b, &c.path),
                None => std::fs::remove_file(&c.path),
            };
            if let Err(e) = r {
                failed.push(format!("put back {}: {e}", c.path.display()));
            }
        }
        let (dr, staging, old) = (&self.data_root, &self.staging, &self.old);
        if self.done(step::SWAPPED)
            && dr.symlink_metadata().is_ok()
            && let Err(e) = std::fs::rename(dr, staging)
        {
            failed.push(format!("rename {} back to {}: {e}", dr.display(), staging.display()));
        }
        if self.done(step::ASIDE)
            && old.symlink_metadata().is_ok()
            && dr.symlink_metadata().is_err()
            && let Err(e) = std::fs::rename(old, dr)
        {
            failed.push(format!("rename {} back to {}: {e}", old.display(), dr.display()));
        }
        if staging.symlink_metadata().is_ok()
            && let Err(e) = std::fs::remove_dir_all(staging)
        {
            failed.push(format!("remove {}: {e}", staging.display()));
        }
        if self.done(step::STOPPED) {
            match &svc {
                Some(svc) => {
                    if let Err(e) = svc.start(progress) {
                        failed.push(format!("start Docker: {e}"));
                    }
                }
                None => failed.push("no service record: start Docker by hand".into()),
            }
        }
        failed
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::service::ServiceKind;

    #[test]
    fn undo_after_an_interrupted_swap_puts_the_old_tree_back() {
        let t = tempfile::tempdir().unwrap();
        let (dr, staging, old) = (t.path().join("docker"), t.path().join("docker.staging"), t.path().join("docker.old"));
        // Interrupted between the two renames: the data-root is aside, staging not yet in place.
        std::fs::create_dir(&old).unwrap();
        std::fs::write(old.join("keep"), b"x").unwrap();
        std::fs::create_dir(&staging).unwrap();
        let cfg = t.path().join("daemon.json");
        std::fs::write(&cfg, b"restored").unwrap();
        let bak = t.path().join("daemon.json.bak");
        std::fs::write(&bak, b"before").unwrap();
        let mut j = Journal::new(t.path(), Path::new("a.tar.zst"), &dr, &staging, &old);
        j.service = Some(ServiceRecord { kind: ServiceKind::None, command: None });
        j.config.push(ConfigChange { path: cfg.clone(), backup: Some(bak) });
        for s in [step::STAGING, step::EXTRACTED, step::VERIFIED, step::STOPPED, step::ASIDE] {
            j.step(s).unwrap();
        }
        let mut j = Journal::load(t.path()).unwrap().unwrap();
        let ctx = ServiceContext {
            data_root: dr.clone(),
            api: crate::docker::api::DockerApi::new("/nonexistent.sock"),
            timing: crate::service::wait::Timing::default(),
        };
        assert!(j.undo(&ctx, &crate::progress::Silent).is_empty());
        assert_eq!(std::fs::read(dr.join("keep")).unwrap(), b"x");
        assert!(!staging.exists() && !old.exists());
        assert_eq!(std::fs::read(&cfg).unwrap(), b"before");
    }
}
