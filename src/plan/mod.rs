//! TODO

pub mod archive_error;
pub mod backup;
pub mod restore;
