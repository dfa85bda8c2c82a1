//! Moving the whole engine (issue 8): with the containerd image store on the
//! system containerd, `move` stops containerd.service after Docker and
//! starts it before, and relocates containerd's root beside the data-root.
//! Debian sid's docker.io 28.5 and containerd 2.1 under systemd in an nspawn
//! guest (scripts/lib/sid-host.sh), with a loop-mounted data disk on /data.

use std::path::Path;
use std::process::Command;

use crate::engine_store::{install_strace, nth_rename};
use crate::systemd_host::SystemdHost;
use crate::util::*;

/// Boots the sid guest in the containerd image store with `disk` on /data
/// and the fixture's images, volume and containers.
fn guest(s: &Scratch, name: &str, disk: &Path) -> SystemdHost {
    guest_with(s, name, disk, &[])
}

/// [`guest`], with more `sid-host.sh` commands run on the rootfs before boot
/// (e.g. `ce`: Docker CE's configuration).
pub(crate) fn guest_with(s: &Scratch, name: &str, disk: &Path, prepare: &[&str]) -> SystemdHost {
    let bind = format!("{}:/data", disk.display());
    let h = SystemdHost::boot_with("sid-host.sh", s, name, &[bind], |root| {
        std::fs::copy(script("docker-fixture.sh"), root.join("usr/local/bin/docker-fixture.sh")).unwrap();
        ok(Command::new("bash").arg(script("sid-host.sh")).args(["store"]).arg(root).arg("containerd"));
        for cmd in prepare {
            ok(Command::new("bash").arg(script("sid-host.sh")).arg(cmd).arg(root));
        }
    });
    h.ok("bash /usr/local/bin/docker-fixture.sh populate /run/docker.sock");
    h
}

/// What must not change: images with IDs and tags, containers with IDs and
/// states, volume names and contents, the stopped container's `docker
/// diff`, and the file capability of /bin/netcap as the running container
/// sees its root.
pub(crate) fn state(h: &SystemdHost) -> String {
    h.ok("for i in $(seq 100); do [ \"$(docker inspect -f '{{.State.Running}}' dockroot-runner)\" = true ] && break; sleep 0.2; done; \
          { docker images -a --no-trunc --format '{{.ID}} {{.Repository}}:{{.Tag}}' | sed 's/ <none>:<none>$//'; \
            docker ps -a --no-trunc --format '{{.ID}} {{.Names}} {{.State}}'; docker volume ls -q; } | sort; \
          echo '-- diff'; docker diff dockroot-stopped | sort; \
          echo '-- volume'; docker run --rm --network none -v dockroot-vol:/vol dockroot-test/app:1 sh -c 'cd /vol && cat hello.txt && sha256sum -c SHA256SUMS'; \
          echo '-- capability'; getcap /proc/$(docker inspect -f '{{.State.Pid}}' dockroot-runner)/root/bin/netcap | sed 's|^/proc/[0-9]*/root||'")
}

fn active(h: &SystemdHost, units: &str) -> String {
    h.sh(&format!("systemctl is-active {units}"))
        .stdout
        .iter()
        .map(|b| *b as char)
        .collect::<String>()
        .split_whitespace()
        .collect::<Vec<_>>()
        .join(" ")
}

/// Shims of Docker's namespace in the guest (pgrep's own line excluded).
fn shims(h: &SystemdHost) -> String {
    h.ok("pgrep -a -f 'containerd-shim.*-namespace moby' || true")
}

/// Files of an image store (content blobs, snapshots, layer dirs) under
/// `dir` of the guest's root filesystem, seen from the host, below the mounts.
fn store_files(h: &SystemdHost, dir: &str) -> Vec<String> {
    let out = run(Command::new("find").arg(h.path(dir)).args(["-mindepth", "1", "-maxdepth", "3"]));
    String::from_utf8_lossy(&out.stdout).lines().map(String::from).collect()
}

/// The whole engine stops and starts, a failed move starts both again, a
/// bind move of both stores survives a reboot, and `finalize` leaves no
/// blob or snapshot on the root filesystem.
#[test]
fn containerd_store_moves_with_the_engine_bind_reboot_finalize() {
    require_root();
    let s = Scratch::new("sid-emove");
    let disk = LoopFs::new(&s, "ext4", "2G");
    let mut h = guest(&s, "sidemove", &disk.mnt);
    let before = state(&h);
    assert!(before.contains("cap_net_raw") && before.contains("seq.txt: OK") && before.contains("dockroot-runner running"), "{before}");
    let fstab0 = std::fs::read_to_string(h.path("/etc/fstab")).unwrap_or_default();

    // Killed with the engine down: both units are stopped and no shim runs;
    // rollback starts containerd, then Docker, and the container runs again.
    let o = h.sh("DOCKROOT_TEST_CRASH_AT=sync dockroot -q move --to /data/docker --no-precopy --yes");
    assert!(!o.status.success(), "{}", text(&o));
    assert_eq!(active(&h, "containerd.service docker.service docker.socket"), "inactive inactive inactive");
    assert_eq!(shims(&h), "", "no shim of Docker's containers may outlive the stop");
    h.ok("dockroot -q rollback --yes");
    assert_eq!(active(&h, "containerd.service docker.service docker.socket"), "active active active");
    assert_eq!(state(&h), before);

    // A failure after containerd's root was renamed aside: undone, both started.
    h.ok("rm -rf /data/docker /data/containerd");
    let o = h.sh("DOCKROOT_TEST_FAIL_AT=mount-containerd dockroot move --to /data/docker --yes");
    let msg = text(&o);
    assert!(!o.status.success() && msg.contains("mount-containerd"), "{msg}");
    assert_eq!(active(&h, "containerd.service docker.service"), "active active", "{msg}");
    assert!(h.ok("ls /var/lib").split_whitespace().all(|n| !n.contains(".dockroot-old-")), "{msg}");
    assert_eq!(std::fs::read_to_string(h.path("/etc/fstab")).unwrap_or_default(), fstab0);
    assert_eq!(state(&h), before);

    // The dry run says what goes where.
    h.ok("rm -rf /data/docker /data/containerd");
    let plan: serde_json::Value = serde_json::from_str(&h.ok("dockroot --json move --to /data/docker --dry-run")).unwrap();
    let c = &plan["plan"]["containerd"];
    assert_eq!((c["source"].as_str(), c["target"].as_str()), (Some("/var/lib/containerd"), Some("/data/containerd")), "{plan}");
    assert_eq!(c["namespaces"], serde_json::json!(["moby"]), "{plan}");

    let out = h.ok("dockroot --json move --to /data/docker --yes");
    let j: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(j["result"]["containerd_target"], "/data/containerd", "{j}");
    eprintln!("bind move of both stores: downtime {}s, steps {}", j["result"]["downtime_seconds"], j["result"]["downtime_steps"]);
    let fstab = std::fs::read_to_string(h.path("/etc/fstab")).unwrap();
    for (src, dst) in [("/data/docker", "/var/lib/docker"), ("/data/containerd", "/var/lib/containerd")] {
        let want = ["none", &format!("bind,x-systemd.requires-mounts-for={src}"), "0", "0"];
        assert!(
            fstab.lines().any(|l| l.split_whitespace().collect::<Vec<_>>() == [src, dst, want[0], want[1], want[2], want[3]]),
            "{fstab}"
        );
    }
    for (unit, path) in [("docker", "/var/lib/docker"), ("containerd", "/var/lib/containerd")] {
        let d = std::fs::read_to_string(h.path(&format!("/etc/systemd/system/{unit}.service.d/dockroot-mount.conf"))).unwrap();
        assert!(d.contains(&format!("RequiresMountsFor={path}")), "{d}");
    }
    assert_eq!(state(&h), before, "after the move");

    // docker and containerd come up on the moved data through fstab and the drop-ins.
    h.reboot();
    assert_eq!(state(&h), before, "after the reboot");
    let src = h.ok("findmnt -n -o SOURCE /var/lib/containerd");
    assert!(src.trim().ends_with("/containerd]"), "containerd's root bound at boot: {src}");
    h.ok("systemctl show -p RequiresMountsFor containerd.service | grep -q /var/lib/containerd");

    let fin = h.ok("dockroot finalize --yes");
    assert!(fin.contains("deleted containerd's old root /var/lib/containerd.dockroot-old-"), "{fin}");
    // Below the mounts, the root filesystem keeps only the empty mount points.
    assert_eq!(store_files(&h, "/var/lib/containerd"), Vec::<String>::new());
    assert_eq!(store_files(&h, "/var/lib/docker"), Vec::<String>::new());
    let lib = std::fs::read_dir(h.path("/var/lib")).unwrap().map(|e| e.unwrap().file_name().to_string_lossy().into_owned());
    assert!(lib.filter(|n| n.contains(".dockroot-old-")).count() == 0);
    assert!(disk.mnt.join("containerd/io.containerd.content.v1.content/blobs/sha256").is_dir());
    assert_eq!(state(&h), before, "after finalize");
}

/// `--method data-root` moves both stores by configuration (daemon.json's
/// data-root, containerd's root in config.toml, backups kept), and
/// `rollback` restores both files byte for byte and both stores in use.
#[test]
fn containerd_store_data_root_move_and_rollback() {
    require_root();
    let s = Scratch::new("sid-emove-dr");
    let disk = LoopFs::new(&s, "ext4", "2G");
    let h = guest(&s, "sidemovedr", &disk.mnt);
    let before = state(&h);
    let (dj, ct) = (h.path("/etc/docker/daemon.json"), h.path("/etc/containerd/config.toml"));
    let (dj0, ct0) = (std::fs::read(&dj).unwrap(), std::fs::read(&ct).unwrap());

    let o = h.sh("dockroot move --method data-root --to /data/d/docker --containerd-to /data/c/containerd --dry-run");
    assert!(!o.status.success() && text(&o).contains("/data/d that would hold target /data/d/docker does not exist"), "{}", text(&o));
    h.ok("mkdir /data/d /data/c");
    h.ok("dockroot -q move --method data-root --to /data/d/docker --containerd-to /data/c/containerd --yes");
    let conf = std::fs::read_to_string(&ct).unwrap();
    assert!(conf.contains("root = '/data/c/containerd'") && conf.contains("[plugins.\"io.containerd.grpc.v1.cri\"]"), "{conf}");
    assert!(std::fs::read_to_string(&dj).unwrap().contains("/data/d/docker"));
    let dump = h.ok("containerd config dump | grep -E '^root'");
    assert!(dump.contains("/data/c/containerd"), "{dump}");
    assert_eq!(state(&h), before, "after the data-root move");
    assert!(disk.mnt.join("c/containerd/io.containerd.content.v1.content/blobs/sha256").is_dir());

    h.ok("dockroot -q rollback --yes");
    assert_eq!(std::fs::read(&dj).unwrap(), dj0);
    assert_eq!(std::fs::read(&ct).unwrap(), ct0);
    assert!(h.ok("containerd config dump | grep -E '^root'").contains("/var/lib/containerd"));
    assert_eq!(h.ok("docker info -f '{{.DockerRootDir}}'").trim(), "/var/lib/docker");
    assert_eq!(state(&h), before, "after the rollback");
}

/// `stat` of each path's directory (a mount point shows the root of what is
/// mounted there) as `dev:ino`, one line each.
fn dev_ino(h: &SystemdHost, paths: &str) -> Vec<String> {
    h.ok(&format!("for p in {paths}; do stat -c %d:%i \"$p/\"; done")).lines().map(String::from).collect()
}

/// Restore after a two-store bind move (issue 8): both roots are bind
/// mounts, so each tree is staged and swapped at its bind's source and both
/// binds follow the new trees; `rollback` puts both old trees and binds back.
#[test]
fn containerd_store_restore_after_bind_move_and_rollback() {
    require_root();
    let s = Scratch::new("sid-ctdbind");
    let disk = LoopFs::new(&s, "ext4", "2G");
    let h = guest(&s, "sidctdbind", &disk.mnt);
    let before = state(&h);
    h.ok("dockroot -q backup -o /root/b.tar.zst");
    h.ok("dockroot -q move --to /data/docker --yes && dockroot -q finalize --yes");
    assert_eq!(state(&h), before, "after the bind move");

    // The state changes after the backup: a tag, a volume, a container.
    h.ok("docker tag dockroot-test/app:1 dockroot-test/app:changed && docker volume create dockroot-changed >/dev/null \
          && docker create --name dockroot-changed --network none dockroot-test/app:1 true >/dev/null");
    let changed = state(&h);
    assert_ne!(changed, before);

    // The dry run says each tree is a bind mount of its source on /data.
    let dry: serde_json::Value = serde_json::from_str(&h.ok("dockroot --json restore /root/b.tar.zst --dry-run")).unwrap();
    assert_eq!((dry["place"]["case"].as_str(), dry["place"]["source"].as_str()), (Some("bind"), Some("/data/docker")), "{dry}");
    let cp = &dry["containerd_place"];
    assert_eq!((cp["case"].as_str(), cp["source"].as_str()), (Some("bind"), Some("/data/containerd")), "{dry}");
    assert!(dry["containerd_swap"].as_str().unwrap().contains("bind /data/containerd on it again"), "{dry}");

    let r: serde_json::Value = serde_json::from_str(&h.ok("dockroot --json restore /root/b.tar.zst --force --yes")).unwrap();
    let sum = &r["summary"];
    assert!(sum["old"].as_str().unwrap().starts_with("/data/docker.dockroot-old-"), "{r}");
    assert!(sum["containerd_old"].as_str().unwrap().starts_with("/data/containerd.dockroot-old-"), "{r}");
    assert_eq!(state(&h), before, "after the restore");
    // Both mount points show the restored trees at the binds' sources.
    let ids = dev_ino(&h, "/var/lib/docker /data/docker /var/lib/containerd /data/containerd");
    assert_eq!((&ids[0], &ids[2]), (&ids[1], &ids[3]), "{ids:?}");
    let lib = h.ok("ls -a /var/lib /data");
    assert!(!lib.contains("staging"), "{lib}");

    h.ok("dockroot -q rollback --yes");
    assert_eq!(state(&h), changed, "after the rollback");
    let back = dev_ino(&h, "/var/lib/docker /data/docker /var/lib/containerd /data/containerd");
    assert_eq!((&back[0], &back[2]), (&back[1], &back[3]), "{back:?}");
    assert_ne!(back, ids, "the old trees are back at the sources");

    // Killed between the two rebinds: the data-root shows the restored tree,
    // containerd's root is unmounted. `rollback` puts both trees and binds back.
    let strace = install_strace(&h);
    h.ok(&format!("{strace} -o /run/census -e trace=mount dockroot -q restore /root/b.tar.zst --force --yes"));
    assert_eq!(state(&h), before, "after the traced restore");
    h.ok("dockroot -q rollback --yes");
    let (call, n) = nth_rename(&h.ok("cat /run/census"), "/data/containerd");
    let o = h.sh(&format!(
        "{strace} -o /dev/null -e trace={call} -e inject={call}:signal=KILL:when={n} dockroot restore /root/b.tar.zst --force --yes"
    ));
    assert!(!o.status.success(), "the restore was not killed: {}", text(&o));
    let mid = dev_ino(&h, "/var/lib/docker /data/docker");
    assert_eq!(mid[0], mid[1], "the data-root was rebound first: {mid:?}");
    assert!(!h.sh("findmnt /var/lib/containerd").status.success(), "containerd's root not yet bound again");
    h.ok("dockroot -q rollback --yes");
    assert_eq!(state(&h), changed, "after the rollback of the killed restore");
    assert_eq!(dev_ino(&h, "/var/lib/docker /data/docker /var/lib/containerd /data/containerd"), back);
    let lib = h.ok("ls -a /var/lib /data");
    assert!(!lib.contains("staging") && !lib.contains(".dockroot-old-"), "{lib}");
}
