//! The one stop contract of backup, restore and move: before the stop,
//! refuse when live-restore would keep containers running; stop every unit
//! (see [`super::systemd::UNITS`]); prove that no dockerd runs and nothing
//! holds the data-root ([`super::verify_stopped`]). While the guard is held
//! Docker is down, and dropping it starts Docker again, also on an error or a
//! panic. Operations whose journal takes over the restart (move and restore,
//! whose undo must run before Docker starts) hand it over with
//! [`StopGuard::hand_over`]. Starts clear systemd's start limit first (in the
//! systemd manager), so repeated failures never leave units `failed`.

use std::path::Path;

use super::error::{Result, ServiceError};
use super::wait::Timing;
use super::{ServiceManager, verify_stopped_all};
use crate::docker::api::DockerApi;
use crate::progress::Progress;

/// What a daemon does after a stop that failed, once waited for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Settled {
    /// It answers: it still runs on what it ran on.
    Serving,
    /// Alive but silent for the whole wait (hung, or SIGSTOPped): it is
    /// left alone, since starting Docker could spawn a second daemon.
    Hung,
    /// It exited (it had its SIGTERM before the failure): start it again.
    Exited,
}

/// Waits, up to `timing`, until the daemon answers or exits. A daemon that
/// got its SIGTERM before the stop failed (an I/O error while waiting for it)
/// is alive while it shuts down, so being alive is not enough to leave it be.
pub fn settle(svc: &dyn ServiceManager, api: &DockerApi, timing: Timing) -> Settled {
    let mut exited = false;
    timing.wait_until(|| {
        if api.ping() {
            return true;
        }
        // An error reading its state is no proof it exited.
        exited = !svc.is_running().unwrap_or(true);
        exited
    });
    if exited {
        Settled::Exited
    } else if api.ping() {
        Settled::Serving
    } else {
        Settled::Hung
    }
}

/// Docker stopped by dockroot; started again when dropped.
pub struct StopGuard<'a> {
    svc: &'a dyn ServiceManager,
    api: &'a DockerApi,
    timing: Timing,
    log: &'a dyn Progress,
    armed: bool,
}

impl<'a> StopGuard<'a> {
    /// Checks live-restore, stops Docker (and containerd when the manager
    /// stops it too) and verifies that nothing uses `data_root` or the
    /// manager's other stores. On an error after the stop began, Docker is
    /// started again.
    pub fn stop(svc: &'a dyn ServiceManager, api: &'a DockerApi, timing: Timing, data_root: &Path, log: &'a dyn Progress) -> Result<Self> {
        refuse_live_restore(api)?;
        let guard = StopGuard { svc, api, timing, log, armed: true };
        svc.stop(log)?;
        let mut paths = vec![data_root.to_path_buf()];
        paths.extend(svc.stores());
        verify_stopped_all(&paths)?;
        Ok(guard)
    }

    /// Leaves Docker stopped: the caller's journal now owns starting it.
    pub(crate) fn hand_over(mut self) {
        self.armed = false;
    }
}

impl Drop for StopGuard<'_> {
    fn drop(&mut self) {
        if !self.armed {
            return;
        }
        // A daemon that would not stop is still running: starting it again
        // could spawn a second one (pidfile mode). One still shutting down
        // is waited for, then started.
        if self.svc.is_running().unwrap_or(false) {
            match settle(self.svc, self.api, self.timing) {
                Settled::Exited => {}
                Settled::Serving => return,
                Settled::Hung => {
                    self.log.warn("dockerd did not exit and does not answer: it is left as it is (dockroot never sends SIGKILL)");
                    return;
                }
            }
        }
        if let Err(e) = self.svc.start(self.log) {
            self.log.warn(&format!("could not start Docker again: {e}"));
        }
    }
}

/// Refuses when the running daemon has live-restore on (as it reports it
/// in `GET /info`, whatever configured it) and containers run: they would
/// keep writing to the data-root after dockerd stops.
pub(crate) fn refuse_live_restore(api: &DockerApi) -> Result<()> {
    if !api.ping() {
        return Ok(());
    }
    let info: serde_json::Value = api.get_json("/info")?;
    let running = info["ContainersRunning"].as_u64().unwrap_or(0);
    if info["LiveRestoreEnabled"] == true && running > 0 {
        return Err(ServiceError::LiveRestoreRunning { running });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::progress::Silent;
    use crate::service::ServiceKind;
    use std::sync::Mutex;

    /// Records calls; `stop` fails when asked to.
    struct Fake {
        calls: Mutex<Vec<&'static str>>,
        fail_stop: bool,
    }

    impl ServiceManager for Fake {
        fn name(&self) -> String {
            "fake".into()
        }
        fn stop(&self, _: &dyn Progress) -> Result<()> {
            self.calls.lock().unwrap().push("stop");
            if self.fail_stop { Err(ServiceError::UnknownKind { value: "x".into() }) } else { Ok(()) }
        }
        fn start(&self, _: &dyn Progress) -> Result<()> {
            self.calls.lock().unwrap().push("start");
            Ok(())
        }
        fn is_running(&self) -> Result<bool> {
            Ok(false)
        }
        fn kind(&self) -> ServiceKind {
            ServiceKind::None
        }
    }

    #[test]
    fn dropped_guard_starts_docker_and_handed_over_one_does_not() {
        let api = DockerApi::new("/nonexistent.sock");
        let d = tempfile::tempdir().unwrap();
        let f = Fake { calls: Mutex::new(vec![]), fail_stop: false };
        drop(StopGuard::stop(&f, &api, Timing::default(), d.path(), &Silent).unwrap());
        assert_eq!(*f.calls.lock().unwrap(), ["stop", "start"]);
        let f = Fake { calls: Mutex::new(vec![]), fail_stop: false };
        StopGuard::stop(&f, &api, Timing::default(), d.path(), &Silent).unwrap().hand_over();
        assert_eq!(*f.calls.lock().unwrap(), ["stop"]);
        let f = Fake { calls: Mutex::new(vec![]), fail_stop: true };
        assert!(StopGuard::stop(&f, &api, Timing::default(), d.path(), &Silent).is_err());
        assert_eq!(*f.calls.lock().unwrap(), ["stop", "start"], "a failed stop starts Docker again");
    }
}
