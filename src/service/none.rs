//! The `none` mode: the user stops and starts Docker. dockroot still refuses
//! to touch a data-root that a dockerd process is using.

use super::error::{Result, ServiceError};
use super::procscan;
use super::{ServiceKind, ServiceManager};
use crate::progress::Progress;
use std::path::PathBuf;

/// Starts and stops nothing; `stop` only checks.
pub struct NoService {
    data_root: PathBuf,
    proc_root: PathBuf,
}

impl NoService {
    /// Guards `data_root` on this host.
    pub fn new(data_root: impl Into<PathBuf>) -> Self {
        Self::with_proc_root(data_root, "/proc")
    }

    /// Guards `data_root` using another proc root (tests).
    pub(crate) fn with_proc_root(data_root: impl Into<PathBuf>, proc_root: impl Into<PathBuf>) -> Self {
        Self { data_root: data_root.into(), proc_root: proc_root.into() }
    }

    fn daemon_pids(&self) -> Vec<u32> {
        procscan::dockerds_using(&self.proc_root, &self.data_root).iter().map(|p| p.pid).collect()
    }
}

impl ServiceManager for NoService {
    fn name(&self) -> String {
        "none".into()
    }

    /// Fails with [`ServiceError::DaemonRunning`] if a dockerd uses the data-root.
    fn stop(&self, log: &dyn Progress) -> Result<()> {
        log.log(&format!("service none: stopping nothing, checking that no dockerd uses {}", self.data_root.display()));
        let pids = self.daemon_pids();
        if pids.is_empty() {
            return Ok(());
        }
        Err(ServiceError::DaemonRunning { data_root: self.data_root.clone(), pids })
    }

    fn start(&self, log: &dyn Progress) -> Result<()> {
        log.log("service none: starting nothing");
        Ok(())
    }

    fn kind(&self) -> ServiceKind {
        ServiceKind::None
    }

    fn is_running(&self) -> Result<bool> {
        Ok(!self.daemon_pids().is_empty())
    }
}
