//! The safety core: every system-changing step is journaled with its intent
//! before it acts ([`journal`], [`intent`], [`runner`]), so a failure, a signal
//! ([`signal`]) or a crash can be undone ([`undo`]); [`stop`] is the one
//! journaled stop, [`window`] the stopped Docker every consistent copy needs,
//! [`health`] the check after it starts.

pub mod error;
pub mod health;
pub(crate) mod hooks;
pub mod identity;
pub mod intent;
pub mod journal;
pub mod runner;
pub mod signal;
pub(crate) mod stop;
pub mod undo;
pub mod window;
