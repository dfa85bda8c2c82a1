//! The tree engine: copy fidelity on real filesystems, manifest change
//! detection, delta mode, live copies, error reporting, and races with a
//! hostile writer.

mod changes;
mod delta;
mod errors;
mod fidelity;
mod race;
