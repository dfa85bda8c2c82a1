//! How results reach the user: human lines on stderr/stdout, or one JSON
//! document on stdout with --json.

use super::Global;

pub struct Output {
    pub quiet: bool,
    pub json: bool,
}

impl Output {
    pub fn new(g: &Global) -> Output {
        Output { quiet: g.quiet, json: g.json }
    }

    /// A human-readable line of the result (suppressed by --quiet and --json).
    pub fn say(&self, line: &str) {
        if !self.quiet && !self.json {
            println!("{line}");
        }
    }

    /// A problem line, always on stderr (also with --quiet).
    pub fn problem(&self, line: &str) {
        eprintln!("dockroot: {line}");
    }

    pub fn json(&self, v: &serde_json::Value) {
        if self.json {
            println!("{}", serde_json::to_string_pretty(v).unwrap_or_default());
        }
    }
}

/// Formats a byte count for people.
pub fn bytes(n: u64) -> String {
    indicatif::HumanBytes(n).to_string()
}

/// An error and its causes, each stated once. dockroot's typed errors put
/// their source's text in their own message, so a cause whose text is
/// already there is not repeated (`open X: No such file…: No such file…`).
pub fn error_text(e: &anyhow::Error) -> String {
    let mut text = String::new();
    for cause in e.chain() {
        let c = cause.to_string();
        if text.is_empty() {
            text = c;
        } else if !text.contains(&c) {
            text.push_str(": ");
            text.push_str(&c);
        }
    }
    text
}

/// Asks `question` y/N on the terminal unless `yes`; without a terminal to
/// ask on (or with the archive on stdin) only `--yes` confirms. `Err` is the
/// refusal to print (exit code 2: nothing was changed).
pub fn confirm(yes: bool, question: &str, stdin_is_data: bool) -> Result<(), String> {
    use std::io::{BufRead, IsTerminal, Write};
    if yes {
        return Ok(());
    }
    if stdin_is_data || !std::io::stdin().is_terminal() {
        return Err(format!("{question}: not confirmed; stdin is not a terminal, pass --yes to proceed"));
    }
    eprint!("{question} [y/N] ");
    let _ = std::io::stderr().flush();
    let mut line = String::new();
    let _ = std::io::stdin().lock().read_line(&mut line);
    if matches!(line.trim(), "y" | "Y" | "yes") { Ok(()) } else { Err("aborted; nothing was changed".into()) }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, thiserror::Error)]
    #[error("open source {path}: {source}")]
    struct Open {
        path: String,
        source: std::io::Error,
    }

    #[test]
    fn each_cause_is_stated_once() {
        let io = std::io::Error::from_raw_os_error(2);
        let e = anyhow::Error::new(Open { path: "/nonexistent".into(), source: io });
        assert_eq!(error_text(&e), "open source /nonexistent: No such file or directory (os error 2)");
        // A context that does not repeat its cause keeps it.
        let e = anyhow::Error::new(std::io::Error::from_raw_os_error(13)).context("create /x");
        assert_eq!(error_text(&e), "create /x: Permission denied (os error 13)");
    }
}
