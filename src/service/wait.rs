//! Polling with a deadline: service managers return before the daemon is
//! really down or up, so every stop/start waits for an observable state.

use std::time::{Duration, Instant};

/// How long to wait and how often to look.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Timing {
    /// Give up after this long.
    pub timeout: Duration,
    /// Sleep between checks.
    pub poll: Duration,
}

impl Default for Timing {
    fn default() -> Self {
        Self { timeout: Duration::from_secs(90), poll: Duration::from_millis(200) }
    }
}

impl Timing {
    /// Calls `done` until it returns true (then `true`) or the timeout passes (`false`).
    pub fn wait_until(&self, mut done: impl FnMut() -> bool) -> bool {
        let start = Instant::now();
        loop {
            if done() {
                return true;
            }
            if start.elapsed() >= self.timeout {
                return false;
            }
            std::thread::sleep(self.poll);
        }
    }

    /// The timeout in whole seconds, for messages.
    pub(crate) fn secs(&self) -> u64 {
        self.timeout.as_secs()
    }
}
