//! Says on stderr, within a second, that a terminating signal (SIGINT,
//! SIGTERM, SIGHUP) arrived and what happens now, and that later ones are
//! ignored while the undo runs. The library's handler only counts signals
//! (async-signal-safe); this thread, outside the signal context, prints.

use std::time::Duration;

use dockroot::plan::core::signal;

use super::output::err_line;

/// What a command does with a signal.
#[derive(Clone, Copy)]
pub enum OnSignal {
    /// move, restore, backup: the current step is undone.
    Undo,
    /// rollback, finalize: they are the undo, and go on to their end.
    Finish,
}

/// Starts the thread that reports signals for the rest of the run.
pub fn report(on: OnSignal) {
    std::thread::spawn(move || {
        let mut said = 0;
        loop {
            std::thread::sleep(Duration::from_millis(100));
            let Some((first, n)) = signal::received() else { continue };
            if n == said {
                continue;
            }
            if said == 0 {
                err_line(&format!("dockroot: {first} received: {}", first_message(on)));
            }
            if n > 1 {
                let last = signal::latest().unwrap_or(first);
                err_line(&format!("dockroot: {last} ignored: {}", later_message(on)));
            }
            said = n;
        }
    });
}

fn first_message(on: OnSignal) -> &'static str {
    match on {
        OnSignal::Undo => {
            "stopping: the current step ends now, what this run changed is undone and Docker is started again if dockroot stopped it; wait for it to finish"
        }
        OnSignal::Finish => {
            "going on to the end (this command is the undo, stopping it halfway would leave less than it found); wait for it to finish"
        }
    }
}

fn later_message(on: OnSignal) -> &'static str {
    match on {
        OnSignal::Undo => "the undo is running and Docker will be started again; wait for it to finish",
        OnSignal::Finish => "this command goes on to its end; wait for it to finish",
    }
}
