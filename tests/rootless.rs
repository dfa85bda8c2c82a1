//! Rootless Docker (issue 19) in a booted Debian 12 guest
//! (scripts/lib/systemd-host.sh's rootless variant: Docker 20.10 run by
//! alice's user manager with linger, overlay2 with `user.overlay.*` xattrs,
//! files owned by alice and her subordinate ids). dockroot finds the daemon,
//! refuses to guess when the system daemon runs too, stops and starts it
//! through alice's manager, backs it up, restores it after a wipe, moves it
//! with a bind mount that survives a reboot, and restores it onto other
//! /etc/subuid ranges only with --remap-ids, every container keeping its
//! in-container ids.

use std::path::Path;
use std::process::Command;

use dockroot::docker::api::DockerApi;
use dockroot::docker::snapshot::DockerState;

use crate::systemd_host::SystemdHost;
use crate::util::*;

const DR: &str = "/home/alice/.local/share/docker";
const SOCK: &str = "/run/user/1000/docker.sock";

/// The guest's rootless daemon as the host reaches it.
fn api(h: &SystemdHost) -> DockerApi {
    DockerApi::new(format!("/proc/{}/root{SOCK}", h.pid))
}

/// `docker …` inside the guest on alice's daemon (root may use her socket).
fn docker(h: &SystemdHost, args: &str) -> String {
    h.ok(&format!("docker -H unix://{SOCK} {args}"))
}

/// Waits until alice's daemon answers (it starts with her manager at boot).
fn wait_up(h: &SystemdHost) {
    h.ok(&format!("for i in $(seq 300); do docker -H unix://{SOCK} info >/dev/null 2>&1 && exit 0; sleep 0.1; done; exit 1"));
}

/// What must be identical across backup, restore and move: the daemon's
/// objects, the stopped container's changes and the volume's contents.
fn state(h: &SystemdHost) -> (DockerState, String) {
    let s = DockerState::capture(&api(h)).unwrap();
    // docker diff lists in directory order, which a recreated tree need not keep.
    let diff = h.ok(&format!("{{ docker -H unix://{SOCK} diff dockroot-stopped; docker -H unix://{SOCK} diff dockroot-uid; }} | sort"));
    let vol = docker(
        h,
        "run --rm --network none -v dockroot-vol:/vol dockroot-test/app:1 sh -c 'cd /vol && sha256sum -c SHA256SUMS && cat hello.txt && stat -c %u:%g nobody.txt'",
    );
    (s, diff + &vol)
}

fn same(h: &SystemdHost, before: &(DockerState, String), when: &str) {
    let now = state(h);
    assert!(before.0.diff(&now.0).is_empty(), "{when}: {:?}", before.0.diff(&now.0));
    assert_eq!(before.1, now.1, "{when}: docker diff or volume contents changed");
}

/// Boots and fills alice's daemon: the offline fixture, plus files of
/// in-container ids other than 0 (alice's subordinate ids on the host).
fn populate(h: &SystemdHost) {
    wait_up(h);
    let sock = format!("/proc/{}/root{SOCK}", h.pid);
    ok(Command::new("bash").arg(script("docker-fixture.sh")).arg("populate").arg(&sock));
    docker(h, "run --name dockroot-uid --network none --user 1234:1234 dockroot-test/app:1 sh -c 'echo mine >/tmp/mine'");
    docker(
        h,
        "run --rm --network none -v dockroot-vol:/vol dockroot-test/app:1 sh -c 'echo x >/vol/nobody.txt && chown 65534:65534 /vol/nobody.txt'",
    );
}

fn owners(root: &Path) -> String {
    String::from_utf8_lossy(&sh(&format!("find {} -printf '%U\\n' | sort -n | uniq -c", root.display())).stdout).to_string()
}

#[test]
fn rootless_docker_status_backup_restore_move_reboot_and_remap() {
    require_root();
    let s = Scratch::new("rootless");
    let out = s.join("out");
    std::fs::create_dir(&out).unwrap();
    let mut h = SystemdHost::boot_rootless(&s, "rootless", &[format!("{}:/mnt/out", out.display())], |_| {});
    populate(&h);
    let xattrs = sh(&format!(
        "getfattr -R -h -d -m '^user\\.overlay\\.' --absolute-names {} | grep -c '^user.overlay' || true",
        h.path(DR).join("overlay2").display()
    ));
    assert!(
        String::from_utf8_lossy(&xattrs.stdout).trim().parse::<u32>().unwrap_or(0) > 0,
        "no user.overlay.* xattr in the rootless layers"
    );
    assert!(owners(&h.path(DR)).contains(" 101233\n"), "in-container uid 1234 is host uid 101233: {}", owners(&h.path(DR)));

    // status finds alice's daemon without being told.
    let j: serde_json::Value = serde_json::from_str(&h.ok("dockroot --json status")).unwrap();
    assert_eq!(
        (j["rootless_daemon"]["user"].as_str(), j["data_root"].as_str(), j["storage_driver"].as_str()),
        (Some("alice"), Some(DR), Some("overlay2")),
        "{j}"
    );
    assert_eq!((j["service_manager"].as_str(), j["docker_socket"]["path"].as_str()), (Some("user:alice"), Some(SOCK)), "{j}");
    assert_eq!(
        j["rootless_daemon"]["ids"]["uids"],
        serde_json::json!({"owner": 1000, "ranges": [{"start": 100000, "count": 65536}]}),
        "{j}"
    );
    // With the system daemon running too, nothing is guessed.
    h.ok("systemctl start docker.socket docker.service");
    let o = h.sh("dockroot backup -o /mnt/out/x.tar.zst");
    let msg = text(&o);
    assert!(!o.status.success() && msg.contains("--rootful") && msg.contains("--user alice"), "{msg}");
    assert!(h.ok("dockroot status").contains("--user alice"));
    // --rootful works beside it: alice's dockerd is not taken for the system's.
    h.ok("dockroot --rootful -q backup -o /mnt/out/system.tar.zst");
    assert!(!h.ok("dockroot inspect /mnt/out/system.tar.zst").contains("rootless:"));
    docker(&h, "info -f '{{.DockerRootDir}}'");
    h.ok("systemctl stop docker.socket docker.service && rm -rf /var/lib/docker");

    // Backup (live, stopped through alice's manager), wipe, restore.
    let before = state(&h);
    h.ok("dockroot -q backup -o /mnt/out/alice.tar.zst");
    let meta = h.ok("dockroot inspect /mnt/out/alice.tar.zst");
    assert!(meta.contains("rootless:       alice's daemon, uids 1000 + [100000:65536]") && meta.contains("overlay2"), "{meta}");
    h.ok(&format!("systemctl --user --machine=alice@ stop docker.service && rm -rf {DR}"));
    h.ok("dockroot -q restore /mnt/out/alice.tar.zst --yes");
    h.ok("systemctl --user --machine=alice@ is-active docker.service");
    same(&h, &before, "after the restore");
    assert!(owners(&h.path(DR)).contains(" 101233\n"), "subordinate owners kept exactly");

    // A bind move: fstab line, alice's drop-in (hers), the mount at boot.
    h.ok("dockroot -q move --to /srv/alice-docker --yes");
    let dropin = "/home/alice/.config/systemd/user/docker.service.d/dockroot-mount.conf";
    assert!(std::fs::read_to_string(h.path(dropin)).unwrap().contains(&format!("RequiresMountsFor={DR}")));
    assert_eq!(h.ok(&format!("stat -c %U {dropin} $(dirname {dropin})")), "alice\nalice\n");
    h.ok("systemctl --user --machine=alice@ show -p RequiresMountsFor docker.service | grep -q /home/alice/.local/share/docker");
    same(&h, &before, "after the move");
    h.reboot();
    wait_up(&h);
    same(&h, &before, "after the reboot");
    assert!(h.ok(&format!("findmnt -n -o SOURCE {DR}")).trim().ends_with("/srv/alice-docker]"));
    h.ok("dockroot -q finalize --yes");

    // Other subordinate ranges here: refused, naming the difference; then shifted.
    h.ok("echo alice:300000:65536 >/etc/subuid && echo alice:300000:65536 >/etc/subgid");
    let o = h.sh("dockroot restore /mnt/out/alice.tar.zst --force --yes");
    let msg = text(&o);
    assert!(
        !o.status.success() && msg.contains("[100000:65536] in the archive, 1000 + [300000:65536] here") && msg.contains("--remap-ids"),
        "{msg}"
    );
    same(&h, &before, "after the refusal");
    // A failure after the stop is undone like the system daemon's: alice's
    // manager starts her daemon again on the data it had (exit 3).
    let o = h.sh("DOCKROOT_TEST_FAIL_AT=swap dockroot restore /mnt/out/alice.tar.zst --force --remap-ids --yes");
    assert_eq!(o.status.code(), Some(3), "{}", text(&o));
    h.ok("systemctl --user --machine=alice@ is-active docker.service");
    same(&h, &before, "after the undone restore");
    h.ok("dockroot -q restore /mnt/out/alice.tar.zst --force --remap-ids --yes");
    let tree = h.path("/srv/alice-docker");
    let own = owners(&tree);
    assert!(own.contains(" 301233\n") && own.contains(" 365533\n") && !own.contains(" 101233\n"), "{own}");
    // Every container keeps its in-container ids.
    same(&h, &before, "after --remap-ids");
    assert_eq!(docker(&h, "start -a dockroot-uid"), "");
    assert_eq!(
        docker(
            &h,
            "run --rm --network none --user 1234 -v dockroot-vol:/vol dockroot-test/app:1 sh -c 'id -u; stat -c %u /vol/nobody.txt'"
        ),
        "1234\n65534\n"
    );
}

/// The vfs driver (no overlay at all): status names it, and a backup, wipe,
/// restore and a data-root move (alice's daemon.json edited, still hers)
/// keep the state.
#[test]
fn rootless_docker_vfs_backup_restore_and_data_root_move() {
    require_root();
    let s = Scratch::new("rootless-vfs");
    let out = s.join("out");
    std::fs::create_dir(&out).unwrap();
    let cfg = "/home/alice/.config/docker/daemon.json";
    let h = SystemdHost::boot_rootless(&s, "rootlessvfs", &[format!("{}:/mnt/out", out.display())], |root| {
        let p = root.join(cfg.trim_start_matches('/'));
        std::fs::write(&p, "{\n  \"bridge\": \"none\",\n  \"storage-driver\": \"vfs\"\n}\n").unwrap();
    });
    populate(&h);
    let j: serde_json::Value = serde_json::from_str(&h.ok("dockroot --json status")).unwrap();
    assert_eq!((j["storage_driver"].as_str(), j["rootless_daemon"]["storage_driver"].as_str()), (Some("vfs"), Some("vfs")), "{j}");
    let before = state(&h);
    h.ok("dockroot -q backup -o /mnt/out/vfs.tar.zst");
    assert!(h.ok("dockroot inspect /mnt/out/vfs.tar.zst").contains("storage driver: vfs"));
    h.ok(&format!("systemctl --user --machine=alice@ stop docker.service && rm -rf {DR}"));
    h.ok("dockroot -q restore /mnt/out/vfs.tar.zst --yes");
    same(&h, &before, "after the restore");
    // A target alice cannot reach is refused before anything stops.
    let o = h.sh("mkdir -m 700 /srv/closed && dockroot move --method data-root --to /srv/closed/docker --yes");
    assert!(!o.status.success() && text(&o).contains("/srv/closed is closed to alice"), "{}", text(&o));
    h.ok("chmod 0640 /home/alice/.config/docker/daemon.json");
    h.ok("dockroot -q move --method data-root --to /srv/alice-vfs --yes");
    assert!(std::fs::read_to_string(h.path(cfg)).unwrap().contains("\"data-root\": \"/srv/alice-vfs\""));
    assert_eq!(h.ok(&format!("stat -c '%U:%G %a' {cfg}")), "alice:alice 640\n", "daemon.json stays alice's");
    assert_eq!(docker(&h, "info -f '{{.DockerRootDir}}'"), "/srv/alice-vfs\n");
    same(&h, &before, "after the data-root move");
}
