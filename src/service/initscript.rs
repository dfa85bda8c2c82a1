//! Docker managed by an init script: SysV (`service docker stop`) or OpenRC
//! (`rc-service docker stop`). Both report status by exit code (0 = running),
//! which is what we poll after stopping.

use super::command::{CommandRunner, SystemRunner};
use super::error::{Result, ServiceError};
use super::wait::Timing;
use super::{ServiceKind, ServiceManager};
use crate::docker::api::DockerApi;
use crate::progress::Progress;

/// Which init-script front end to call.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Flavor {
    /// `service docker ...`
    Sysv,
    /// `rc-service docker ...`
    OpenRc,
}

impl Flavor {
    fn program(self) -> &'static str {
        match self {
            Self::Sysv => "service",
            Self::OpenRc => "rc-service",
        }
    }
}

/// Docker managed by an init script.
pub(crate) struct InitScript<R: CommandRunner = SystemRunner> {
    flavor: Flavor,
    runner: R,
    api: DockerApi,
    timing: Timing,
}

impl InitScript<SystemRunner> {
    /// Uses the real commands.
    pub fn new(flavor: Flavor, api: DockerApi, timing: Timing) -> Self {
        Self::with_runner(flavor, SystemRunner, api, timing)
    }
}

impl<R: CommandRunner> InitScript<R> {
    /// Uses a given command runner.
    pub(crate) fn with_runner(flavor: Flavor, runner: R, api: DockerApi, timing: Timing) -> Self {
        Self { flavor, runner, api, timing }
    }

    fn status_running(&self) -> Result<bool> {
        Ok(self.runner.run(self.flavor.program(), &["docker", "status"])?.success())
    }
}

impl<R: CommandRunner> ServiceManager for InitScript<R> {
    fn name(&self) -> String {
        match self.flavor {
            Flavor::Sysv => "sysv".into(),
            Flavor::OpenRc => "openrc".into(),
        }
    }

    fn stop(&self, log: &dyn Progress) -> Result<()> {
        let prog = self.flavor.program();
        log.log(&format!("run: {prog} docker stop"));
        self.runner.run_ok(prog, &["docker", "stop"])?;
        if self.timing.wait_until(|| matches!(self.status_running(), Ok(false))) {
            return Ok(());
        }
        let what = format!("{prog} docker");
        Err(ServiceError::StopTimeout { what, secs: self.timing.secs(), state: "running".into() })
    }

    fn start(&self, log: &dyn Progress) -> Result<()> {
        let prog = self.flavor.program();
        log.log(&format!("run: {prog} docker start"));
        self.runner.run_ok(prog, &["docker", "start"])?;
        if self.timing.wait_until(|| self.api.ping()) {
            return Ok(());
        }
        Err(ServiceError::StartTimeout {
            what: format!("{prog} docker"),
            socket: self.api.socket.clone(),
            secs: self.timing.secs(),
            log: None,
        })
    }

    fn kind(&self) -> ServiceKind {
        match self.flavor {
            Flavor::Sysv => ServiceKind::Sysv,
            Flavor::OpenRc => ServiceKind::OpenRc,
        }
    }

    fn is_running(&self) -> Result<bool> {
        self.status_running()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::progress::Silent;
    use crate::service::systemd::tests::{FakeRunner, fast};

    #[test]
    fn openrc_stop_polls_status() {
        let r = FakeRunner::default();
        r.reply("rc-service docker status", 0, "started");
        r.reply("rc-service docker status", 3, "stopped");
        let s = InitScript::with_runner(Flavor::OpenRc, r, DockerApi::new("/x.sock"), fast());
        s.stop(&Silent).unwrap();
        assert_eq!(s.runner.calls.lock().unwrap()[0], "rc-service docker stop");
        assert_eq!(s.name(), "openrc");
    }

    #[test]
    fn sysv_stop_timeout() {
        let r = FakeRunner::default();
        r.reply("service docker status", 0, "running");
        let s = InitScript::with_runner(Flavor::Sysv, r, DockerApi::new("/x.sock"), fast());
        assert!(matches!(s.stop(&Silent), Err(ServiceError::StopTimeout { .. })));
    }
}
