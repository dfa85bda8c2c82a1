//! The user's commands around the stop: `--pre-stop` (a database dump, a
//! notification; its failure aborts before anything stops) and
//! `--post-start` (after Docker answers again). They wrap whatever manager
//! stops Docker, so every command that stops it runs them at the same two
//! points, undo and rollback included. `--on-failure` runs from the CLI,
//! after the command failed, through [`run`].
//!
//! Each hook runs as `sh -c CMD` in a process group of its own, with a
//! timeout after which the whole group is killed, and its output (the last
//! [`OUTPUT_TAIL`] bytes) and exit status are kept for the log and `--json`.

use std::io::Read;
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

use super::error::{Result, ServiceError};
use super::{ServiceKind, ServiceManager};
use crate::progress::Progress;
use crate::service::pidfile::DaemonCommand;

/// How much of a hook's output is kept.
pub const OUTPUT_TAIL: usize = 16 << 10;
/// The timeout unless `--hook-timeout` says otherwise.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(300);

/// When a hook runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum HookPoint {
    PreStop,
    PostStart,
    OnFailure,
}

impl HookPoint {
    pub fn flag(self) -> &'static str {
        match self {
            Self::PreStop => "--pre-stop",
            Self::PostStart => "--post-start",
            Self::OnFailure => "--on-failure",
        }
    }
}

/// One hook command.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Hook {
    pub point: HookPoint,
    pub command: String,
    pub timeout: Duration,
}

/// What a hook did: logged, and reported in `--json`.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct HookRun {
    pub point: HookPoint,
    pub command: String,
    /// `None` when it was killed (by its timeout or a signal).
    pub exit_code: Option<i32>,
    pub timed_out: bool,
    pub seconds: f64,
    /// The end of its stdout and stderr, interleaved as they came.
    pub output: String,
}

impl HookRun {
    pub fn ok(&self) -> bool {
        self.exit_code == Some(0)
    }

    fn describe(&self) -> String {
        match (self.timed_out, self.exit_code) {
            (true, _) => format!("killed after its timeout of {:.0}s", self.seconds),
            (false, Some(c)) => format!("exit code {c}"),
            (false, None) => "killed by a signal".into(),
        }
    }
}

/// The hooks of one invocation and what they did.
#[derive(Debug, Clone, Default)]
pub struct Hooks {
    pub pre_stop: Option<Hook>,
    pub post_start: Option<Hook>,
    runs: Arc<Mutex<Vec<HookRun>>>,
}

impl Hooks {
    pub fn new(pre_stop: Option<Hook>, post_start: Option<Hook>) -> Hooks {
        Hooks { pre_stop, post_start, runs: Arc::default() }
    }

    pub fn is_empty(&self) -> bool {
        self.pre_stop.is_none() && self.post_start.is_none()
    }

    /// Every hook run so far, in order.
    pub fn runs(&self) -> Vec<HookRun> {
        self.runs.lock().map(|r| r.clone()).unwrap_or_default()
    }

    fn record(&self, run: HookRun) {
        if let Ok(mut r) = self.runs.lock() {
            r.push(run);
        }
    }

    /// `manager` with these hooks around its stop and start (itself when there are none).
    pub fn wrap(&self, manager: Box<dyn ServiceManager>) -> Box<dyn ServiceManager> {
        if self.is_empty() { manager } else { Box::new(Hooked { inner: manager, hooks: self.clone() }) }
    }
}

/// This invocation's hooks, set once by the CLI before anything stops.
/// Process-wide like the exit code: every manager this process builds,
/// including one rebuilt from a journal for an undo, runs the same hooks.
static INSTALLED: std::sync::OnceLock<Hooks> = std::sync::OnceLock::new();

/// Sets this process's hooks (the first call wins).
pub fn install(hooks: Hooks) {
    let _ = INSTALLED.set(hooks);
}

/// This process's hooks (none unless [`install`]ed).
pub fn installed() -> Hooks {
    INSTALLED.get().cloned().unwrap_or_default()
}

/// Runs `hook` to its end or its timeout; `env` is added to its environment.
pub fn run(hook: &Hook, env: &[(String, String)], log: &dyn Progress) -> HookRun {
    use std::os::unix::process::CommandExt;
    log.log(&format!("running {} hook: {}", hook.point.flag(), hook.command));
    let start = Instant::now();
    let mut cmd = Command::new("/bin/sh");
    cmd.arg("-c").arg(&hook.command).stdin(Stdio::null()).process_group(0);
    cmd.envs(env.iter().map(|(k, v)| (k.as_str(), v.as_str())));
    // One pipe for both streams keeps their order.
    let (reader, writer) = match std::io::pipe() {
        Ok(p) => p,
        Err(e) => return failed_to_start(hook, start, e),
    };
    let (Ok(w2), w1) = (writer.try_clone(), writer) else {
        return failed_to_start(hook, start, std::io::Error::other("cannot duplicate the output pipe"));
    };
    cmd.stdout(w1).stderr(w2);
    let mut child = match cmd.spawn() {
        Ok(c) => c,
        Err(e) => return failed_to_start(hook, start, e),
    };
    // The command holds the write ends now; ours are closed with `cmd`.
    drop(cmd);
    let out = std::thread::spawn(move || {
        let mut tail = Vec::new();
        let mut buf = [0u8; 8192];
        let mut r = reader;
        while let Ok(n) = r.read(&mut buf) {
            if n == 0 {
                break;
            }
            tail.extend_from_slice(&buf[..n]);
            if tail.len() > 2 * OUTPUT_TAIL {
                tail.drain(..tail.len() - OUTPUT_TAIL);
            }
        }
        tail
    });
    let pgid = nix::unistd::Pid::from_raw(child.id() as i32);
    let mut timed_out = false;
    let status = loop {
        match child.try_wait() {
            Ok(Some(s)) => break Some(s),
            Ok(None) if start.elapsed() >= hook.timeout => {
                timed_out = true;
                let _ = nix::sys::signal::killpg(pgid, nix::sys::signal::Signal::SIGKILL);
                break child.wait().ok();
            }
            Ok(None) => std::thread::sleep(Duration::from_millis(20)),
            Err(_) => break None,
        }
    };
    // Whatever the shell left behind in its group goes with it.
    let _ = nix::sys::signal::killpg(pgid, nix::sys::signal::Signal::SIGKILL);
    let mut tail = out.join().unwrap_or_default();
    if tail.len() > OUTPUT_TAIL {
        tail.drain(..tail.len() - OUTPUT_TAIL);
    }
    let output = String::from_utf8_lossy(&tail).into_owned();
    for line in output.lines() {
        log.log(&format!("{}: {line}", hook.point.flag()));
    }
    let run = HookRun {
        point: hook.point,
        command: hook.command.clone(),
        exit_code: status.and_then(|s| s.code()),
        timed_out,
        seconds: start.elapsed().as_secs_f64(),
        output,
    };
    log.log(&format!("{} hook ended: {} in {:.1}s", hook.point.flag(), run.describe(), run.seconds));
    run
}

fn failed_to_start(hook: &Hook, start: Instant, e: std::io::Error) -> HookRun {
    HookRun {
        point: hook.point,
        command: hook.command.clone(),
        exit_code: None,
        timed_out: false,
        seconds: start.elapsed().as_secs_f64(),
        output: format!("cannot start /bin/sh: {e}"),
    }
}

/// A manager with the pre-stop and post-start hooks around it.
struct Hooked {
    inner: Box<dyn ServiceManager>,
    hooks: Hooks,
}

impl ServiceManager for Hooked {
    fn name(&self) -> String {
        self.inner.name()
    }

    fn stop(&self, log: &dyn Progress) -> Result<()> {
        if let Some(h) = &self.hooks.pre_stop {
            let run = run(h, &[("DOCKROOT_HOOK".into(), "pre-stop".into())], log);
            let failed =
                (!run.ok()).then(|| HookFailure { command: run.command.clone(), status: run.describe(), output: run.output.clone() });
            self.hooks.record(run);
            if let Some(f) = failed {
                return Err(ServiceError::PreStopFailed { command: f.command, status: f.status, output: last_lines(&f.output) });
            }
        }
        self.inner.stop(log)
    }

    fn start(&self, log: &dyn Progress) -> Result<()> {
        self.inner.start(log)?;
        if let Some(h) = &self.hooks.post_start {
            let run = run(h, &[("DOCKROOT_HOOK".into(), "post-start".into())], log);
            if !run.ok() {
                // Docker runs again: a failed notification must not turn a
                // finished step into an undo.
                log.warn(&format!("the --post-start hook `{}` failed ({}); Docker is running", run.command, run.describe()));
            }
            self.hooks.record(run);
        }
        Ok(())
    }

    fn is_running(&self) -> Result<bool> {
        self.inner.is_running()
    }

    fn kind(&self) -> ServiceKind {
        self.inner.kind()
    }

    fn recorded_command(&self) -> Option<DaemonCommand> {
        self.inner.recorded_command()
    }

    fn remember(&self) -> Result<()> {
        self.inner.remember()
    }

    fn record(&self) -> super::ServiceRecord {
        self.inner.record()
    }

    fn stores(&self) -> Vec<std::path::PathBuf> {
        self.inner.stores()
    }

    fn stop_rest(&self, log: &dyn Progress) -> Result<()> {
        self.inner.stop_rest(log)
    }
}

struct HookFailure {
    command: String,
    status: String,
    output: String,
}

/// The last few lines of a hook's output, for an error message.
fn last_lines(output: &str) -> String {
    let lines: Vec<&str> = output.trim_end().lines().collect();
    lines[lines.len().saturating_sub(5)..].join("\n  | ")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::progress::Silent;

    fn hook(point: HookPoint, command: &str, secs: u64) -> Hook {
        Hook { point, command: command.into(), timeout: Duration::from_secs(secs) }
    }

    #[test]
    fn output_status_and_environment_are_kept() {
        let r = run(&hook(HookPoint::PreStop, "echo out; echo err >&2; echo $X; exit 3", 10), &[("X".into(), "y".into())], &Silent);
        assert_eq!(r.exit_code, Some(3));
        assert!(!r.timed_out);
        assert_eq!(r.output, "out\nerr\ny\n");
    }

    #[test]
    fn a_hung_hook_is_killed_with_its_children() {
        let t = tempfile::tempdir().unwrap();
        let marker = t.path().join("late");
        let cmd = format!("(sleep 2; touch {}) & sleep 30", marker.display());
        let r = run(&hook(HookPoint::PreStop, &cmd, 1), &[], &Silent);
        assert!(r.timed_out && r.exit_code.is_none(), "{r:?}");
        assert!(r.seconds < 10.0);
        std::thread::sleep(Duration::from_millis(2500));
        assert!(!marker.exists(), "the hook's background child outlived its timeout");
    }

    /// A manager that only counts; stands in for systemd here, beside the
    /// real-daemon hook tests in tests/ship/hooks.rs.
    struct Counting(Arc<Mutex<Vec<&'static str>>>);
    impl ServiceManager for Counting {
        fn name(&self) -> String {
            "counting".into()
        }
        fn stop(&self, _: &dyn Progress) -> Result<()> {
            self.0.lock().unwrap().push("stop");
            Ok(())
        }
        fn start(&self, _: &dyn Progress) -> Result<()> {
            self.0.lock().unwrap().push("start");
            Ok(())
        }
        fn is_running(&self) -> Result<bool> {
            Ok(true)
        }
        fn kind(&self) -> ServiceKind {
            ServiceKind::None
        }
    }

    #[test]
    fn a_failing_pre_stop_stops_nothing() {
        let calls = Arc::new(Mutex::new(Vec::new()));
        let hooks =
            Hooks::new(Some(hook(HookPoint::PreStop, "echo dump failed; exit 1", 10)), Some(hook(HookPoint::PostStart, "true", 10)));
        let m = hooks.wrap(Box::new(Counting(calls.clone())));
        let e = m.stop(&Silent).unwrap_err().to_string();
        assert!(e.contains("--pre-stop") && e.contains("exit code 1") && e.contains("dump failed"), "{e}");
        assert!(calls.lock().unwrap().is_empty());
        m.start(&Silent).unwrap();
        assert_eq!(*calls.lock().unwrap(), ["start"]);
        let runs = hooks.runs();
        assert_eq!(runs.len(), 2);
        assert_eq!((runs[0].point, runs[1].point), (HookPoint::PreStop, HookPoint::PostStart));
    }
}
