//! dockroot's integration tests: one binary, real filesystems, real tools.
//! They run as root (CI does); a non-root run fails loudly instead of
//! skipping.

mod archive;
mod backup;
mod bind_restore;
mod binds;
mod docker_service;
mod engine;
mod engine_move;
mod engine_store;
mod layouts;
mod live;
mod modern_engine;
mod output;
mod plan;
mod rootless;
mod ship;
mod status;
mod systemd_host;
mod systemd_move;
mod systemd_restore;
mod util;
