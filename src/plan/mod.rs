//! The plans: every operation that changes the host, as journaled steps.
//!
//! - [`core`]: the safety core every operation shares: the journal and its
//!   intents, the step runner, undo (`rollback`), signals, the stopped-Docker
//!   window, the health check, the plan error.
//! - [`r#move`]: relocating the data-root: preflight (the dry run), pre-copy,
//!   switch, containerd's root, finalize, resume.
//! - [`backup`]: writing an archive: output naming and pruning, live two-phase,
//!   snapshot, extra stores.
//! - [`restore`]: putting an archive back.
//! - [`status`]: what a move or backup would have to deal with.
//! - [`env`]: the host as the plan sees it.

pub mod backup;
pub mod core;
pub mod env;
pub mod r#move;
pub mod restore;
pub mod status;

pub use self::core::error::{PlanError, Result};
pub use self::core::journal::{Method, StateDir};
pub use env::{DEFAULT_DROPIN, Env};
pub use r#move::preflight::{MovePlan, MoveRequest, PlannedStep, preflight};
