//! The tree engine: copy fidelity on real filesystems, manifest change
//! detection, delta mode, live copies and error reporting.

mod changes;
mod delta;
mod errors;
mod fidelity;
