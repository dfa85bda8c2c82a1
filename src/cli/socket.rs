//! Fills [`SocketInputs`] from this host (options, environment, /proc) and
//! builds the API client on the socket it names.

use std::path::{Path, PathBuf};

use dockroot::docker::api::DockerApi;
use dockroot::docker::socket::{self, DockerSocket, SocketInputs};
use dockroot::docker::{DEFAULT_DATA_ROOT, unit};
use dockroot::service::procscan;

use super::Global;
use super::service_arg::ServiceArg;

/// The socket to use, and why (see `dockroot::docker::socket`).
pub fn discover(g: &Global) -> DockerSocket {
    let env = |k: &str| std::env::var(k).ok().filter(|v| !v.is_empty());
    let docker_host = env("DOCKER_HOST");
    let decided = g.docker_socket.is_some() || docker_host.as_deref().and_then(socket::unix_path).is_some();
    let inputs = SocketInputs {
        flag: g.docker_socket.clone(),
        docker_host,
        // /proc is only scanned when the first two sources did not decide.
        daemon: if decided { None } else { running_daemon(g, Path::new("/proc")) },
        daemon_json: g.daemon_json(),
        unit_dirs: unit::UNIT_DIRS.iter().map(PathBuf::from).collect(),
        cli_config: env("DOCKER_CONFIG").map(PathBuf::from).or_else(|| env("HOME").map(|h| Path::new(&h).join(".docker"))),
        docker_context: env("DOCKER_CONTEXT"),
    };
    socket::resolve(&inputs)
}

/// The client for [`discover`]'s socket.
pub fn api(g: &Global) -> DockerApi {
    DockerApi::new(discover(g).path)
}

/// The dockerd this invocation is about: the one in `--service pidfile:PATH`;
/// else the one using `--data-root`; else the only dockerd; else the one on
/// the default data-root. Daemons in other mount namespaces (containers,
/// nspawn guests) are ignored: their socket paths are not ours.
fn running_daemon(g: &Global, proc_root: &Path) -> Option<(u32, Vec<String>)> {
    if let ServiceArg::Pidfile(p) = &g.service {
        let pid: u32 = std::fs::read_to_string(p).ok()?.trim().parse().ok()?;
        return Some((pid, procscan::read_cmdline(proc_root, pid).ok()?));
    }
    let ns = |pid: &str| std::fs::read_link(proc_root.join(pid).join("ns/mnt")).ok();
    let own = ns("self");
    let all: Vec<_> = procscan::pids(proc_root)
        .into_iter()
        .filter_map(|pid| procscan::process(proc_root, pid))
        .filter(|p| procscan::is_dockerd(&p.argv) && procscan::alive(proc_root, p.pid) && ns(&p.pid.to_string()) == own)
        .collect();
    let uses = |p: &procscan::ProcInfo, dr: &Path| {
        procscan::normalize(&procscan::running_data_root(proc_root, p.pid, &p.argv)) == procscan::normalize(dr)
    };
    let chosen: Vec<_> = match &g.data_root {
        Some(dr) => all.iter().filter(|p| uses(p, dr)).collect(),
        None if all.len() == 1 => all.iter().collect(),
        None => all.iter().filter(|p| uses(p, Path::new(DEFAULT_DATA_ROOT))).collect(),
    };
    match chosen[..] {
        [p] => Some((p.pid, p.argv.clone())),
        _ => None,
    }
}
