//! The BLAKE3 manifest: a line-oriented, path-sorted text description of a
//! tree (see docs/manifest.md). It is written in one streaming pass while a
//! tree is copied or scanned, and read back as a stream to verify a tree or to
//! drive a delta copy, so a million entries never need to be held in memory.

pub mod compare;
pub mod escape;
pub mod format;
pub mod order;
pub mod reader;
pub mod subtree;
pub mod writer;

pub use compare::{Difference, Field};
pub use format::{Body, Record};
pub use reader::Reader;
pub use writer::Writer;
