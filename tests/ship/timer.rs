//! The backup service's off-site mode in a real systemd host: with
//! `DOCKROOT_BACKUP_PIPE` set in /etc/default/dockroot-backup, the unit pipes
//! `dockroot backup -o -` into restic, and the snapshot is a whole archive.

use crate::systemd_host::SystemdHost;
use crate::util::*;

#[test]
fn backup_service_pipes_into_restic() {
    require_root();
    let s = Scratch::new("timer-restic");
    let host = SystemdHost::boot(&s, "bkpipe", &[]);
    for u in ["dockroot-backup.service", "dockroot-backup.timer"] {
        std::fs::copy(repo().join("systemd").join(u), host.path(&format!("/etc/systemd/system/{u}"))).unwrap();
    }
    // Debian 12's restic, the same libc as the guest's.
    std::fs::copy("/usr/bin/restic", host.path("/usr/local/bin/restic")).unwrap();
    std::fs::write(
        host.path("/etc/default/dockroot-backup"),
        "DOCKROOT_BACKUP_ARGS=--compress none\n\
         DOCKROOT_BACKUP_PIPE=restic backup --stdin --stdin-filename docker-data-root.tar --tag nightly\n\
         RESTIC_REPOSITORY=/srv/restic\n\
         RESTIC_PASSWORD=dockroot-test\n\
         RESTIC_CACHE_DIR=/var/cache/restic\n",
    )
    .unwrap();
    let env = "export RESTIC_REPOSITORY=/srv/restic RESTIC_PASSWORD=dockroot-test RESTIC_CACHE_DIR=/var/cache/restic;";
    host.ok(&format!("{env} restic init -q && docker volume create pipevol && mkdir -p /etc/docker && systemctl daemon-reload"));
    let out = host.sh("systemctl start dockroot-backup.service");
    assert!(out.status.success(), "{}\n{}", text(&out), text(&host.sh("journalctl -u dockroot-backup.service --no-pager | tail -40")));
    // Nothing was written to the local backup directory; the snapshot holds a
    // complete, verifiable archive of the data-root, and Docker runs again.
    host.ok("test -z \"$(ls -A /var/backups/dockroot/ 2>/dev/null)\"");
    let snaps = host.ok(&format!("{env} restic snapshots --json --tag nightly"));
    let v: serde_json::Value = serde_json::from_str(&snaps).unwrap();
    assert_eq!(v.as_array().map(Vec::len), Some(1), "{snaps}");
    let out = host.ok(&format!(
        "{env} restic dump latest docker-data-root.tar > /root/a.tar && dockroot verify /root/a.tar && dockroot --json inspect /root/a.tar"
    ));
    assert!(out.contains("\"pipevol\""), "{out}");
    host.ok("systemctl is-active docker.service");

    // A failing pipe fails the unit (pipefail), and Docker still runs.
    std::fs::write(host.path("/etc/default/dockroot-backup"), "DOCKROOT_BACKUP_PIPE=false\n").unwrap();
    assert!(!host.sh("systemctl start dockroot-backup.service").status.success(), "a failed pipe left the unit successful");
    host.ok("systemctl is-active docker.service");
}
