//! `--user NAME` / `--rootful`: which daemon a command is for (issue 19).
//! With a rootless daemon chosen, the global options are filled from it —
//! its data-root, socket, daemon.json and user manager — so every command
//! below works on it unchanged; explicit options and `DOCKER_HOST` mean
//! the system daemon unless `--user` is given.

use anyhow::Result;

use dockroot::docker::rootless::{self, Choice, Host, Request, RootlessDaemon};
use dockroot::docker::{DEFAULT_DATA_ROOT, DockerError};

use super::Global;
use super::service_arg::ServiceArg;

/// What the options ask for.
fn request(g: &Global) -> Request {
    let explicit = g.data_root.is_some()
        || g.docker_socket.is_some()
        || g.daemon_config.is_some()
        || g.service != ServiceArg::Auto
        || std::env::var_os("DOCKER_HOST").is_some_and(|v| !v.is_empty());
    match (&g.user, g.rootful || explicit) {
        (Some(u), _) => Request::User(u.clone()),
        (None, true) => Request::Rootful,
        (None, false) => Request::Auto,
    }
}

/// Chooses the daemon and, for a rootless one, points the global options
/// at it. `lenient` (status) keeps the system daemon on an ambiguous host
/// instead of refusing; the caller lists the choices.
pub fn select(g: &mut Global, lenient: bool) -> Result<()> {
    let req = request(g);
    if req == Request::Rootful {
        return Ok(());
    }
    let host = Host::default();
    let unreadable = host.unreadable();
    if req == Request::Auto && !unreadable.is_empty() && !lenient {
        anyhow::bail!("{}; fix it, or choose a daemon with --user NAME or --rootful", unreadable.join("; "));
    }
    let choice = match rootless::choose(&req, rootless::rootful_present(&host), host.find_all(), &host) {
        Err(DockerError::Ambiguous { .. }) if lenient => Choice::Rootful,
        other => other?,
    };
    if let Choice::Rootless(d) = choice {
        apply(g, *d);
    }
    Ok(())
}

fn apply(g: &mut Global, d: RootlessDaemon) {
    g.data_root = Some(d.data_root.clone());
    g.docker_socket = Some(d.socket.clone());
    g.daemon_config = Some(d.daemon_json.clone());
    g.service = ServiceArg::User(d.user.clone());
    g.rootless = Some(Box::new(d));
}

/// Every rootless daemon of this host, and the users whose daemon could
/// not be read, for `status`.
pub fn all() -> (Vec<RootlessDaemon>, Vec<String>) {
    let host = Host::default();
    (host.find_all(), host.unreadable())
}

/// The choices on this host when no daemon was named and several exist.
pub fn ambiguity(g: &Global, found: &[RootlessDaemon]) -> Option<String> {
    if g.rootless.is_some() || request(g) != Request::Auto {
        return None;
    }
    let host = Host::default();
    match rootless::choose(&Request::Auto, rootless::rootful_present(&host), found.to_vec(), &host) {
        Err(e) => Some(format!("{e}; this report is of the system daemon ({DEFAULT_DATA_ROOT})")),
        Ok(_) => None,
    }
}
