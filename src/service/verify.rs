//! Proving that Docker is really stopped before a data-root is copied or
//! moved: a service manager reporting "inactive" is not enough when
//! live-restore keeps containers (and their shims and mounts) alive.

use super::error::{Leftover, Result, ServiceError};
use super::procscan;
use crate::docker::api::DockerApi;
use crate::docker::daemon_json::DaemonJson;
use crate::docker::mountinfo;
use std::path::{Path, PathBuf};

/// Checks that no dockerd for `data_root`, no process holding files or its
/// cwd below it and no mount below it remain, on this host.
pub fn verify_stopped(data_root: &Path) -> Result<()> {
    let mounts = mountinfo::read_self()?;
    verify_stopped_in(Path::new("/proc"), &mounts, data_root)
}

/// [`verify_stopped`] for each of `paths` that exists (the data-root and
/// containerd's root): the first one still in use is the error.
pub fn verify_stopped_all(paths: &[PathBuf]) -> Result<()> {
    let mounts = mountinfo::read_self()?;
    for p in paths.iter().filter(|p| p.exists()) {
        verify_stopped_in(Path::new("/proc"), &mounts, p)?;
    }
    Ok(())
}

/// [`verify_stopped`] against a given proc root and mount table.
pub(crate) fn verify_stopped_in(proc_root: &Path, mounts: &[mountinfo::MountEntry], data_root: &Path) -> Result<()> {
    let leftovers = leftovers(proc_root, mounts, data_root);
    if leftovers.is_empty() {
        return Ok(());
    }
    Err(ServiceError::NotStopped { data_root: data_root.into(), leftovers })
}

/// Everything still using `data_root`.
pub(crate) fn leftovers(proc_root: &Path, mounts: &[mountinfo::MountEntry], data_root: &Path) -> Vec<Leftover> {
    let mut out: Vec<Leftover> =
        procscan::dockerds_using(proc_root, data_root).into_iter().map(|p| Leftover::Daemon { pid: p.pid, argv: p.argv }).collect();
    out.extend(procscan::holders_below(proc_root, data_root));
    let norm = procscan::normalize(data_root);
    let below = mountinfo::below(mounts, &norm);
    // The data-root itself may be a mount point (a bind or dedicated disk); that is expected.
    out.extend(
        below
            .into_iter()
            .filter(|m| m.mount_point != norm)
            .map(|m| Leftover::Mount { mount_point: m.mount_point.clone(), fstype: m.fstype.clone() }),
    );
    out
}

/// Refuses to go on when live-restore is enabled and containers are running:
/// stopping dockerd would leave them running on the data-root. Call it
/// before stopping. Without a reachable daemon there is nothing to check.
pub fn check_live_restore(cfg: &DaemonJson, api: &DockerApi) -> Result<()> {
    if cfg.live_restore() != Some(true) || !api.ping() {
        return Ok(());
    }
    live_restore_blocker(cfg, api.info()?.containers_running)
}

/// The pure decision behind [`check_live_restore`].
pub(crate) fn live_restore_blocker(cfg: &DaemonJson, running: u64) -> Result<()> {
    if cfg.live_restore() == Some(true) && running > 0 {
        return Err(ServiceError::LiveRestore { daemon_json: cfg.path().into(), running });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mounts_below_but_not_the_root_itself() {
        let dr = tempfile::tempdir().unwrap();
        let root = procscan::normalize(dr.path());
        let text = format!(
            "1 0 8:1 / / rw - ext4 /dev/a rw\n2 1 8:1 / {r} rw - ext4 /dev/b rw\n3 2 0:9 / {r}/overlay2/x/merged rw - overlay overlay rw\n",
            r = root.display()
        );
        let mounts = mountinfo::parse(&text);
        let empty = tempfile::tempdir().unwrap();
        let e = verify_stopped_in(empty.path(), &mounts, &root).unwrap_err();
        let msg = e.to_string();
        assert!(msg.contains("overlay mount") && msg.contains("umount"), "{msg}");
        assert!(verify_stopped_in(empty.path(), &mounts[..2], &root).is_ok());
    }

    #[test]
    fn live_restore_with_running_containers_refuses() {
        let on = DaemonJson::parse(Path::new("/etc/docker/daemon.json"), br#"{"live-restore":true}"#).unwrap();
        let off = DaemonJson::parse(Path::new("/d"), b"{}").unwrap();
        let e = live_restore_blocker(&on, 2).unwrap_err().to_string();
        assert!(e.contains("docker stop") && e.contains("/etc/docker/daemon.json"), "{e}");
        assert!(live_restore_blocker(&on, 0).is_ok());
        assert!(live_restore_blocker(&off, 5).is_ok());
    }
}
