//! The safety core: every system-changing step is journaled with its intent
//! before it acts ([`journal`], [`intent`], [`runner`]), so a failure, a signal
//! ([`signal`]) or a crash can be undone ([`undo`]); [`window`] is the stopped
//! Docker every consistent copy needs, [`health`] the check after it starts.

pub mod error;
pub mod health;
pub(crate) mod hooks;
pub mod intent;
pub mod journal;
pub mod runner;
pub mod signal;
pub mod undo;
pub mod window;
