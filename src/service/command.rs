//! The thin layer that runs service commands (`systemctl`, `service`,
//! `rc-service`). It is a trait so the logic around it can be unit-tested
//! with scripted outputs on hosts without systemd.

use super::error::{Result, ServiceError};
use std::os::unix::process::CommandExt;
use std::process::Command;

/// What a command printed and how it exited.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct CmdOutput {
    /// Exit code (`None` if killed by a signal).
    pub code: Option<i32>,
    /// Standard output.
    pub stdout: String,
    /// Standard error.
    pub stderr: String,
}

impl CmdOutput {
    /// Whether the command exited with 0.
    pub(crate) fn success(&self) -> bool {
        self.code == Some(0)
    }
}

/// Runs a program and captures its output.
pub(crate) trait CommandRunner: Send + Sync {
    /// Runs `program args...`; `Err` only if it could not be started.
    fn run(&self, program: &str, args: &[&str]) -> Result<CmdOutput>;

    /// Runs and requires success.
    fn run_ok(&self, program: &str, args: &[&str]) -> Result<CmdOutput> {
        let out = self.run(program, args)?;
        if !out.success() {
            return Err(ServiceError::CommandFailed {
                command: display(program, args),
                code: out.code,
                stderr: out.stderr.trim().to_string(),
            });
        }
        Ok(out)
    }
}

/// The real runner, using `std::process::Command`.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct SystemRunner;

impl CommandRunner for SystemRunner {
    fn run(&self, program: &str, args: &[&str]) -> Result<CmdOutput> {
        // A process group of its own: the ^C that the terminal sends to
        // dockroot's group must not kill the `systemctl start` of an undo.
        let out = Command::new(program)
            .args(args)
            .process_group(0)
            .output()
            .map_err(|source| ServiceError::Command { command: display(program, args), source })?;
        Ok(CmdOutput {
            code: out.status.code(),
            stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        })
    }
}

/// `program arg1 arg2` for messages.
pub fn display(program: &str, args: &[&str]) -> String {
    std::iter::once(program).chain(args.iter().copied()).collect::<Vec<_>>().join(" ")
}
