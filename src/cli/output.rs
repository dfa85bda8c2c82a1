//! How results reach the user: human lines on stderr/stdout, or one JSON
//! document on stdout with --json.

use super::Global;

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
            println!("{line}");
        }
    }

    /// A problem line, always on stderr (also with --quiet).
    pub fn problem(&self, line: &str) {
        eprintln!("dockroot: {line}");
    }

    /// The command's JSON report, with what the hooks did.
    pub fn json(&self, v: &serde_json::Value) {
        let mut v = v.clone();
        let runs = dockroot::service::hooks::installed().runs();
        if let (false, Some(o)) = (runs.is_empty(), v.as_object_mut()) {
            o.insert("hooks".into(), serde_json::to_value(runs).unwrap_or_default());
        }
        if self.json {
            println!("{}", serde_json::to_string_pretty(&v).unwrap_or_default());
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
