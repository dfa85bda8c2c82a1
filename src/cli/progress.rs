//! Progress renderers: an indicatif bar on a TTY, a log line every few seconds
//! otherwise, nothing with --quiet. With -v every renderer also prints each
//! phase's time and throughput when it ends and the engine's detail lines;
//! with --json those go to stderr, so stdout stays one JSON document.

use std::io::IsTerminal;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

use dockroot::progress::Progress;

use super::output::err_line;

/// Picks the renderer. `estimate` (entries, bytes) is called only for a bar,
/// which uses it as the total for its ETA. It runs on a thread of its own
/// while the work starts: on a large tree with a cold cache, measuring first
/// would hold everything up for as long as a walk takes. --quiet wins over -v.
pub fn make(quiet: bool, json: bool, verbose: bool, estimate: impl FnOnce() -> Option<(u64, u64)> + Send + 'static) -> Box<dyn Progress> {
    if quiet || (json && !verbose) {
        Box::new(Quiet)
    } else if json {
        Box::new(Lines::new(false, true))
    } else if std::io::stderr().is_terminal() {
        let bar = Bar::new(verbose);
        let (pb, preset) = (bar.bar.clone(), bar.preset.clone());
        std::thread::spawn(move || {
            if let Some(total) = estimate() {
                let mut p = preset.lock().unwrap();
                p.total = Some(total);
                if p.waiting {
                    // The running phase has no total of its own: give it this one.
                    p.waiting = false;
                    Bar::show_total(&pb, total);
                }
            }
        });
        Box::new(bar)
    } else {
        Box::new(Lines::new(true, verbose))
    }
}

struct Quiet;
impl Progress for Quiet {
    fn warn(&self, msg: &str) {
        err_line(&format!("dockroot: warning: {msg}"));
    }
}

/// What a phase did, measured from its start.
struct Summary {
    phase: String,
    entries: u64,
    bytes: u64,
    secs: f64,
}

impl Summary {
    /// The short line of a non-verbose log.
    fn brief(&self) -> String {
        if self.entries == 0 {
            // A step that is not a walk (stop, mount, start…): just its time.
            return format!("dockroot: {}: done in {:.1}s", self.phase, self.secs);
        }
        format!(
            "dockroot: {}: {} entries, {} ({}/s), {:.1}s",
            self.phase,
            self.entries,
            indicatif::HumanBytes(self.bytes),
            indicatif::HumanBytes((self.bytes as f64 / self.secs) as u64),
            self.secs
        )
    }

    /// The -v line: exact counts, so runs can be compared.
    fn detail(&self) -> String {
        if self.entries == 0 && self.bytes == 0 {
            return format!("dockroot: {}: done in {:.3}s", self.phase, self.secs);
        }
        format!(
            "dockroot: {}: done in {:.3}s: {} entries, {} bytes, {:.1} MB/s",
            self.phase,
            self.secs,
            self.entries,
            self.bytes,
            self.bytes as f64 / self.secs / 1e6
        )
    }
}

/// The running phase and its counts, shared by the renderers.
struct Tally {
    /// (phase, its start, finished already)
    state: Mutex<(String, Instant, bool)>,
    entries: AtomicU64,
    bytes: AtomicU64,
}

impl Tally {
    fn new() -> Tally {
        Tally { state: Mutex::new((String::new(), Instant::now(), true)), entries: AtomicU64::new(0), bytes: AtomicU64::new(0) }
    }

    fn start(&self, name: &str) {
        *self.state.lock().unwrap() = (name.to_string(), Instant::now(), false);
        self.entries.store(0, Ordering::Relaxed);
        self.bytes.store(0, Ordering::Relaxed);
    }

    /// Adds to the counts; returns the entries so far.
    fn add(&self, entries: u64, bytes: u64) -> u64 {
        self.bytes.fetch_add(bytes, Ordering::Relaxed);
        self.entries.fetch_add(entries, Ordering::Relaxed) + entries
    }

    fn summary(&self) -> Summary {
        let s = self.state.lock().unwrap();
        Summary {
            phase: s.0.clone(),
            entries: self.entries.load(Ordering::Relaxed),
            bytes: self.bytes.load(Ordering::Relaxed),
            secs: s.1.elapsed().as_secs_f64().max(0.001),
        }
    }

    /// Ends the phase. `None` if it had ended already: nested phases (a plan
    /// step that runs a copy) finish twice and must print one line.
    fn end(&self) -> Option<Summary> {
        let done = std::mem::replace(&mut self.state.lock().unwrap().2, true);
        (!done).then(|| self.summary())
    }
}

/// The estimated size of the tree, for phases that report no total; it
/// arrives from a thread some time after the first phase started.
#[derive(Default)]
struct Preset {
    total: Option<(u64, u64)>,
    /// The running phase has no total and waits for this one.
    waiting: bool,
}

struct Bar {
    bar: ProgressBar,
    tally: Tally,
    preset: std::sync::Arc<Mutex<Preset>>,
    verbose: bool,
}

const WITH_TOTAL: &str = "{prefix:>8} [{elapsed_precise}] {wide_bar} {bytes}/{total_bytes} {binary_bytes_per_sec} eta {eta} {msg}";
const WITHOUT_TOTAL: &str = "{prefix:>8} [{elapsed_precise}] {spinner} {bytes} {binary_bytes_per_sec} {msg}";

impl Bar {
    fn new(verbose: bool) -> Bar {
        let bar = ProgressBar::with_draw_target(None, ProgressDrawTarget::stderr_with_hz(8));
        Bar { bar, tally: Tally::new(), preset: Default::default(), verbose }
    }

    fn show_total(bar: &ProgressBar, (_, bytes): (u64, u64)) {
        bar.set_style(ProgressStyle::with_template(WITH_TOTAL).unwrap());
        bar.set_length(bytes);
    }

    /// Prints a line above the bar. Between phases the bar is cleared, and
    /// `suspend` would draw it again below the line.
    fn print(&self, line: &str) {
        if self.bar.is_finished() {
            err_line(line);
        } else {
            self.bar.suspend(|| err_line(line));
        }
    }
}

impl Progress for Bar {
    fn phase(&self, name: &str, total: Option<(u64, u64)>) {
        self.tally.start(name);
        // Prefix and style first: each setter may redraw the bar.
        self.bar.set_prefix(name.to_string());
        let mut preset = self.preset.lock().unwrap();
        let total = total.or(preset.total);
        preset.waiting = total.is_none();
        let style = if total.is_some() { WITH_TOTAL } else { WITHOUT_TOTAL };
        self.bar.set_style(ProgressStyle::with_template(style).unwrap());
        self.bar.reset();
        if let Some((_, bytes)) = total {
            self.bar.set_length(bytes);
        }
        drop(preset);
        self.bar.enable_steady_tick(Duration::from_millis(200));
    }

    fn advance(&self, entries: u64, bytes: u64) {
        let n = self.tally.add(entries, bytes);
        self.bar.inc(bytes);
        if n.is_multiple_of(256) {
            self.bar.set_message(format!("{n} entries"));
        }
    }

    fn warn(&self, msg: &str) {
        self.print(&format!("dockroot: warning: {msg}"));
    }

    fn log(&self, msg: &str) {
        if self.verbose {
            self.print(&format!("dockroot: {msg}"));
        }
    }

    fn finish(&self) {
        // A late estimate must not draw the cleared bar again.
        self.preset.lock().unwrap().waiting = false;
        self.bar.finish_and_clear();
        if let Some(s) = self.tally.end()
            && self.verbose
        {
            err_line(&s.detail());
        }
    }
}

/// One-line progress for logs (non-TTY stderr): every few seconds when
/// `periodic`, and once when a phase ends.
struct Lines {
    tally: Tally,
    /// When the last periodic line was printed.
    last: Mutex<Instant>,
    periodic: bool,
    verbose: bool,
}

impl Lines {
    fn new(periodic: bool, verbose: bool) -> Lines {
        Lines { tally: Tally::new(), last: Mutex::new(Instant::now()), periodic, verbose }
    }
}

impl Progress for Lines {
    fn phase(&self, name: &str, _total: Option<(u64, u64)>) {
        self.tally.start(name);
        *self.last.lock().unwrap() = Instant::now();
    }

    fn advance(&self, entries: u64, bytes: u64) {
        self.tally.add(entries, bytes);
        if !self.periodic {
            return;
        }
        let mut last = self.last.lock().unwrap();
        if last.elapsed() >= Duration::from_secs(5) {
            *last = Instant::now();
            err_line(&self.tally.summary().brief());
        }
    }

    fn warn(&self, msg: &str) {
        err_line(&format!("dockroot: warning: {msg}"));
    }

    fn log(&self, msg: &str) {
        if self.verbose {
            err_line(&format!("dockroot: {msg}"));
        }
    }

    fn finish(&self) {
        if let Some(s) = self.tally.end() {
            err_line(&if self.verbose { s.detail() } else { s.brief() });
        }
    }
}
