//! Progress reporting. The engine reports to this trait and never prints; the
//! CLI chooses a progress bar, periodic log lines or JSON.

/// Receives progress from long operations. Every method has a no-op default.
pub trait Progress: Sync {
    /// A new phase begins ("copy", "verify", …), with totals when known
    /// (entries, bytes).
    fn phase(&self, _name: &str, _total: Option<(u64, u64)>) {}
    /// Entries and bytes finished since the last call.
    fn advance(&self, _entries: u64, _bytes: u64) {}
    /// Something the user should know that is not an error (a mount point
    /// skipped, an entry that changed during a live copy).
    fn warn(&self, _msg: &str) {}
    /// A detail line (a service command run, what a phase skipped), shown
    /// only with `-v`; it must not matter to a user who did not ask for it.
    fn log(&self, _msg: &str) {}
    /// The phase is over.
    fn finish(&self) {}
}

/// Reports nothing.
pub struct Silent;
impl Progress for Silent {}
