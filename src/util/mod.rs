//! Small helpers with no place in a layer, usable from any of them.

pub mod atomic;
pub mod display;
