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
