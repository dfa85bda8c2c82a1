//! `--metrics-file`: node-exporter textfile metrics, so Prometheus can alert
//! when the last good backup is older than a day. One file holds every
//! operation's samples (label `operation`); a run replaces only its own
//! operation's, keeps the others, and keeps its own last success time when
//! it failed. The file is replaced atomically: node-exporter never reads a
//! torn file.

use std::collections::BTreeMap;
use std::path::Path;

use super::atomic::{self, WriteError};

/// The metrics of one run of one operation.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct RunMetrics {
    /// `backup`, `move`, `restore`, …
    pub operation: String,
    pub exit_code: i32,
    /// Unix time of the end of the run.
    pub finished: f64,
    pub duration_seconds: f64,
    pub downtime_seconds: Option<f64>,
    pub bytes: Option<u64>,
    pub entries: Option<u64>,
    pub raced_entries: Option<u64>,
}

/// Name, help and whether the sample is kept from earlier runs when this one has none.
const FAMILIES: &[(&str, &str)] = &[
    ("dockroot_last_success_timestamp_seconds", "Unix time of the last run that exited 0."),
    ("dockroot_last_run_timestamp_seconds", "Unix time of the end of the last run."),
    ("dockroot_last_exit_code", "Exit code of the last run (0 success, 2 refused, 3 failed and undone, 4 undo failed)."),
    ("dockroot_duration_seconds", "Wall time of the last run."),
    ("dockroot_downtime_seconds", "Time Docker was stopped in the last run."),
    ("dockroot_bytes", "File bytes the last run copied or archived."),
    ("dockroot_entries", "Entries the last run copied or archived."),
    ("dockroot_raced_entries", "Entries that changed while the last run read them (archived again with Docker stopped)."),
];

/// Samples by family, then by operation.
type Samples = BTreeMap<String, BTreeMap<String, String>>;

/// Reads the samples of an earlier file; lines it does not understand are dropped.
fn parse(text: &str) -> Samples {
    let mut s = Samples::new();
    for line in text.lines().filter(|l| !l.starts_with('#')) {
        let Some((name, rest)) = line.split_once("{operation=\"") else { continue };
        let Some((op, value)) = rest.split_once("\"} ") else { continue };
        if FAMILIES.iter().any(|(f, _)| *f == name) && value.trim().parse::<f64>().is_ok() {
            s.entry(name.to_string()).or_default().insert(op.to_string(), value.trim().to_string());
        }
    }
    s
}

/// The new file's text: `old` with `run`'s operation's samples replaced.
pub fn render(old: &str, run: &RunMetrics) -> String {
    let mut s = parse(old);
    let op = escape_label(&run.operation);
    let mut set = |name: &str, v: Option<String>| {
        let fam = s.entry(name.to_string()).or_default();
        match v {
            Some(v) => {
                fam.insert(op.clone(), v);
            }
            None => {
                fam.remove(&op);
            }
        }
    };
    if run.exit_code == 0 {
        set("dockroot_last_success_timestamp_seconds", Some(format!("{:.3}", run.finished)));
    }
    set("dockroot_last_run_timestamp_seconds", Some(format!("{:.3}", run.finished)));
    set("dockroot_last_exit_code", Some(run.exit_code.to_string()));
    set("dockroot_duration_seconds", Some(format!("{:.3}", run.duration_seconds)));
    set("dockroot_downtime_seconds", run.downtime_seconds.map(|d| format!("{d:.3}")));
    set("dockroot_bytes", run.bytes.map(|b| b.to_string()));
    set("dockroot_entries", run.entries.map(|e| e.to_string()));
    set("dockroot_raced_entries", run.raced_entries.map(|e| e.to_string()));
    let mut out = String::new();
    for (name, help) in FAMILIES {
        let Some(fam) = s.get(*name).filter(|f| !f.is_empty()) else { continue };
        out.push_str(&format!("# HELP {name} {help}\n# TYPE {name} gauge\n"));
        for (op, v) in fam {
            out.push_str(&format!("{name}{{operation=\"{op}\"}} {v}\n"));
        }
    }
    out
}

/// Label values escape `\`, `"` and newlines (Prometheus text format).
fn escape_label(s: &str) -> String {
    s.replace('\\', "\\\\").replace('"', "\\\"").replace('\n', "\\n")
}

/// Merges `run` into the file at `path` (created if missing), atomically, mode 0644.
pub fn write(path: &Path, run: &RunMetrics) -> Result<(), WriteError> {
    let old = std::fs::read_to_string(path).unwrap_or_default();
    atomic::write_atomic(path, render(&old, run).as_bytes(), 0o644)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(op: &str, code: i32, t: f64) -> RunMetrics {
        RunMetrics {
            operation: op.into(),
            exit_code: code,
            finished: t,
            duration_seconds: 2.5,
            downtime_seconds: Some(0.75),
            bytes: Some(1024),
            entries: Some(7),
            raced_entries: Some(0),
        }
    }

    #[test]
    fn a_failed_run_keeps_the_last_success_and_other_operations() {
        let a = render("", &run("backup", 0, 100.0));
        assert!(a.contains("dockroot_last_success_timestamp_seconds{operation=\"backup\"} 100.000\n"), "{a}");
        let b = render(&a, &run("move", 0, 150.0));
        let c = render(&b, &RunMetrics { bytes: None, ..run("backup", 3, 200.0) });
        assert!(c.contains("dockroot_last_success_timestamp_seconds{operation=\"backup\"} 100.000\n"), "{c}");
        assert!(c.contains("dockroot_last_success_timestamp_seconds{operation=\"move\"} 150.000\n"), "{c}");
        assert!(c.contains("dockroot_last_exit_code{operation=\"backup\"} 3\n"), "{c}");
        assert!(!c.contains("dockroot_bytes{operation=\"backup\"}"), "{c}");
        assert!(c.contains("dockroot_bytes{operation=\"move\"} 1024\n"), "{c}");
        // Each family once, with its HELP and TYPE.
        assert_eq!(c.matches("# TYPE dockroot_last_exit_code gauge").count(), 1);
    }

    #[test]
    fn garbage_in_an_old_file_is_dropped() {
        let c = render("not a metric\nfoo{operation=\"x\"} 1\ndockroot_bytes{operation=\"y\"} NaNx\n", &run("backup", 0, 1.0));
        assert!(!c.contains("not a metric") && !c.contains("foo{") && !c.contains("NaNx"), "{c}");
    }
}
