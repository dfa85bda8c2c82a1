//! Docker's health after it starts on moved or restored data: the API
//! answers on the expected root and holds the same objects as before. Used
//! by `move`, `rollback`, `finalize` and `restore`.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use super::error::{PlanError, Result};
use super::journal::{Journal, Method};
use super::signal;
use crate::docker::api::DockerApi;
use crate::docker::snapshot::DockerState;
use crate::progress::Progress;

/// The data-root Docker must report after the move.
pub(crate) fn expected_root(j: &Journal) -> PathBuf {
    match j.method {
        Method::Bind | Method::Swap | Method::None => j.data_root.clone(),
        Method::DataRoot => j.target.clone(),
    }
}

/// Whether dockerd restarts a container that ran when it stopped.
fn restarts(policy: &str) -> bool {
    matches!(policy, "always" | "unless-stopped")
}

/// `s` with the state of containers dockerd does not restart by itself
/// blanked: such a container is down after any daemon restart, move or not.
fn comparable(s: &DockerState) -> DockerState {
    let mut s = s.clone();
    for c in s.containers.iter_mut().filter(|c| !restarts(&c.restart_policy)) {
        c.state = String::new();
    }
    s
}

/// The daemon answers, uses `expected` as its root, holds the same images,
/// containers and volumes as `before`, and containers that were running with
/// a restart policy of `always`/`unless-stopped` run again (waiting up to
/// 60 s). Running containers without such a policy are reported as warnings.
pub(crate) fn check(api: &DockerApi, expected: &Path, before: Option<&DockerState>, progress: &dyn Progress) -> Result<()> {
    let h = |msg: String| PlanError::Health { msg };
    if !api.ping() {
        return Err(h(format!("Docker does not answer on {}", api.socket.display())));
    }
    let info = api.info().map_err(PlanError::docker("health"))?;
    let canon = |p: &Path| std::fs::canonicalize(p).unwrap_or_else(|_| p.to_path_buf());
    if canon(&info.docker_root_dir) != canon(expected) {
        return Err(h(format!("Docker reports DockerRootDir {} instead of {}", info.docker_root_dir.display(), expected.display())));
    }
    let Some(before) = before else { return Ok(()) };
    for c in before.containers.iter().filter(|c| c.state == "running" && !restarts(&c.restart_policy)) {
        progress.warn(&format!(
            "container {} ({}) was running and has restart policy `{}`: dockerd does not restart it, start it with `docker start`",
            c.names.join(","),
            crate::docker::id::short(&c.id),
            c.restart_policy
        ));
    }
    let want = comparable(before);
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let now = DockerState::capture(api).map_err(PlanError::docker("health"))?;
        let diff = want.diff(&comparable(&now));
        if diff.is_empty() {
            return Ok(());
        }
        if Instant::now() >= deadline || signal::caught() {
            return Err(h(format!("Docker's objects differ from before the move: {}", diff.join("; "))));
        }
        std::thread::sleep(Duration::from_millis(500));
    }
}

/// Container states change across a restart; compare identity only.
pub(crate) fn identity(s: &DockerState) -> DockerState {
    let mut s = s.clone();
    for c in &mut s.containers {
        c.state.clear();
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn health_ignores_state_of_containers_dockerd_does_not_restart() {
        use crate::docker::snapshot::ContainerState;
        let c = |id: &str, state: &str, policy: &str| ContainerState {
            id: id.into(),
            names: vec![format!("/{id}")],
            image: "i".into(),
            state: state.into(),
            restart_policy: policy.into(),
        };
        let before = DockerState::new(vec![], vec![c("a", "running", "no"), c("b", "running", "unless-stopped")], vec![]);
        let after = DockerState::new(vec![], vec![c("a", "exited", "no"), c("b", "running", "unless-stopped")], vec![]);
        assert!(comparable(&before).diff(&comparable(&after)).is_empty());
        let down = DockerState::new(vec![], vec![c("a", "exited", "no"), c("b", "exited", "unless-stopped")], vec![]);
        assert_eq!(comparable(&before).diff(&comparable(&down)).len(), 1);
    }
}
