//! The stop contract on a real systemd host (nspawn): docker.service there
//! has `StartLimitBurst=3` in 60 s, and a failed restore starts the units
//! twice (the restore's start, the undo's start). Three failed restores in a
//! row must still end with Docker running on the old data, each exiting 3
//! (failed and undone): every start clears the start limit first.

use std::time::Instant;

use dockroot::archive::WriterOptions;
use dockroot::docker::snapshot::DockerState;
use dockroot::plan::backup::meta::BackupMeta;
use dockroot::plan::backup::write_archive;

use crate::systemd_host::SystemdHost;
use crate::util::*;

#[test]
fn systemd_failed_restore_three_times_leaves_docker_on_the_old_data() {
    require_root();
    let s = Scratch::new("sd-restore");
    let host = SystemdHost::boot(&s, "drrestore", &[]);
    host.ok("systemctl is-active docker.socket docker.service");
    host.ok("docker volume create in-archive");
    // An archive of this very data-root whose meta claims a volume it does
    // not hold, so every restore fails its health check after the swap.
    host.ok("systemctl stop docker.socket docker.service");
    let root = host.path("/var/lib/docker");
    let meta = BackupMeta {
        format: 1,
        tool: "dockroot".into(),
        tool_version: "0".into(),
        engine_version: None,
        storage_driver: None,
        data_root: "/var/lib/docker".into(),
        hostname: "h".into(),
        created: "20260101T000000Z".into(),
        entries: 0,
        bytes: 0,
        allocated: None,
        docker: Some(DockerState::new(vec![], vec![], vec!["in-archive".into(), "ghost".into()])),
        engine: None,
        snapshot: None,
        two_phase: false,
        rootless: None,
        containerd_tree: None,
        userns: None,
        volumes: None,
        binds: vec![],
        binds_skipped: vec![],
    };
    let f = std::fs::File::create(host.path("/root/lying.tar.zst")).unwrap();
    write_archive(f, &data_tree(&root), &meta, &[], &WriterOptions::default(), &dockroot::progress::Silent).unwrap();
    host.ok("systemctl start docker.socket docker.service && docker volume create only-in-old-data");

    let t = Instant::now();
    let out = host.sh("for i in 1 2 3; do dockroot restore /root/lying.tar.zst --yes --force; echo \"exit=$?\"; done 2>&1");
    let secs = t.elapsed().as_secs_f64();
    let log = text(&out);
    eprintln!("three failed restores in {secs:.1}s");
    assert_eq!(log.matches("exit=3").count(), 3, "each restore fails and is undone (exit 3):\n{log}");
    assert!(log.contains("ghost"), "{log}");
    host.ok("systemctl is-active docker.socket docker.service");
    let vols = host.ok("docker volume ls --format '{{.Name}}'");
    assert!(vols.contains("only-in-old-data") && vols.contains("in-archive"), "Docker must run on the old data: {vols}");
    let names = host.ok("ls /var/lib");
    assert!(!names.contains("dockroot-staging") && !names.contains("dockroot-old"), "{names}");
}
