//! Small helpers with no place in a layer, usable from any of them.

pub mod atomic;
pub mod metrics;

/// This host's name (`localhost` when it cannot be read): archive names,
/// meta.json and restic's `--host`.
pub fn hostname() -> String {
    nix::unistd::gethostname().ok().and_then(|h| h.into_string().ok()).unwrap_or_else(|| "localhost".into())
}
pub mod display;
pub mod idmap;
