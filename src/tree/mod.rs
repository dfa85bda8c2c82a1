//! The tree engine's shared machinery: the entry model handed to visitors, the
//! parallel ordered walk, hardlink tracking and metadata application.

pub mod apply;
pub mod estimate;
pub mod content;
pub mod links;
pub mod node;
pub mod scan;
pub mod walk;

pub use node::{DirNode, Item};
pub use walk::{Entered, Outcome, Visitor, WalkOptions, WalkStats, walk};
