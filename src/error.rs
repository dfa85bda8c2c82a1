//! Typed errors. Every variant names the path and the step, and its message says what to do.
