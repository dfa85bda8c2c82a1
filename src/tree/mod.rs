//! The tree engine's shared machinery: the entry model handed to visitors, the
//! parallel ordered walk, hardlink tracking and metadata application.

pub mod apply;
pub mod content;
pub mod estimate;
pub mod hasher;
pub mod links;
pub mod node;
pub mod pool;
pub mod queue;
mod race;
pub mod remap;
pub mod scan;
pub mod split;
pub mod walk;

pub use node::{DirNode, Item};
pub use walk::{Entered, Outcome, Visitor, WalkOptions, WalkStats, walk};

/// Default worker count: the cores, plus one to overlap I/O waits.
pub fn default_threads() -> usize {
    std::thread::available_parallelism().map(|n| n.get()).unwrap_or(2) + 1
}
