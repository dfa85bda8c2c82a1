//! Restore after `move --method bind` on a real systemd host (issue 8): the
//! data-root /var/lib/docker is a bind of /data/docker on a data disk, so a
//! restore must land at the bind's source and replace the bind, survive a
//! reboot (fstab brings the same source back), and `rollback` must bring
//! back the pre-restore tree and its bind.

use std::process::Command;

use dockroot::docker::api::DockerApi;
use dockroot::docker::snapshot::DockerState;

use crate::systemd_host::SystemdHost;
use crate::util::*;

fn api(host: &SystemdHost) -> DockerApi {
    DockerApi::new(format!("/proc/{}/root/run/docker.sock", host.pid))
}

/// Container states change across restarts; compare identity only.
fn identity(s: &DockerState) -> DockerState {
    let mut s = s.clone();
    for c in &mut s.containers {
        c.state.clear();
    }
    s
}

/// /var/lib/docker is a mount point that shows the directory /data/docker.
fn assert_bound(host: &SystemdHost, at: &str) {
    host.ok("mountpoint -q /var/lib/docker");
    let same = host.ok("[ \"$(stat -c %d:%i /var/lib/docker)\" = \"$(stat -c %d:%i /data/docker)\" ] && echo same || echo differs");
    assert_eq!(
        same.trim(),
        "same",
        "{at}: /var/lib/docker does not show /data/docker:\n{}",
        host.ok("findmnt /var/lib/docker; ls -la /data")
    );
}

/// The fixture's volume content, read inside a container.
fn volume_check(host: &SystemdHost) -> String {
    host.ok(
        "docker run --rm --network none -v dockroot-vol:/v dockroot-test/app:1 sh -c 'cd /v && sha256sum -c SHA256SUMS && cat hello.txt'",
    )
}

#[test]
fn bind_restore_after_move_survives_reboot_and_rolls_back() {
    require_root();
    let s = Scratch::new("bind-restore");
    let disk = LoopFs::new(&s, "xfs", "3G");
    let mut host = SystemdHost::boot(&s, "drbindrs", &[format!("{}:/data", disk.mnt.display())]);
    host.ok("systemctl is-active docker.socket docker.service");
    ok(Command::new("bash").arg(script("docker-fixture.sh")).arg("populate").arg(api(&host).socket));
    let backed_up = DockerState::capture(&api(&host)).unwrap();
    host.ok("dockroot -q backup -o /root/a.tar.zst --yes");
    host.ok("dockroot -q move --method bind --to /data/docker --yes && dockroot -q finalize --yes");
    assert_bound(&host, "after the move");

    // Change the state: a new volume with data, a new container and image tag.
    host.ok("docker volume create after-backup && docker run --rm --network none -v after-backup:/v dockroot-test/base:1 sh -c 'echo new > /v/f'");
    host.ok("docker tag dockroot-test/base:1 dockroot-test/later:1 && docker create --name later dockroot-test/base:1 true");
    let changed = DockerState::capture(&api(&host)).unwrap();

    // The plan names the bind case and its renames and remount.
    let dry = host.ok("dockroot --json restore /root/a.tar.zst --dry-run --force --yes");
    let dry: serde_json::Value = serde_json::from_str(&dry).unwrap();
    assert_eq!(dry["place"]["case"], "bind", "{dry}");
    assert_eq!(dry["place"]["source"], "/data/docker", "{dry}");

    let out = host.sh("dockroot --json restore /root/a.tar.zst --force --yes");
    assert!(out.status.success(), "restore onto the bind failed:\n{}", text(&out));
    let j = json(&out);
    assert_eq!(j["summary"]["place"]["case"], "bind", "{j}");
    let old = j["summary"]["old"].as_str().unwrap().to_string();
    assert!(old.starts_with("/data/docker.dockroot-old-"), "{old}");
    let check = |host: &SystemdHost, at: &str| {
        let now = DockerState::capture(&api(host)).unwrap();
        let d = identity(&backed_up).diff(&identity(&now));
        assert!(d.is_empty(), "{at}: Docker does not show the backup's state: {d:?}");
        assert_bound(host, at);
        assert!(volume_check(host).contains("dockroot volume"), "{at}");
        let running = host.ok("docker inspect -f '{{.State.Running}}' dockroot-runner");
        assert_eq!(running.trim(), "true", "{at}");
    };
    check(&host, "after the restore");
    let fstab = std::fs::read_to_string(host.path("/etc/fstab")).unwrap();
    assert_eq!(fstab.matches("/data/docker /var/lib/docker").count(), 1, "the fstab line stays as it was:\n{fstab}");

    host.reboot();
    host.ok(
        "for i in $(seq 120); do systemctl is-active -q docker.service && exit 0; sleep 0.5; done; systemctl status docker.service; exit 1",
    );
    check(&host, "after a reboot");

    // rollback of the finished restore: the pre-restore tree and its bind.
    let out = host.sh("dockroot rollback --yes");
    assert!(out.status.success(), "rollback of the restore failed:\n{}", text(&out));
    let now = DockerState::capture(&api(&host)).unwrap();
    let d = identity(&changed).diff(&identity(&now));
    assert!(d.is_empty(), "after rollback Docker must show the pre-restore state: {d:?}");
    assert_bound(&host, "after rollback");
    assert!(host.ok("docker run --rm --network none -v after-backup:/v dockroot-test/base:1 cat /v/f").contains("new"));
    let left = host.ok("ls -a /data");
    assert!(!left.contains("dockroot-old") && !left.contains("dockroot-staging"), "{left}");
}
