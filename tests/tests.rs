//! dockroot's integration tests: one binary, real filesystems, real tools.
//! They run as root (CI does); a non-root run fails loudly instead of
//! skipping.

mod util;
mod engine;
mod docker_service;
mod archive;
mod backup;
