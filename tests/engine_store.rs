//! Two-store backup and restore (issue 8): the containerd image store on
//! the system containerd (Debian sid's docker.io 28.5 and containerd 2.1 in
//! an nspawn guest, scripts/lib/sid-host.sh). The archive carries
//! containerd's root beside the data-root; a restore after both stores were
//! wiped gives back the same engine state; a store shared with another
//! namespace needs `--shared-store`; and a restore killed between the two
//! stores' renames is undone by `rollback`, both old trees back in place.

use std::path::Path;
use std::process::Command;

use crate::modern_engine::{lists, populate, sid};
use crate::systemd_host::SystemdHost;
use crate::util::*;

/// What must be identical across backup, wipe and restore: images with ids,
/// containers with ids and states, volumes ([`lists`]), the volume's
/// content, `docker diff` of the exited container, and the file capability
/// of /bin/netcap as a process inside a container gets it.
fn engine_state(h: &SystemdHost) -> String {
    let vol = h.ok("docker run --rm --network none -v dockroot-vol:/vol dockroot-test/app:1 sh -c 'cd /vol && cat hello.txt && sha256sum -c SHA256SUMS'");
    let diff = h.ok("docker diff dockroot-stopped | sort");
    // Run through a symlink named `cat`, busybox runs its cat applet with the
    // file capability of /bin/netcap (cap_net_raw is bit 13: 0x2000).
    let cap = h.ok("docker run --rm --network none --cap-add NET_RAW --user 1000 dockroot-test/app:1 \
                    sh -c 'ln -s /bin/netcap /tmp/cat && /tmp/cat /proc/self/status' | grep CapEff");
    assert!(cap.contains("0000000000002000"), "no cap_net_raw from the file capability: {cap}");
    format!("{}--\n{vol}--\n{diff}--\n{cap}", lists(h))
}

/// The host's strace, run inside the guest through its own loader and
/// libraries (as docker-fixture.sh runs setcap): sid has no strace installed.
pub(crate) fn install_strace(h: &SystemdHost) -> String {
    let dir = h.path("/opt/strace");
    std::fs::create_dir_all(&dir).unwrap();
    let strace = String::from_utf8(ok(Command::new("sh").args(["-c", "command -v strace"])).stdout).unwrap();
    let strace = strace.trim();
    std::fs::copy(strace, dir.join("strace")).unwrap();
    let ldd = String::from_utf8(ok(Command::new("ldd").arg(strace)).stdout).unwrap();
    let mut loader = String::new();
    for lib in ldd.split_whitespace().filter(|w| w.starts_with('/')) {
        let name = Path::new(lib).file_name().unwrap().to_string_lossy().to_string();
        std::fs::copy(lib, dir.join(&name)).unwrap();
        if name.starts_with("ld-linux") {
            loader = name;
        }
    }
    assert!(!loader.is_empty(), "no loader in ldd {strace}: {ldd}");
    format!("/opt/strace/{loader} --library-path /opt/strace /opt/strace/strace")
}

/// The rename-family call of a strace log that renames `from` away: its
/// syscall and how many calls of that syscall come up to and including it
/// (strace counts `when=N` per syscall).
pub(crate) fn nth_rename(log: &str, from: &str) -> (String, usize) {
    let calls: Vec<(&str, &str)> = log.lines().filter_map(|l| Some((l.split_once('(')?.0, l))).collect();
    let (name, _) =
        *calls.iter().find(|(_, l)| l.contains(&format!("\"{from}\", "))).unwrap_or_else(|| panic!("no rename of {from}:\n{log}"));
    let at = calls.iter().position(|(_, l)| l.contains(&format!("\"{from}\", "))).unwrap();
    (name.to_string(), calls[..=at].iter().filter(|(n, _)| *n == name).count())
}

#[test]
fn containerd_store_backup_wipe_restore_shared_namespace_and_killed_swap() {
    require_root();
    let s = Scratch::new("sid-twostore");
    let out = s.join("out");
    std::fs::create_dir(&out).unwrap();
    let h = sid(&s, "sidtwo", "containerd", &out);
    populate(&h);
    let before = engine_state(&h);
    let j: serde_json::Value = serde_json::from_str(&h.ok("dockroot --json status")).unwrap();
    assert_eq!(j["engine"]["image_store"], "containerd", "{j}");

    // A second user of the store: refused without --shared-store, nothing written.
    h.ok("ctr namespaces create k8s.io");
    h.ok("ctr -n k8s.io content ingest dockroot-k8s-ref </etc/hostname >/dev/null 2>&1 || true");
    let o = h.sh("dockroot backup -o /mnt/out/ctd.tar.zst");
    let msg = text(&o);
    assert_eq!(o.status.code(), Some(2), "{msg}");
    assert!(msg.contains("k8s.io") && msg.contains("--shared-store"), "{msg}");
    assert!(!out.join("ctd.tar.zst").exists() && !out.join("ctd.tar.zst.partial").exists());
    h.ok("systemctl is-active docker.service containerd.service");

    // The backup carries containerd's root as one of its trees, with its manifest,
    // and runs its phases over every tree (issue 20): phase 1 with Docker up.
    let dry = h.ok("dockroot backup -o /mnt/out/ctd.tar.zst --shared-store --dry-run");
    assert!(dry.contains("while Docker runs") && dry.contains("with containerd's root"), "{dry}");
    let b: serde_json::Value = serde_json::from_str(&h.ok("dockroot --json backup -o /mnt/out/ctd.tar.zst --shared-store")).unwrap();
    let p = &b["summary"]["phases"];
    assert_eq!(p["phase1_docker_answered"], true, "phase 1 must run with Docker up: {b}");
    assert!(p["phase1"]["entries"].as_u64().unwrap() > 10, "{b}");
    assert_eq!(b["summary"]["meta"]["two_phase"], true, "{b}");
    let i: serde_json::Value = serde_json::from_str(&h.ok("dockroot --json inspect /mnt/out/ctd.tar.zst")).unwrap();
    let t = &i["meta"]["containerd_tree"];
    assert_eq!(t["root"], "/var/lib/containerd", "{i}");
    assert!(t["entries"].as_u64().unwrap() > 10 && t["bytes"].as_u64().unwrap() > 1 << 20, "{i}");
    assert_eq!(t["namespaces"], serde_json::json!(["k8s.io", "moby"]), "{i}");
    assert!(i["meta"]["engine"]["containerd_version"].as_str().unwrap().starts_with("2."), "{i}");
    let human = h.ok("dockroot inspect /mnt/out/ctd.tar.zst");
    assert!(human.contains("containerd tree:") && human.contains("image store:    containerd image store"), "{human}");
    let v: serde_json::Value = serde_json::from_str(&h.ok("dockroot --json verify /mnt/out/ctd.tar.zst")).unwrap();
    assert_eq!(v["ok"], true, "{v}");
    assert!(v["containerd"]["entries"].as_u64().unwrap() > 10, "{v}");
    let archived = std::fs::metadata(out.join("ctd.tar.zst")).unwrap().len();
    eprintln!("archive: {archived} bytes; containerd tree {} entries, {} bytes", t["entries"], t["bytes"]);
    assert_eq!(engine_state(&h), before, "after the backup");
    let dry = h.ok("dockroot restore /mnt/out/ctd.tar.zst --dry-run");
    assert!(dry.contains("containerd's root (") && dry.contains("/var/lib/containerd.dockroot-staging-<UTC time>"), "{dry}");

    // A simulated reinstall: both stores wiped, the engine started fresh on empty ones.
    h.ok("systemctl stop docker.socket docker.service containerd.service && rm -rf /var/lib/docker /var/lib/containerd \
          && systemctl start containerd.service docker.socket docker.service");
    assert_eq!(h.ok("docker images -q").trim(), "", "the wiped engine has no images");
    let o = h.sh("dockroot restore /mnt/out/ctd.tar.zst --force --yes");
    assert!(!o.status.success() && text(&o).contains("--shared-store"), "{}", text(&o));
    let strace = install_strace(&h);
    // Counted: the renames of this restore, to kill the next one mid-swap.
    h.ok(&format!(
        "{strace} -o /run/census -e trace=rename,renameat,renameat2 dockroot restore /mnt/out/ctd.tar.zst --force --shared-store --yes"
    ));
    assert_eq!(engine_state(&h), before, "after the restore");
    assert_eq!(h.ok("ctr namespaces ls -q | sort").split_whitespace().collect::<Vec<_>>(), ["k8s.io", "moby"]);
    let status = h.ok("dockroot status");
    assert!(status.contains("containerd image store"), "{status}");

    // Killed between the two stores' renames: the data-root is swapped,
    // containerd's root not yet. `rollback` puts both old trees back.
    let census = h.ok("cat /run/census");
    let (call, n) = nth_rename(&census, "/var/lib/containerd");
    h.ok("touch /var/lib/docker/.dockroot-test-old /var/lib/containerd/.dockroot-test-old");
    let o = h.sh(&format!(
        "{strace} -o /dev/null -e trace={call} -e inject={call}:signal=KILL:when={n} dockroot restore /mnt/out/ctd.tar.zst --force --shared-store --yes"
    ));
    assert!(!o.status.success(), "the restore was not killed: {}", text(&o));
    let ls = h.ok("ls -d /var/lib/docker* /var/lib/containerd*");
    assert!(ls.contains("/var/lib/containerd.dockroot-staging-"), "killed before the containerd swap: {ls}");
    h.ok("dockroot rollback --yes");
    h.ok("test -e /var/lib/docker/.dockroot-test-old && test -e /var/lib/containerd/.dockroot-test-old");
    let ls = h.ok("ls -d /var/lib/docker* /var/lib/containerd*");
    assert!(!ls.contains("staging"), "staging trees left: {ls}");
    h.ok("systemctl is-active docker.service containerd.service");
    assert_eq!(engine_state(&h), before, "after the rollback");

    // A failed health check after both swaps: the restore undoes itself, both old trees back.
    let o = h.sh("DOCKROOT_TEST_FAIL_AT=health dockroot restore /mnt/out/ctd.tar.zst --force --shared-store --yes");
    assert_eq!(o.status.code(), Some(3), "undone: {}", text(&o));
    h.ok("test -e /var/lib/docker/.dockroot-test-old && test -e /var/lib/containerd/.dockroot-test-old");
    let ls = h.ok("ls -d /var/lib/docker* /var/lib/containerd*");
    assert!(!ls.contains("staging"), "staging trees left: {ls}");
    h.ok("systemctl is-active docker.service containerd.service");
    assert_eq!(engine_state(&h), before, "after the undone restore");

    // An engine that would not pick the archive's store: daemon.json without
    // the feature, so Docker 28 uses the graph driver. The restore pins the
    // containerd image store (journaled), and `rollback` takes the pin back.
    let plain = "{\n  \"iptables\": false,\n  \"bridge\": \"none\"\n}\n";
    std::fs::write(h.path("/etc/docker/daemon.json"), plain).unwrap();
    h.ok("systemctl stop docker.socket docker.service containerd.service && rm -rf /var/lib/docker /var/lib/containerd \
          && systemctl start containerd.service docker.socket docker.service");
    assert_eq!(h.ok("docker info -f '{{.Driver}}'").trim(), "overlay2");
    let r: serde_json::Value =
        serde_json::from_str(&h.ok("dockroot --json restore /mnt/out/ctd.tar.zst --force --shared-store --yes")).unwrap();
    let said = r["summary"]["store_pinned"].as_str().unwrap_or_else(|| panic!("no pin reported: {r}"));
    assert!(said.contains("containerd-snapshotter to true"), "{said}");
    let cfg = std::fs::read_to_string(h.path("/etc/docker/daemon.json")).unwrap();
    assert!(cfg.contains("\"containerd-snapshotter\": true") && cfg.contains("\"iptables\": false"), "{cfg}");
    assert_eq!(engine_state(&h), before, "after the restore with the pin");
    h.ok("dockroot rollback --yes");
    assert_eq!(std::fs::read_to_string(h.path("/etc/docker/daemon.json")).unwrap(), plain, "rollback takes the pin back");
    assert_eq!(h.ok("docker info -f '{{.Driver}}'").trim(), "overlay2");
}
