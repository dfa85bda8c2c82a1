//! How results reach the user: human lines on stderr/stdout, or one JSON
//! document on stdout with --json.
//!
//! Every line goes through [`out_line`] or [`err_line`], never `println!`,
//! which panics when the write fails: a reader that closed the pipe
//! (`dockroot status | head -c1`: EPIPE) or a terminal that went away with
//! its SSH session (EIO) must not kill a run that has Docker stopped. Such
//! an error is ignored: what dockroot does never depends on whether anyone
//! still reads its messages (the exit code still tells how it ended).

use std::io::Write;

use super::Global;

/// Writes `text` to `w` and flushes it; a failure is ignored.
fn write_ignoring(mut w: impl Write, text: &[u8]) -> bool {
    w.write_all(text).and_then(|()| w.flush()).is_ok()
}

/// Writes a line to stdout (see the module's comment for why it cannot fail).
pub fn out_line(line: &str) {
    write_ignoring(std::io::stdout().lock(), format!("{line}\n").as_bytes());
}

/// Writes a line to stderr (see the module's comment for why it cannot fail).
pub fn err_line(line: &str) {
    write_ignoring(std::io::stderr().lock(), format!("{line}\n").as_bytes());
}

/// Writes text without a newline to stderr (a question before its answer).
pub fn err_text(text: &str) {
    write_ignoring(std::io::stderr().lock(), text.as_bytes());
}

/// Writes bytes to stdout (generated completion scripts).
pub fn out_bytes(bytes: &[u8]) {
    write_ignoring(std::io::stdout().lock(), bytes);
}

pub struct Output {
    pub quiet: bool,
    pub json: bool,
    /// The last JSON report, printed or not: `--metrics-file` reads its figures.
    last: std::sync::Mutex<Option<serde_json::Value>>,
}

impl Output {
    pub fn new(g: &Global) -> Output {
        Output { quiet: g.quiet, json: g.json, last: std::sync::Mutex::new(None) }
    }

    /// The last report given to [`Output::json`].
    pub fn last_report(&self) -> Option<serde_json::Value> {
        self.last.lock().ok().and_then(|l| l.clone())
    }

    /// A human-readable line of the result (suppressed by --quiet and --json).
    pub fn say(&self, line: &str) {
        if !self.quiet && !self.json {
            out_line(line);
        }
    }

    /// A problem line, always on stderr (also with --quiet).
    pub fn problem(&self, line: &str) {
        err_line(&format!("dockroot: {line}"));
    }

    /// The command's JSON report, with what the hooks did.
    pub fn json(&self, v: &serde_json::Value) {
        let mut v = v.clone();
        let runs = dockroot::service::hooks::installed().runs();
        if let (false, Some(o)) = (runs.is_empty(), v.as_object_mut()) {
            o.insert("hooks".into(), serde_json::to_value(runs).unwrap_or_default());
        }
        if self.json {
            out_line(&serde_json::to_string_pretty(&v).unwrap_or_default());
        }
        if let Ok(mut l) = self.last.lock() {
            *l = Some(v);
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
    use std::io::{BufRead, IsTerminal};
    if yes {
        return Ok(());
    }
    if stdin_is_data || !std::io::stdin().is_terminal() {
        return Err(format!("{question}: not confirmed; stdin is not a terminal, pass --yes to proceed"));
    }
    err_text(&format!("{question} [y/N] "));
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
    fn a_failing_writer_is_ignored() {
        struct Closed;
        impl Write for Closed {
            fn write(&mut self, _: &[u8]) -> std::io::Result<usize> {
                Err(std::io::Error::from_raw_os_error(libc::EPIPE))
            }
            fn flush(&mut self) -> std::io::Result<()> {
                Ok(())
            }
        }
        assert!(!write_ignoring(Closed, b"x\n"));
    }

    /// `println!` and friends panic on EPIPE/EIO; outside tests, output goes
    /// through this module's writers only.
    #[test]
    fn nothing_prints_with_a_panicking_macro() {
        let mut found = Vec::new();
        let src = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
        for e in walkdir::WalkDir::new(&src).into_iter().filter_map(|e| e.ok()).filter(|e| e.path().extension().is_some_and(|x| x == "rs"))
        {
            let text = std::fs::read_to_string(e.path()).unwrap();
            // Test modules may print: they come last in every file.
            let code = text.split("#[cfg(test)]\nmod tests").next().unwrap_or("");
            for (n, line) in code.lines().enumerate() {
                let l = line.trim_start();
                if !l.starts_with("//") && ["println!(", "eprintln!(", "print!(", "eprint!("].iter().any(|m| l.contains(m)) {
                    found.push(format!("{}:{}: {l}", e.path().display(), n + 1));
                }
            }
        }
        assert!(found.is_empty(), "use cli::output's writers instead:\n{}", found.join("\n"));
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
