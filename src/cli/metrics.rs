//! After the command: the `--on-failure` hook and `--metrics-file`, both fed
//! from the exit code and the same summary that `--json` prints.

use std::time::{Instant, SystemTime, UNIX_EPOCH};

use serde_json::Value;

use super::Global;
use super::output::Output;
use dockroot::progress::Progress;
use dockroot::service::hooks::{self, HookPoint};
use dockroot::util::metrics::{self, RunMetrics};

/// The figures of a command's JSON summary that the metrics carry.
fn figures(report: Option<&Value>) -> (Option<f64>, Option<u64>, Option<u64>, Option<u64>) {
    let Some(r) = report else { return (None, None, None, None) };
    let s = r.get("summary").unwrap_or(r);
    let num = |k: &str| s.get(k).and_then(Value::as_u64);
    let raced = s.get("phases").map(|p| ["phase1", "phase2"].iter().filter_map(|ph| p[ph]["raced"].as_u64()).sum());
    let downtime = s.get("downtime_seconds").or_else(|| r.get("downtime_seconds")).and_then(Value::as_f64);
    (downtime, num("bytes"), num("entries"), raced)
}

/// Runs `--on-failure` (when the command failed) and writes `--metrics-file`.
pub fn after(g: &Global, out: &Output, operation: &str, code: i32, error: Option<&str>, started: Instant, log: &dyn Progress) {
    if code != 0
        && let Some(h) = g.hook(HookPoint::OnFailure)
    {
        let env = [
            ("DOCKROOT_HOOK".to_string(), "on-failure".to_string()),
            ("DOCKROOT_COMMAND".to_string(), operation.to_string()),
            ("DOCKROOT_EXIT_CODE".to_string(), code.to_string()),
            ("DOCKROOT_ERROR".to_string(), error.unwrap_or_default().to_string()),
        ];
        let run = hooks::run(&h, &env, log);
        if !run.ok() {
            out.problem(&format!("the --on-failure hook `{}` failed too (exit {:?})", run.command, run.exit_code));
        }
    }
    let Some(path) = &g.metrics_file else { return };
    let report = out.last_report();
    let (downtime_seconds, bytes, entries, raced_entries) = figures(report.as_ref());
    let run = RunMetrics {
        operation: operation.to_string(),
        exit_code: code,
        finished: SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_secs_f64()).unwrap_or(0.0),
        duration_seconds: started.elapsed().as_secs_f64(),
        downtime_seconds,
        bytes,
        entries,
        raced_entries,
    };
    if let Err(e) = metrics::write(path, &run) {
        out.problem(&format!("--metrics-file: {e}"));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn figures_come_from_the_summary() {
        let v = serde_json::json!({"command": "backup", "summary": {"bytes": 10, "entries": 3, "downtime_seconds": 1.5,
            "phases": {"phase1": {"raced": 2}, "phase2": {"raced": 1}}}});
        assert_eq!(figures(Some(&v)), (Some(1.5), Some(10), Some(3), Some(3)));
        assert_eq!(figures(None), (None, None, None, None));
    }
}
