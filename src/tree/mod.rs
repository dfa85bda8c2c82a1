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
pub mod scan;
pub mod split;
pub mod walk;

pub use node::{DirNode, Item};
pub use walk::{Entered, Outcome, Visitor, WalkOptions, WalkStats, walk};
