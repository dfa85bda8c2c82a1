//! dockroot: back up, restore and relocate a whole Docker data-root with full fidelity.
//!
//! Layers, top to bottom (data flows one way):
//! `plan` (move/backup/restore as journaled steps) → `service`, `docker`, `copy`, `archive`,
//! `audit` (write or check a tree's manifest) → `tree` (fd-based walk, metadata application)
//! → `manifest` (the entry model: records, format, escaping, order, comparison) → `sys`
//! (raw fd-relative syscalls).
//! `util` (atomic file replacement, timestamps, terminal-safe names), `error` and `progress` are
//! leaves any layer may use. `layers.rs` holds this as a table, and its test fails on any other
//! import and on files that import each other in a cycle.
//! Nothing in the library prints; it reports through [`progress::Progress`].
//!
//! `unsafe` is allowed in `sys` only, and every block there says why it is sound.

#![deny(unsafe_code)]
#![warn(clippy::undocumented_unsafe_blocks)]

pub mod archive;
pub mod audit;
pub mod copy;
pub mod docker;
pub mod error;
#[cfg(test)]
mod layers;
pub mod manifest;
pub mod plan;
pub mod progress;
pub mod service;
#[allow(unsafe_code)]
pub mod sys;
pub mod tree;
pub mod util;
