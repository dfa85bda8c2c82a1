//! Everything dockroot needs to know about the Docker engine itself: where its
//! data-root lives and why (`discover`), how to change that durably
//! (`daemon_json`, `fstab`, written through `crate::util::atomic`), what the running daemon holds (`api`,
//! `snapshot`) and facts about the host that change how a move must be done
//! (`facts`, `mountinfo`), and the engine's state outside the data-root: the
//! image store and the containerd serving Docker (`engine`, `containerd`). Nothing here starts or stops the daemon; that is
//! `crate::service`.

pub mod api;
pub mod containerd;
pub mod containerd_config;
pub mod daemon_json;
pub mod discover;
pub mod engine;
pub mod error;
pub mod facts;
pub mod fstab;
pub mod http;
pub mod id;
pub mod layout;
pub mod mountinfo;
pub mod mounts;
pub mod rootless;
pub mod snapshot;
pub mod socket;
pub mod unit;
pub mod userns;
pub mod volumes;

pub use error::DockerError;

/// The data-root Docker uses when nothing configures another one.
pub const DEFAULT_DATA_ROOT: &str = "/var/lib/docker";
/// The daemon configuration file Docker reads by default.
pub(crate) const DEFAULT_DAEMON_JSON: &str = "/etc/docker/daemon.json";
