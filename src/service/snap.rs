//! Docker from the snap: one unit, `snap.docker.dockerd.service`, stopped and
//! started through the system manager as snapd does it (`snap stop docker`
//! is `systemctl stop` on the same unit). The snap has no socket unit, so
//! nothing activates dockerd behind dockroot's back.

use super::command::{CommandRunner, SystemRunner};
use super::error::{Result, ServiceError};
use super::systemd::{all_stopped, parse_is_active};
use super::wait::Timing;
use super::{ServiceKind, ServiceManager};
use crate::docker::api::DockerApi;
use crate::docker::layout::SNAP_UNIT;
use crate::progress::Progress;

/// The snap's dockerd unit under systemd.
pub(crate) struct Snap<R: CommandRunner = SystemRunner> {
    runner: R,
    api: DockerApi,
    timing: Timing,
}

impl Snap<SystemRunner> {
    /// Uses the real `systemctl`.
    pub fn new(api: DockerApi, timing: Timing) -> Self {
        Self::with_runner(SystemRunner, api, timing)
    }
}

impl<R: CommandRunner> Snap<R> {
    pub(crate) fn with_runner(runner: R, api: DockerApi, timing: Timing) -> Self {
        Self { runner, api, timing }
    }

    fn systemctl(&self, log: &dyn Progress, verb: &str) -> Result<()> {
        log.log(&format!("run: systemctl {verb} {SNAP_UNIT}"));
        self.runner.run_ok("systemctl", &[verb, SNAP_UNIT]).map(drop)
    }

    fn state(&self) -> Result<Vec<String>> {
        Ok(parse_is_active(&self.runner.run("systemctl", &["is-active", SNAP_UNIT])?.stdout))
    }
}

impl<R: CommandRunner> ServiceManager for Snap<R> {
    fn name(&self) -> String {
        "snap".into()
    }

    fn stop(&self, log: &dyn Progress) -> Result<()> {
        self.systemctl(log, "stop")?;
        let mut last = Vec::new();
        let stopped = self.timing.wait_until(|| match self.state() {
            Ok(s) if all_stopped(&s) => true,
            Ok(s) => {
                last = s;
                false
            }
            Err(_) => false,
        });
        if stopped {
            return Ok(());
        }
        Err(ServiceError::StopTimeout { what: SNAP_UNIT.into(), secs: self.timing.secs(), state: last.join(", ") })
    }

    /// Clears a failed state first (a restore may start it more than once).
    fn start(&self, log: &dyn Progress) -> Result<()> {
        let _ = self.systemctl(log, "reset-failed");
        self.systemctl(log, "start")?;
        if self.timing.wait_until(|| self.api.ping()) {
            return Ok(());
        }
        Err(ServiceError::StartTimeout { what: SNAP_UNIT.into(), socket: self.api.socket.clone(), secs: self.timing.secs(), log: None })
    }

    fn is_running(&self) -> Result<bool> {
        Ok(!all_stopped(&self.state()?))
    }

    fn kind(&self) -> ServiceKind {
        ServiceKind::Snap
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::progress::Silent;
    use crate::service::systemd::tests::{FakeRunner, fast};

    #[test]
    fn stops_the_snap_unit_and_polls_it() {
        let r = FakeRunner::default();
        r.reply("systemctl is-active snap.docker.dockerd.service", 0, "active\n");
        r.reply("systemctl is-active snap.docker.dockerd.service", 3, "inactive\n");
        let s = Snap::with_runner(r, DockerApi::new("/x.sock"), fast());
        s.stop(&Silent).unwrap();
        assert_eq!(s.runner.calls.lock().unwrap()[0], "systemctl stop snap.docker.dockerd.service");
        assert_eq!(s.kind().to_string(), "snap");
    }
}
