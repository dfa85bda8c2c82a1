//! Stopping and starting Docker under systemd. Both `docker.socket` and
//! `docker.service` must be stopped: with only the service stopped, the first
//! client touching /var/run/docker.sock would socket-activate dockerd again
//! in the middle of a copy.
//!
//! A rootless daemon (issue 19) is run by its owner's user manager, so it is
//! stopped and started the way its owner does it, through that manager:
//! `systemctl --user --machine=USER@ ...` ([`Scope::User`]). Its units are
//! those the user has: `dockerd-rootless-setuptool.sh install` writes a
//! docker.service and no socket, and systemctl refuses to stop a unit that
//! is not loaded, so the units are asked for their LoadState first.

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

/// Which systemd manager runs Docker.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Scope {
    /// The system manager (PID 1).
    System,
    /// The user manager of this user (rootless Docker).
    User(String),
}

/// Docker managed by systemd units.
pub(crate) struct Systemd<R: CommandRunner = SystemRunner> {
    runner: R,
    api: DockerApi,
    timing: Timing,
    scope: Scope,
}

impl Systemd<SystemRunner> {
    /// Uses the real `systemctl`.
    pub fn new(api: DockerApi, timing: Timing) -> Self {
        Self::with_runner(SystemRunner, api, timing)
    }

    /// The rootless Docker of `user`, through that user's manager.
    pub fn user(user: &str, api: DockerApi, timing: Timing) -> Self {
        Self { scope: Scope::User(user.into()), ..Self::new(api, timing) }
    }
}

impl<R: CommandRunner> Systemd<R> {
    /// Uses a given command runner (tests script it).
    pub(crate) fn with_runner(runner: R, api: DockerApi, timing: Timing) -> Self {
        Self { runner, api, timing, scope: Scope::System }
    }

    /// `args` with the options that select the manager in front.
    fn scoped<'a>(&'a self, machine: &'a str, args: &[&'a str]) -> Vec<&'a str> {
        let mut all = match self.scope {
            Scope::System => vec![],
            Scope::User(_) => vec!["--user", machine],
        };
        all.extend(args);
        all
    }

    /// `--machine=USER@` for a user scope.
    fn machine(&self) -> String {
        match &self.scope {
            Scope::System => String::new(),
            Scope::User(u) => format!("--machine={u}@"),
        }
    }

    /// Runs `systemctl args…` on this scope's manager; without `log`, quietly.
    fn run(&self, log: Option<&dyn Progress>, args: &[&str]) -> Result<super::command::CmdOutput> {
        let machine = self.machine();
        let all = self.scoped(&machine, args);
        if let Some(log) = log {
            log.log(&format!("run: {}", display("systemctl", &all)));
            return self.runner.run_ok("systemctl", &all);
        }
        self.runner.run("systemctl", &all)
    }

    /// Runs `systemctl args… UNITS…`, which must succeed, and reports it to
    /// `log`. The `is-active` polls are not reported: they change nothing.
    fn systemctl(&self, log: &dyn Progress, args: &[&str]) -> Result<()> {
        self.run(Some(log), args).map(drop)
    }

    /// The units to stop and start, in [`UNITS`] order: both for the system;
    /// for a user, those of the two that the user's manager has loaded.
    fn units(&self) -> Result<Vec<&'static str>> {
        if self.scope == Scope::System {
            return Ok(UNITS.to_vec());
        }
        let out = self.run(None, &["show", "-p", "LoadState", "--value", UNITS[0], UNITS[1]])?;
        let states = parse_is_active(&out.stdout);
        let units: Vec<_> = UNITS.iter().zip(&states).filter(|(_, s)| *s == "loaded").map(|(u, _)| *u).collect();
        if !out.success() || !units.contains(&UNITS[1]) {
            return Err(ServiceError::CommandFailed {
                command: display("systemctl", &self.scoped(&self.machine(), &["show", "-p", "LoadState", UNITS[1]])),
                code: out.code,
                stderr: format!("{} has no docker.service loaded ({}); {}", self.name(), states.join(", "), out.stderr.trim()),
            });
        }
        Ok(units)
    }

    /// Clears the failed state and start-rate counter of every unit. A unit
    /// that is not failed makes this a no-op; its failure is not an error
    /// (the start that follows reports what matters).
    fn reset_failed(&self, log: &dyn Progress, units: &[&str]) {
        let mut args = vec!["reset-failed"];
        args.extend(units);
        let _ = self.systemctl(log, &args);
    }

    /// The `is-active` state of each unit, in [`UNITS`] order (`inactive`
    /// for a unit the user does not have).
    fn states(&self) -> Result<Vec<String>> {
        let out = self.run(None, &["is-active", UNITS[0], UNITS[1]])?;
        Ok(parse_is_active(&out.stdout))
    }

    /// The service unit's recent log, for a failed start.
    fn journal(&self) -> String {
        let args: Vec<String> = match &self.scope {
            Scope::System => vec!["-u".into(), UNITS[1].into()],
            Scope::User(u) => vec![format!("--user-unit={}", UNITS[1]), format!("_UID={}", uid_of(u))],
        };
        let mut all: Vec<&str> = args.iter().map(String::as_str).collect();
        all.extend(["-n", "15", "--no-pager", "-o", "short-iso"]);
        self.runner.run("journalctl", &all).map(|o| o.stdout).unwrap_or_default()
    }
}

/// A user's uid from the password database, for journalctl's match; the
/// name itself when it is unknown (journalctl then matches nothing).
fn uid_of(user: &str) -> String {
    nix::unistd::User::from_name(user).ok().flatten().map_or_else(|| user.to_string(), |u| u.uid.to_string())
}

/// Makes systemd read a changed drop-in (only for drop-ins under systemd's
/// own directories on a host that runs systemd): the system manager for
/// /etc/systemd, the user's manager for a user's `~/.config/systemd/user`
/// (rootless Docker; the user is the owner of that directory).
pub(crate) fn daemon_reload(dropin: &Path) {
    if !Path::new("/run/systemd/system").is_dir() {
        return;
    }
    if dropin.starts_with("/etc/systemd") {
        let _ = std::process::Command::new("systemctl").arg("daemon-reload").status();
    } else if let Some(user) = unit_dir_owner(dropin) {
        let _ = std::process::Command::new("systemctl").args(["--user", &format!("--machine={user}@"), "daemon-reload"]).status();
    }
}

/// The owner of the `.config/systemd/user` directory above a user's drop-in.
fn unit_dir_owner(dropin: &Path) -> Option<String> {
    use std::os::unix::fs::MetadataExt;
    let dir = dropin.ancestors().find(|a| a.ends_with(".config/systemd/user"))?;
    let uid = std::fs::metadata(dir).ok()?.uid();
    nix::unistd::User::from_uid(nix::unistd::Uid::from_raw(uid)).ok().flatten().map(|u| u.name)
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
        match &self.scope {
            Scope::System => "systemd".into(),
            Scope::User(u) => format!("{u}'s user manager"),
        }
    }

    fn stop(&self, log: &dyn Progress) -> Result<()> {
        let units = self.units()?;
        let mut args = vec!["stop"];
        args.extend(&units);
        self.systemctl(log, &args)?;
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
        let units = self.units()?;
        self.reset_failed(log, &units);
        if units.contains(&UNITS[0]) {
            self.systemctl(log, &["start", UNITS[0]])?;
        }
        let mut failure = self.systemctl(log, &["start", UNITS[1]]).err();
        let mut retried = false;
        let up = self.timing.wait_until(|| {
            if self.api.ping() {
                return true;
            }
            let failed = matches!(self.states().ok().as_deref(), Some([_, s]) if s == "failed" || s == "inactive");
            if failure.is_some() && failed && !retried {
                retried = true;
                self.reset_failed(log, &units);
                failure = self.systemctl(log, &["start", UNITS[1]]).err();
            }
            // Only an unrecoverable failed state ends the wait early.
            failed && retried && failure.is_some()
        });
        if up && self.api.ping() {
            return Ok(());
        }
        let journal = self.journal();
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
        match &self.scope {
            Scope::System => ServiceKind::Systemd,
            Scope::User(u) => ServiceKind::User(u.clone()),
        }
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
    fn a_users_manager_gets_only_the_units_it_has() {
        let r = FakeRunner::default();
        r.reply("systemctl --user --machine=alice@ show", 0, "not-found\nloaded\n");
        r.reply("systemctl --user --machine=alice@ is-active", 3, "inactive\ninactive\n");
        let s = Systemd { scope: Scope::User("alice".into()), ..Systemd::with_runner(r, DockerApi::new("/nonexistent.sock"), fast()) };
        s.stop(&Silent).unwrap();
        let calls = s.runner.calls.lock().unwrap().clone();
        assert_eq!(calls[1], "systemctl --user --machine=alice@ stop docker.service", "{calls:?}");
        assert_eq!((s.name(), s.kind()), ("alice's user manager".into(), ServiceKind::User("alice".into())));
        let _ = s.start(&Silent);
        let calls = s.runner.calls.lock().unwrap().clone();
        assert!(calls.contains(&"systemctl --user --machine=alice@ start docker.service".into()), "{calls:?}");
        assert!(!calls.iter().any(|c| c.contains("start docker.socket")), "{calls:?}");
        // Without a docker.service there is nothing to stop: an error naming the manager.
        let r = FakeRunner::default();
        r.reply("systemctl --user --machine=bob@ show", 0, "not-found\nnot-found\n");
        let s = Systemd { scope: Scope::User("bob".into()), ..Systemd::with_runner(r, DockerApi::new("/nonexistent.sock"), fast()) };
        let e = s.stop(&Silent).unwrap_err().to_string();
        assert!(e.contains("bob's user manager has no docker.service"), "{e}");
    }

    #[test]
    fn parses_is_active() {
        let s = parse_is_active("inactive\n\nfailed\n");
        assert!(all_stopped(&s));
        assert!(!all_stopped(&parse_is_active("inactive\nactivating\n")));
        assert!(!all_stopped(&[]));
    }
}
