//! The relocation on a real systemd host (systemd-nspawn, docker.service and
//! docker.socket enabled): the socket must not re-activate the daemon during
//! the copy, the fstab line and the drop-in must be right, and Docker must
//! come back after a daemon-reload, on the moved data.

use std::process::Command;

use dockroot::docker::api::DockerApi;
use dockroot::docker::snapshot::DockerState;

use crate::systemd_host::SystemdHost;
use crate::util::*;

#[test]
fn systemd_move_bind_keeps_socket_down_and_survives_daemon_reload() {
    require_root();
    let s = Scratch::new("sd-move");
    let disk = LoopFs::new(&s, "xfs", "3G");
    let host = SystemdHost::boot(&s, "drmove", &[format!("{}:/data", disk.mnt.display())]);
    host.ok("systemctl is-active docker.socket docker.service");
    // The host reaches the guest's daemon through the guest's root.
    let sock = format!("/proc/{}/root/run/docker.sock", host.pid);
    ok(Command::new("bash").arg(script("docker-fixture.sh")).arg("populate").arg(&sock));
    let api = DockerApi::new(&sock);
    let before = DockerState::capture(&api).unwrap();

    // A poker that would wake docker.socket if it were still listening.
    host.ok("nohup bash -c 'while sleep 0.2; do docker info >/dev/null 2>&1 && date +%s.%N >> /root/answers; done' >/dev/null 2>&1 &");
    let out = host.sh("dockroot --json move --yes --to /data/docker 2>/root/move.err; echo \"exit=$?\" >> /root/move.err");
    let err = std::fs::read_to_string(host.path("/root/move.err")).unwrap_or_default();
    assert!(err.contains("exit=0"), "move failed in the systemd host:\n{}\n{err}", text(&out));
    host.ok("pkill -f 'docker info' ; pkill -f 'while sleep 0.2' ; true");

    // Docker was down while the data moved: the poker got no answer between
    // the stop and the start that dockroot reported.
    let j: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap_or_else(|_| serde_json::json!({}));
    let answers = std::fs::read_to_string(host.path("/root/answers")).unwrap_or_default();
    assert!(!answers.is_empty(), "the poker never reached Docker");
    let times =
        (j.pointer("/result/stopped_at_unix").and_then(|v| v.as_f64()), j.pointer("/result/started_at_unix").and_then(|v| v.as_f64()));
    let (Some(stop), Some(start)) = times else { panic!("no stop/start times in the move's JSON: {j}") };
    {
        let woke: Vec<f64> = answers.lines().filter_map(|l| l.parse().ok()).filter(|t| *t > stop + 0.5 && *t < start - 0.5).collect();
        assert!(woke.is_empty(), "docker answered during the downtime (socket re-activation): {woke:?}");
    }

    let fstab = std::fs::read_to_string(host.path("/etc/fstab")).unwrap();
    assert!(
        fstab.lines().any(|l| l.split_whitespace().collect::<Vec<_>>()
            == ["/data/docker", "/var/lib/docker", "none", "bind,x-systemd.requires-mounts-for=/data/docker", "0", "0"]),
        "fstab:\n{fstab}"
    );
    let dropin = std::fs::read_to_string(host.path("/etc/systemd/system/docker.service.d/dockroot-mount.conf")).unwrap();
    assert!(dropin.contains("RequiresMountsFor=/var/lib/docker"), "{dropin}");
    let mounted = host.ok("findmnt -n -o SOURCE,TARGET /var/lib/docker");
    assert!(mounted.contains("/var/lib/docker"), "{mounted}");

    // systemd accepts the drop-in and starts Docker on the moved data.
    host.ok("systemctl daemon-reload && systemctl restart docker.socket docker.service && systemctl is-active docker.service");
    host.ok("systemctl show -p RequiresMountsFor docker.service | grep -q /var/lib/docker");
    let after = DockerState::capture(&api).unwrap();
    assert!(before.diff(&after).is_empty(), "{:?}", before.diff(&after));
    assert_eq!(api.info().unwrap().docker_root_dir, std::path::PathBuf::from("/var/lib/docker"));
    // The layers really live on the data disk now.
    assert!(disk.mnt.join("docker/image").is_dir());
    ok(Command::new("docker").args(["-H", &format!("unix://{sock}"), "run", "--rm", "--network", "none", "dockroot-test/app:1", "true"]));
}
