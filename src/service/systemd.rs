//! Stopping and starting Docker under systemd. Both `docker.socket` and
//! `docker.service` must be stopped: with only the service stopped, the first
//! client touching /var/run/docker.sock would socket-activate dockerd again
//! in the middle of a copy.

use std::path::Path;

use super::command::{CommandRunner, SystemRunner, display};
use super::error::{Result, ServiceError};
use super::wait::Timing;
use super::{ServiceKind, ServiceManager};
use crate::docker::api::DockerApi;
use crate::progress::Progress;

/// The units dockroot stops, in stop order, and starts again (socket first,
/// so the service's socket activation works). With the containerd image
/// store, containerd.service is stopped after them and started before them
/// ([`super::engine::WholeEngine`]).
pub(crate) const UNITS: [&str; 2] = ["docker.socket", "docker.service"];

/// Docker managed by systemd units.
pub(crate) struct Systemd<R: CommandRunner = SystemRunner> {
    runner: R,
    api: DockerApi,
    timing: Timing,
}

impl Systemd<SystemRunner> {
    /// Uses the real `systemctl`.
    pub fn new(api: DockerApi, timing: Timing) -> Self {
        Self::with_runner(SystemRunner, api, timing)
    }
}

impl<R: CommandRunner> Systemd<R> {
    /// Uses a given command runner (tests script it).
    pub(crate) fn with_runner(runner: R, api: DockerApi, timing: Timing) -> Self {
        Self { runner, api, timing }
    }

    /// Runs `systemctl args…`, which must succeed, and reports it to `log`.
    /// The `is-active` polls are not reported: they change nothing.
    fn systemctl(&self, log: &dyn Progress, args: &[&str]) -> Result<()> {
        log.log(&format!("run: {}", display("systemctl", args)));
        self.runner.run_ok("systemctl", args).map(drop)
    }

    /// Clears the failed state and start-rate counter of every unit. A unit
    /// that is not failed makes this a no-op; its failure is not an error
    /// (the start that follows reports what matters).
    fn reset_failed(&self, log: &dyn Progress) {
        let mut args = vec!["reset-failed"];
        args.extend(UNITS);
        let _ = self.systemctl(log, &args);
    }

    /// The `is-active` state of each unit, in [`UNITS`] order.
    fn states(&self) -> Result<Vec<String>> {
        let out = self.runner.run("systemctl", &["is-active", UNITS[0], UNITS[1]])?;
        Ok(parse_is_active(&out.stdout))
    }
}

/// Makes systemd read a changed drop-in (only for drop-ins under systemd's
/// own directories on a host that runs systemd).
pub(crate) fn daemon_reload(dropin: &Path) {
    if Path::new("/run/systemd/system").is_dir() && dropin.starts_with("/etc/systemd") {
        let _ = std::process::Command::new("systemctl").arg("daemon-reload").status();
    }
}

/// One state per line of `systemctl is-active` output.
pub(crate) fn parse_is_active(stdout: &str) -> Vec<String> {
    stdout.lines().map(str::trim).filter(|l| !l.is_empty()).map(String::from).collect()
}

/// Whether every state means "not running" (`inactive`, `failed`, `unknown`).
pub(crate) fn all_stopped(states: &[String]) -> bool {
    !states.is_empty() && states.iter().all(|s| matches!(s.as_str(), "inactive" | "failed" | "unknown"))
}

impl<R: CommandRunner> ServiceManager for Systemd<R> {
    fn name(&self) -> String {
        "systemd".into()
    }

    fn stop(&self, log: &dyn Progress) -> Result<()> {
        self.systemctl(log, &["stop", UNITS[0], UNITS[1]])?;
        let (mut last, mut failed) = (Vec::new(), None);
        let ok = self.timing.wait_until(|| match self.states() {
            Ok(s) => {
                last = s;
                all_stopped(&last)
            }
            Err(e) => {
                failed = Some(e);
                true
            }
        });
        match failed {
            Some(e) => return Err(e),
            None if ok => return Ok(()),
            None => {}
        }
        let state = UNITS.iter().zip(&last).map(|(u, s)| format!("{u}={s}")).collect::<Vec<_>>().join(", ");
        Err(ServiceError::StopTimeout { what: UNITS.join(" and "), secs: self.timing.secs(), state })
    }

    /// Starts both units and waits for /_ping. A failed first start is
    /// retried once: docker.service has `Restart=on-failure`, and a dockerd
    /// that trips over a leftover of its predecessor (a containerd
    /// reconnect, a lock) usually comes up on the next try. Docker must not
    /// be left down after dockroot stopped it.
    ///
    /// Every start, the retry and an undo's start clear systemd's start
    /// limit first (`reset-failed` on every unit): a restore that fails
    /// starts the units up to three times, and the default limit of 5 starts
    /// in 10 s would otherwise leave docker.socket `failed` and Docker down
    /// after a second failure in a row.
    fn start(&self, log: &dyn Progress) -> Result<()> {
        self.reset_failed(log);
        self.systemctl(log, &["start", UNITS[0]])?;
        let mut failure = self.systemctl(log, &["start", UNITS[1]]).err();
        let mut retried = false;
        let up = self.timing.wait_until(|| {
            if self.api.ping() {
                return true;
            }
            let failed = matches!(self.states().ok().as_deref(), Some([_, s]) if s == "failed" || s == "inactive");
            if failure.is_some() && failed && !retried {
                retried = true;
                self.reset_failed(log);
                failure = self.systemctl(log, &["start", UNITS[1]]).err();
            }
            // Only an unrecoverable failed state ends the wait early.
            failed && retried && failure.is_some()
        });
        if up && self.api.ping() {
            return Ok(());
        }
        let journal = self
            .runner
            .run("journalctl", &["-u", UNITS[1], "-n", "15", "--no-pager", "-o", "short-iso"])
            .map(|o| o.stdout)
            .unwrap_or_default();
        match failure {
            Some(e) => Err(ServiceError::StartFailed { unit: UNITS[1].into(), reason: e.to_string(), journal }),
            None => Err(ServiceError::StartTimeout {
                what: UNITS[1].into(),
                socket: self.api.socket.clone(),
                secs: self.timing.secs(),
                log: None,
            }),
        }
    }

    fn kind(&self) -> ServiceKind {
        ServiceKind::Systemd
    }

    fn is_running(&self) -> Result<bool> {
        Ok(!all_stopped(&self.states()?))
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::progress::Silent;
    use crate::service::command::CmdOutput;
    use std::sync::Mutex;
    use std::time::Duration;

    /// Replies to commands from a script and records them.
    #[derive(Default)]
    pub(crate) struct FakeRunner {
        pub calls: Mutex<Vec<String>>,
        pub replies: Mutex<Vec<(String, CmdOutput)>>,
    }

    impl FakeRunner {
        pub(crate) fn reply(&self, prefix: &str, code: i32, stdout: &str) {
            let out = CmdOutput { code: Some(code), stdout: stdout.into(), stderr: "boom".into() };
            self.replies.lock().unwrap().push((prefix.into(), out));
        }
    }

    impl CommandRunner for FakeRunner {
        fn run(&self, program: &str, args: &[&str]) -> Result<CmdOutput> {
            let cmd = crate::service::command::display(program, args);
            self.calls.lock().unwrap().push(cmd.clone());
            let mut r = self.replies.lock().unwrap();
            let i = r.iter().position(|(p, _)| cmd.starts_with(p.as_str()));
            Ok(match i {
                // The last reply for a prefix is sticky so polling loops keep getting it.
                Some(i) if r.iter().filter(|(p, _)| cmd.starts_with(p.as_str())).count() == 1 => r[i].1.clone(),
                Some(i) => r.remove(i).1,
                None => CmdOutput { code: Some(0), ..Default::default() },
            })
        }
    }

    /// Keeps the detail lines a manager reports.
    #[derive(Default)]
    struct Log(Mutex<Vec<String>>);

    impl Progress for Log {
        fn log(&self, msg: &str) {
            self.0.lock().unwrap().push(msg.into());
        }
    }

    pub(crate) fn fast() -> Timing {
        Timing { timeout: Duration::from_millis(300), poll: Duration::from_millis(10) }
    }

    #[test]
    fn stop_waits_for_both_units() {
        let r = FakeRunner::default();
        r.reply("systemctl is-active", 0, "active\ndeactivating\n");
        r.reply("systemctl is-active", 3, "inactive\ninactive\n");
        let s = Systemd::with_runner(r, DockerApi::new("/nonexistent.sock"), fast());
        let log = Log::default();
        s.stop(&log).unwrap();
        let calls = s.runner.calls.lock().unwrap().clone();
        assert_eq!(calls[0], "systemctl stop docker.socket docker.service");
        assert_eq!(calls.len(), 3);
        // -v shows the command that changed something, not the polls.
        assert_eq!(*log.0.lock().unwrap(), ["run: systemctl stop docker.socket docker.service"]);
        assert!(!s.is_running().unwrap());
    }

    #[test]
    fn stop_timeout_names_states() {
        let r = FakeRunner::default();
        r.reply("systemctl is-active", 0, "inactive\nactive\n");
        let s = Systemd::with_runner(r, DockerApi::new("/nonexistent.sock"), fast());
        let e = s.stop(&Silent).unwrap_err().to_string();
        assert!(e.contains("docker.service=active") && e.contains("journalctl"), "{e}");
    }

    #[test]
    fn start_order_and_failure() {
        let r = FakeRunner::default();
        let s = Systemd::with_runner(r, DockerApi::new("/nonexistent.sock"), fast());
        let e = s.start(&Silent).unwrap_err();
        assert!(matches!(e, ServiceError::StartTimeout { .. }), "{e}");
        let calls = s.runner.calls.lock().unwrap().clone();
        assert_eq!(
            calls[..3],
            ["systemctl reset-failed docker.socket docker.service", "systemctl start docker.socket", "systemctl start docker.service"]
        );
        let r = FakeRunner::default();
        r.reply("systemctl stop", 1, "");
        let s = Systemd::with_runner(r, DockerApi::new("/x.sock"), fast());
        assert!(matches!(s.stop(&Silent), Err(ServiceError::CommandFailed { .. })));
    }

    #[test]
    fn failed_start_is_retried_once_then_reported_with_the_journal() {
        let r = FakeRunner::default();
        r.reply("systemctl start docker.service", 1, "");
        r.reply("systemctl is-active", 3, "active\nfailed\n");
        r.reply("journalctl", 0, "dockerd[9]: failed to start daemon: boom\n");
        let s = Systemd::with_runner(r, DockerApi::new("/nonexistent.sock"), fast());
        let e = s.start(&Silent).unwrap_err();
        let calls = s.runner.calls.lock().unwrap().clone();
        assert_eq!(calls.iter().filter(|c| *c == "systemctl start docker.service").count(), 2, "{calls:?}");
        let resets = calls.iter().filter(|c| *c == "systemctl reset-failed docker.socket docker.service").count();
        assert_eq!(resets, 2, "reset before the start and before the retry: {calls:?}");
        let msg = e.to_string();
        assert!(matches!(e, ServiceError::StartFailed { .. }) && msg.contains("| dockerd[9]: failed to start daemon: boom"), "{msg}");
        assert!(msg.contains("systemctl start docker.service"), "{msg}");
    }

    #[test]
    fn parses_is_active() {
        let s = parse_is_active("inactive\n\nfailed\n");
        assert!(all_stopped(&s));
        assert!(!all_stopped(&parse_is_active("inactive\nactivating\n")));
        assert!(!all_stopped(&[]));
    }
}
