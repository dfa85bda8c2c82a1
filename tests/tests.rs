//! dockroot's integration tests: one binary, real filesystems, real tools.
//! They run as root (CI does); a non-root run fails loudly instead of
//! skipping.

mod util;
mod systemd_host;
mod engine;
mod docker_service;
mod archive;
mod backup;
mod plan;
mod systemd_move;
