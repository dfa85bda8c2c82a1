//! dockroot against a modern engine: Debian sid's docker.io 28.5 and
//! containerd 2.1 under systemd in an nspawn guest (scripts/lib/sid-host.sh),
//! in both image stores, and archives crossing engine versions with the
//! host's Docker 20.10 (issue 8).

use std::path::Path;
use std::process::Command;

use crate::systemd_host::SystemdHost;
use crate::util::*;

/// Boots the sid guest in `store` mode with the fixture script inside and
/// `out` bound on /mnt/out.
pub(crate) fn sid(s: &Scratch, name: &str, store: &str, out: &Path) -> SystemdHost {
    let bind = format!("{}:/mnt/out", out.display());
    SystemdHost::boot_with("sid-host.sh", s, name, &[bind], |root| {
        std::fs::copy(script("docker-fixture.sh"), root.join("usr/local/bin/docker-fixture.sh")).unwrap();
        ok(Command::new("bash").arg(script("sid-host.sh")).args(["store"]).arg(root).arg(store));
    })
}

pub(crate) fn populate(h: &SystemdHost) {
    h.ok("bash /usr/local/bin/docker-fixture.sh populate /run/docker.sock");
}

/// Image ids with their tags, container ids with names and states, volumes:
/// what the daemon holds, one per line, sorted.
pub(crate) fn lists(h: &SystemdHost) -> String {
    h.ok("{ docker images -a --no-trunc --format '{{.ID}} {{.Repository}}:{{.Tag}}' | sed 's/ <none>:<none>$//'; \
          docker ps -a --no-trunc --format '{{.ID}} {{.Names}} {{.State}}'; docker volume ls -q; } | sort")
}

fn status(h: &SystemdHost) -> serde_json::Value {
    serde_json::from_str(&h.ok("dockroot --json status")).expect("status --json")
}

/// Both image stores on Docker 28: `status` finds each (from the API, not
/// daemon.json), the containerd root, its size and namespaces; a move that
/// would leave the images in containerd's root is refused and changes
/// nothing, and a backup plans to carry that root.
#[test]
fn modern_engine_status_and_containerd_store_refusals() {
    require_root();
    let s = Scratch::new("sid-stores");
    let out = s.join("out");
    std::fs::create_dir(&out).unwrap();
    let mut h = sid(&s, "sidstores", "overlay2", &out);
    eprintln!("guest: {}", h.ok("dpkg-query -W docker.io containerd | tr '\\n' ' '"));
    populate(&h);

    let j = status(&h);
    assert_eq!(j["engine"]["image_store"], "graph-driver", "{j}");
    assert!(j["engine_version"].as_str().unwrap().starts_with("28."), "{j}");
    let c = &j["engine"]["containerd"];
    assert_eq!((c["serving"].as_str(), c["dirs"]["root"].as_str()), (Some("system"), Some("/var/lib/containerd")), "{j}");
    assert!(j["containerd_warning"].is_null(), "{j}");
    // The graph driver keeps everything in the data-root: backup works, and
    // a bind move survives a reboot (fstab line, RequiresMountsFor drop-in).
    h.ok("dockroot -q backup -o /mnt/out/graph.tar.zst --yes");
    let meta = h.ok("dockroot inspect /mnt/out/graph.tar.zst");
    assert!(meta.contains("image store:    graph driver") && meta.contains("containerd:     2.1.9"), "{meta}");
    let before = lists(&h);
    // containerd holds no image here: the move neither plans nor restarts it.
    let since = "systemctl show -p ActiveEnterTimestampMonotonic containerd.service";
    let up = h.ok(since);
    let plan = h.ok("dockroot --json move --to /srv/docker --dry-run");
    assert!(serde_json::from_str::<serde_json::Value>(&plan).unwrap()["plan"]["containerd"].is_null(), "{plan}");
    h.ok("dockroot -q move --to /srv/docker --yes");
    assert_eq!(lists(&h), before);
    assert_eq!(h.ok(since), up, "the graph-driver move restarted containerd");
    assert!(!h.path("/etc/systemd/system/containerd.service.d").exists());
    h.reboot();
    assert_eq!(lists(&h), before, "after the reboot");
    let src = h.ok("findmnt -n -o SOURCE /var/lib/docker");
    assert!(src.trim().ends_with("/srv/docker]"), "mounted at boot from fstab: {src}");
    // The trap of a hand-started dockerd (pidfile mode) on the old path
    // without the mount: it runs on an empty tree, and status says where the data is.
    h.ok("systemctl stop docker.socket docker.service && umount /var/lib/docker \
          && (setsid dockerd -p /run/hand.pid -H unix:///run/hand.sock >/run/hand.log 2>&1 &) \
          && for i in $(seq 300); do docker -H unix:///run/hand.sock info >/dev/null 2>&1 && break; sleep 0.1; done");
    let hand = "dockroot --docker-socket /run/hand.sock --service pidfile:/run/hand.pid";
    let j: serde_json::Value = serde_json::from_str(&h.ok(&format!("{hand} --json status"))).unwrap();
    let stranded: Vec<&str> = j["stranded_trees"].as_array().unwrap().iter().filter_map(|v| v.as_str()).collect();
    assert!(stranded.iter().any(|t| t.starts_with("/var/lib/docker.dockroot-old-")) && stranded.contains(&"/srv/docker"), "{j}");
    assert!(h.ok(&format!("{hand} status")).contains("whatever starts dockerd at boot"));
    h.ok("kill $(cat /run/hand.pid) && while [ -e /run/hand.pid ]; do sleep 0.1; done");

    // The containerd image store, on a fresh data-root.
    h.ok("sed -i '/srv.docker/d' /etc/fstab && rm -rf /etc/systemd/system/docker.service.d /var/lib/dockroot && systemctl daemon-reload");
    h.ok("rm -rf /var/lib/docker /var/lib/docker.dockroot-old-* /var/lib/containerd/* /srv/docker && systemctl restart containerd");
    ok(Command::new("bash").arg(script("sid-host.sh")).arg("store").arg(&h.root).arg("containerd"));
    h.ok("systemctl start docker.socket docker.service");
    populate(&h);
    let before = lists(&h);
    let j = status(&h);
    let c = &j["engine"]["containerd"];
    assert_eq!(j["engine"]["image_store"], "containerd", "{j}");
    assert!(j["engine"]["image_store_source"].as_str().unwrap().contains("DriverStatus"), "{j}");
    assert_eq!(c["namespaces"], serde_json::json!(["moby"]), "{j}");
    assert!(c["root_bytes"].as_u64().unwrap() > 1 << 20, "{j}");
    // Backup and move carry containerd's root now: nothing to warn about.
    assert!(j["containerd_warning"].is_null(), "{j}");
    let text_status = h.ok("dockroot status");
    assert!(text_status.contains("image store:      containerd image store"), "{text_status}");

    // The graph-driver archive is refused on an engine pinned to the containerd store.
    let o = h.sh("dockroot restore /mnt/out/graph.tar.zst --force --yes");
    assert!(!o.status.success() && text(&o).contains("features.containerd-snapshotter is true"), "{}", text(&o));
    assert_eq!(lists(&h), before);

    // Backup now carries containerd's root (tests/engine_store.rs); its dry run says so.
    let o = h.sh("dockroot backup -o /mnt/out/ctd.tar.zst --dry-run");
    assert!(o.status.success() && text(&o).contains("with containerd's root /var/lib/containerd"), "{}", text(&o));
    // Move: a store shared with another namespace is refused, naming it.
    h.ok("ctr namespaces create k8s.io");
    let o = h.sh("dockroot move --to /srv/docker --yes");
    let msg = text(&o);
    assert!(!o.status.success() && msg.contains("k8s.io") && msg.contains("--shared-store"), "{msg}");
    assert!(!h.path("/srv/docker").exists());
    h.ok("ctr namespaces remove k8s.io");
    h.ok("systemctl is-active docker.service");
    assert_eq!(lists(&h), before);
}

/// An archive of Docker 20.10 (the host's) restores onto Docker 28 without
/// --force: the engine check accepts a newer engine and says the tree cannot
/// go back, and the health check does not trip over `<none>:<none>`. An
/// archive of Docker 28 is refused on the host's 20.10.
#[test]
fn docker_2010_archive_restores_onto_28_and_back_is_refused() {
    require_root();
    let s = Scratch::new("sid-upgrade");
    let out = s.join("out");
    std::fs::create_dir(&out).unwrap();
    let dir = tempfile::Builder::new().prefix("sidup").tempdir_in("/tmp").unwrap();
    let daemon = |cmd: &str| ok(Command::new("bash").arg(script("dockerd.sh")).arg(cmd).arg(dir.path()));
    daemon("start");
    let sock = dir.path().join("sock");
    let populated = run(Command::new("bash").arg(script("docker-fixture.sh")).arg("populate").arg(&sock));
    assert!(populated.status.success(), "{}", text(&populated));
    // A live backup (pidfile service), so the archive carries the daemon's lists.
    let (root, sockarg) = (dir.path().join("root").display().to_string(), sock.display().to_string());
    let pidfile = format!("pidfile:{}", dir.path().join("pid").display());
    let live = out.join("d2010.tar.zst").display().to_string();
    // Docker 20.10 started without --containerd runs its own containerd, whose
    // root is inside the data-root: status finds it from the daemon's command line.
    let st = json(&must(dockroot(["--json", "status", "--service", &pidfile, "--data-root", &root, "--docker-socket", &sockarg])));
    let c = &st["engine"]["containerd"];
    assert_eq!((st["engine"]["image_store"].as_str(), c["serving"].as_str()), (Some("graph-driver"), Some("managed")), "{st}");
    assert_eq!(c["dirs"]["root"].as_str(), Some(format!("{root}/containerd/daemon").as_str()), "{st}");
    let args =
        ["-q", "--service", &pidfile, "--data-root", &root, "--docker-socket", &sockarg, "backup", "-o", &live, "--no-config", "--yes"];
    must(dockroot(args));
    let images_2010 = ok(Command::new("docker").arg("-H").arg(format!("unix://{sockarg}")).args(["images", "-a", "-q", "--no-trunc"]));
    daemon("stop");
    let mut want: Vec<String> = String::from_utf8_lossy(&images_2010.stdout).lines().map(String::from).collect();
    want.sort();
    want.dedup();

    // A fresh sid install: the engine's own empty data-root is wiped too, so no --force.
    let h = sid(&s, "sidup", "overlay2", &out);
    h.ok("systemctl stop docker.socket docker.service && rm -rf /var/lib/docker");
    let o = h.sh("dockroot restore /mnt/out/d2010.tar.zst --yes");
    let msg = text(&o);
    assert!(o.status.success(), "restore of a 20.10 archive onto 28 failed:\n{msg}");
    assert!(msg.contains("is newer") && msg.contains("cannot go back to Docker 20.10"), "{msg}");
    let mut got: Vec<String> = h.ok("docker images -a -q --no-trunc").lines().map(String::from).collect();
    got.sort();
    got.dedup();
    assert_eq!(got, want, "image ids after the restore");
    let ps = h.ok("docker ps -a --format '{{.Names}} {{.State}}' | sort");
    assert!(ps.contains("dockroot-runner running") && ps.contains("dockroot-stopped exited"), "{ps}");
    let vol = h.ok("docker run --rm --network none -v dockroot-vol:/vol dockroot-test/app:1 sh -c 'cd /vol && sha256sum -c SHA256SUMS'");
    assert!(vol.contains("seq.txt: OK"), "{vol}");
    // The opaque dir hides the base's files; the capability and the opaque
    // xattr are still on the layers Docker 28 now uses.
    let data = h.ok("docker run --rm --network none dockroot-test/app:1 ls /opt/data");
    assert_eq!(data.trim(), "c.txt");
    let xattrs = h.ok("getfattr -R -h -d -m '^(security\\.capability|trusted\\.overlay\\.opaque)$' --absolute-names /var/lib/docker/overlay2/*/diff 2>/dev/null | grep -E '^(security|trusted)' | sort | uniq -c");
    assert!(xattrs.contains("security.capability=") && xattrs.contains("trusted.overlay.opaque=\"y\""), "{xattrs}");

    // Docker 28's archive of that tree, back onto the host's 20.10: refused.
    h.ok("dockroot -q backup -o /mnt/out/d28.tar.zst --no-config --yes");
    drop(h);
    let dst = s.join("dst");
    let o = dockroot([
        &"--service" as &dyn AsRef<std::ffi::OsStr>,
        &"none",
        &"--data-root",
        &dst,
        &"--state-dir",
        &s.join("st"),
        &"restore",
        &out.join("d28.tar.zst"),
        &"--yes",
        &"--force",
    ]);
    let msg = text(&o);
    assert_eq!(o.status.code(), Some(2), "{msg}");
    assert!(msg.contains("Docker 28.5") && msg.contains("--allow-downgrade"), "{msg}");
    assert!(!dst.exists(), "a refused restore must not create {}", dst.display());
}

fn must(o: std::process::Output) -> std::process::Output {
    assert!(o.status.success(), "dockroot failed:\n{}", text(&o));
    o
}

/// The containerd image store with the containerd dockerd starts itself (no
/// `--containerd`, no containerd.service): its root is inside the data-root,
/// so nothing is refused: a backup, a wiped data-root and a restore give back
/// the same images, containers and volumes, and so does a data-root move. A
/// second namespace in that containerd is found and named.
#[test]
fn managed_containerd_store_round_trips_inside_the_data_root() {
    require_root();
    let s = Scratch::new("sid-managed");
    let out = s.join("out");
    std::fs::create_dir(&out).unwrap();
    let h = sid(&s, "sidmanaged", "containerd", &out);
    h.ok("systemctl stop docker.socket docker.service containerd.service && systemctl mask containerd.service \
          && mkdir -p /etc/systemd/system/docker.service.d \
          && printf '[Service]\\nExecStart=\\nExecStart=/usr/sbin/dockerd -H fd://\\n' >/etc/systemd/system/docker.service.d/managed.conf \
          && systemctl daemon-reload && rm -rf /var/lib/docker /var/lib/containerd/* && systemctl start docker.socket docker.service");
    populate(&h);
    h.ok("ctr --address /run/docker/containerd/containerd.sock namespaces create k8s.io");
    let j = status(&h);
    let c = &j["engine"]["containerd"];
    assert_eq!((j["engine"]["image_store"].as_str(), c["serving"].as_str()), (Some("containerd"), Some("managed")), "{j}");
    assert_eq!(c["dirs"]["root"], "/var/lib/docker/containerd/daemon", "{j}");
    assert_eq!(c["foreign_namespaces"], serde_json::json!(["k8s.io"]), "{j}");
    assert!(j["containerd_warning"].is_null(), "{j}");

    let before = lists(&h);
    h.ok("dockroot -q backup -o /mnt/out/managed.tar.zst --yes");
    let meta = h.ok("dockroot inspect /mnt/out/managed.tar.zst");
    assert!(meta.contains("image store:    containerd image store") && meta.contains("dockerd's own containerd"), "{meta}");
    h.ok("systemctl stop docker.socket docker.service && rm -rf /var/lib/docker");
    h.ok("dockroot -q restore /mnt/out/managed.tar.zst --yes");
    assert_eq!(lists(&h), before);
    let data = h.ok("docker run --rm --network none dockroot-test/app:1 ls /opt/data");
    assert_eq!(data.trim(), "c.txt");

    // A data-root move carries the managed containerd's root along.
    h.ok("dockroot -q move --method data-root --to /srv/docker --yes");
    assert_eq!(lists(&h), before);
    assert_eq!(h.ok("docker info -f '{{.DockerRootDir}}'").trim(), "/srv/docker");
    let j = status(&h);
    assert_eq!(j["engine"]["containerd"]["dirs"]["root"], "/srv/docker/containerd/daemon", "{j}");
    let data = h.ok("docker run --rm --network none dockroot-test/app:1 ls /opt/data");
    assert_eq!(data.trim(), "c.txt");
}
