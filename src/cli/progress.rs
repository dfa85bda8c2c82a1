//! Progress renderers: an indicatif bar on a TTY, a log line every few seconds
//! otherwise, nothing with --quiet or --json.

use std::io::IsTerminal;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

use dockroot::progress::Progress;

/// Picks the renderer. `estimate` (entries, bytes) is called only for a bar,
/// which uses it as the total for its ETA.
pub fn make(quiet: bool, json: bool, estimate: impl FnOnce() -> Option<(u64, u64)>) -> Box<dyn Progress> {
    if quiet || json {
        Box::new(Quiet)
    } else if std::io::stderr().is_terminal() {
        Box::new(Bar::new(estimate()))
    } else {
        Box::new(Lines::new())
    }
}

struct Quiet;
impl Progress for Quiet {
    fn warn(&self, msg: &str) {
        eprintln!("dockroot: warning: {msg}");
    }
}

struct Bar {
    bar: ProgressBar,
    entries: AtomicU64,
    /// The estimated size of the tree, for phases that report no total.
    preset: Option<(u64, u64)>,
}

impl Bar {
    fn new(preset: Option<(u64, u64)>) -> Bar {
        let bar = ProgressBar::with_draw_target(None, ProgressDrawTarget::stderr_with_hz(8));
        Bar { bar, entries: AtomicU64::new(0), preset }
    }
}

impl Progress for Bar {
    fn phase(&self, name: &str, total: Option<(u64, u64)>) {
        self.entries.store(0, Ordering::Relaxed);
        self.bar.reset();
        let style = match total.or(self.preset) {
            Some((_, bytes)) => {
                self.bar.set_length(bytes);
                "{prefix:>8} [{elapsed_precise}] {wide_bar} {bytes}/{total_bytes} {binary_bytes_per_sec} eta {eta} {msg}"
            }
            None => "{prefix:>8} [{elapsed_precise}] {spinner} {bytes} {binary_bytes_per_sec} {msg}",
        };
        self.bar.set_style(ProgressStyle::with_template(style).unwrap());
        self.bar.set_prefix(name.to_string());
        self.bar.enable_steady_tick(Duration::from_millis(200));
    }

    fn advance(&self, entries: u64, bytes: u64) {
        let n = self.entries.fetch_add(entries, Ordering::Relaxed) + entries;
        self.bar.inc(bytes);
        if n.is_multiple_of(256) {
            self.bar.set_message(format!("{n} entries"));
        }
    }

    fn warn(&self, msg: &str) {
        self.bar.suspend(|| eprintln!("dockroot: warning: {msg}"));
    }

    fn finish(&self) {
        let n = self.entries.load(Ordering::Relaxed);
        self.bar.set_message(format!("{n} entries"));
        self.bar.finish_and_clear();
    }
}

/// Periodic one-line progress for logs (non-TTY stderr).
struct Lines {
    /// (phase, its start, the last line printed, finished already)
    state: Mutex<(String, Instant, Instant, bool)>,
    entries: AtomicU64,
    bytes: AtomicU64,
}

impl Lines {
    fn new() -> Lines {
        let now = Instant::now();
        Lines { state: Mutex::new((String::new(), now, now, true)), entries: AtomicU64::new(0), bytes: AtomicU64::new(0) }
    }

    fn line(&self, phase: &str, start: Instant) {
        let (n, b) = (self.entries.load(Ordering::Relaxed), self.bytes.load(Ordering::Relaxed));
        let secs = start.elapsed().as_secs_f64().max(0.001);
        if n == 0 {
            // A step that is not a walk (stop, mount, start…): just its time.
            eprintln!("dockroot: {phase}: done in {secs:.1}s");
            return;
        }
        eprintln!(
            "dockroot: {phase}: {n} entries, {} ({}/s), {:.1}s",
            indicatif::HumanBytes(b),
            indicatif::HumanBytes((b as f64 / secs) as u64),
            secs
        );
    }
}

impl Progress for Lines {
    fn phase(&self, name: &str, _total: Option<(u64, u64)>) {
        let now = Instant::now();
        *self.state.lock().unwrap() = (name.to_string(), now, now, false);
        self.entries.store(0, Ordering::Relaxed);
        self.bytes.store(0, Ordering::Relaxed);
    }

    fn advance(&self, entries: u64, bytes: u64) {
        self.entries.fetch_add(entries, Ordering::Relaxed);
        self.bytes.fetch_add(bytes, Ordering::Relaxed);
        let mut s = self.state.lock().unwrap();
        if s.2.elapsed() >= Duration::from_secs(5) {
            s.2 = Instant::now();
            self.line(&s.0, s.1);
        }
    }

    fn warn(&self, msg: &str) {
        eprintln!("dockroot: warning: {msg}");
    }

    fn finish(&self) {
        // Nested phases (a plan step that runs a copy) finish twice: one line.
        let mut s = self.state.lock().unwrap();
        if !std::mem::replace(&mut s.3, true) {
            self.line(&s.0, s.1);
        }
    }
}
