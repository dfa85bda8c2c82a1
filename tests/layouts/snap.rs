//! The snap's layout, simulated in the Debian 12 guest (there is no snapd
//! here): snap.docker.dockerd.service runs Debian's dockerd with the snap's
//! data-root and daemon.json, and no docker.io units exist. dockroot finds
//! it, stops and starts it through its unit, backs it up, restores it after
//! a wipe, refuses `--method data-root` (the snap owns that setting) and
//! bind-moves it; the engine comes back on the moved data after a reboot.

use std::process::Command;

use crate::systemd_host::SystemdHost;
use crate::util::{LoopFs, Scratch, ok, require_root, script, text};

/// Images, containers, volumes, the stopped container's diff and the volume's files.
fn state(h: &SystemdHost) -> String {
    h.ok("for i in $(seq 100); do [ \"$(docker inspect -f '{{.State.Running}}' dockroot-runner)\" = true ] && break; sleep 0.2; done; \
          { docker images -a --no-trunc --format '{{.ID}} {{.Repository}}:{{.Tag}}'; \
            docker ps -a --no-trunc --format '{{.ID}} {{.Names}} {{.State}}'; docker volume ls -q; } | sort; \
          echo '-- diff'; docker diff dockroot-stopped | sort; \
          echo '-- volume'; docker run --rm --network none -v dockroot-vol:/vol dockroot-test/app:1 sh -c 'cd /vol && cat hello.txt && sha256sum -c SHA256SUMS'")
}

/// Waits until the snap's dockerd answers: it has no socket unit that
/// would hold connections while it starts after a boot.
fn wait_docker(h: &SystemdHost) {
    h.ok("for i in $(seq 600); do docker info >/dev/null 2>&1 && exit 0; sleep 0.2; done; systemctl status snap.docker.dockerd.service; exit 1");
}

#[test]
fn snap_layout_found_backup_wipe_restore_bind_move_reboot() {
    require_root();
    let s = Scratch::new("lay-snap");
    let disk = LoopFs::new(&s, "ext4", "2G");
    let bind = format!("{}:/data", disk.mnt.display());
    let mut h = SystemdHost::boot_with("systemd-host.sh", &s, "laysnap", &[bind], |root| {
        std::fs::copy(script("docker-fixture.sh"), root.join("usr/local/bin/docker-fixture.sh")).unwrap();
        ok(Command::new("bash").arg(script("systemd-host.sh")).arg("snap").arg(root));
    });
    wait_docker(&h);
    h.ok("bash /usr/local/bin/docker-fixture.sh populate /run/docker.sock");
    let st: serde_json::Value = serde_json::from_str(&h.ok("dockroot --json status")).unwrap();
    assert_eq!(st["layout"]["layout"]["kind"], "snap", "{st}");
    assert_eq!(st["data_root"], dockroot::docker::layout::SNAP_DATA_ROOT, "{st}");
    assert_eq!(st["service_manager"], "snap", "{st}");
    let before = state(&h);

    // A docker.service beside the snap: which one owns the data is the user's call.
    h.ok("printf '[Service]\\nExecStart=/usr/sbin/dockerd -H fd://\\n' >/etc/systemd/system/docker.service");
    let o = h.sh("dockroot backup -o /root/x.tar.zst");
    assert_eq!(o.status.code(), Some(2), "{}", text(&o));
    assert!(text(&o).contains("system service (docker.service) and snap (snap.docker.dockerd.service)"), "{}", text(&o));
    h.ok("rm /etc/systemd/system/docker.service && test ! -e /root/x.tar.zst");

    h.ok("dockroot -q backup -o /root/a.tar.zst");
    assert_eq!(state(&h), before, "after the backup");
    h.ok("systemctl stop snap.docker.dockerd.service && rm -rf /var/snap/docker/common/var-lib-docker");
    h.ok("dockroot -q restore /root/a.tar.zst --yes");
    assert_eq!(h.ok("systemctl is-active snap.docker.dockerd.service").trim(), "active");
    assert_eq!(state(&h), before, "after the restore");

    let o = h.sh("dockroot move --method data-root --to /data/docker --yes");
    assert_eq!(o.status.code(), Some(2), "{}", text(&o));
    assert!(text(&o).contains("snap set docker data-root=/data/docker"), "{}", text(&o));
    h.ok("dockroot -q move --method bind --to /data/docker --yes");
    assert_eq!(state(&h), before, "after the move");
    h.reboot();
    wait_docker(&h);
    assert_eq!(state(&h), before, "after the reboot");
    h.ok("findmnt /var/snap/docker/common/var-lib-docker");
    h.ok("dockroot -q finalize --yes");
}
