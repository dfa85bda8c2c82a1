//! The Ansible role (contrib/ansible) with Debian's ansible against two
//! booted Debian 12 guests, each with its own dockerd, reached through
//! community.docker's nsenter connection: the .deb installed, the layout
//! reported, a bind move on one guest, a backup of both into one restic
//! repository served on loopback, a second run that changes nothing, check
//! mode, and a failure that carries dockroot's message.

use std::process::Command;

use crate::systemd_host::SystemdHost;
use crate::util::*;

/// A host with dockroot from the .deb only (the role installs it), its own
/// hostname, restic, and the controller's Python bound in for Ansible's modules.
fn guest(s: &Scratch, name: &str, extra_binds: &[String]) -> SystemdHost {
    let mut binds = vec!["/usr/bin/python3.11:/usr/bin/python3".to_string(), "/usr/lib/python3.11:/usr/lib/python3.11".to_string()];
    binds.extend(extra_binds.iter().cloned());
    let hostname = name.to_string();
    SystemdHost::boot_with("systemd-host.sh", s, name, &binds, move |root| {
        std::fs::remove_file(root.join("usr/local/bin/dockroot")).unwrap();
        std::fs::write(root.join("etc/hostname"), format!("{hostname}\n")).unwrap();
        // restic links libc only: the host's runs in the bookworm guest.
        std::fs::copy("/usr/bin/restic", root.join("usr/local/bin/restic")).unwrap();
    })
}

fn playbook(s: &Scratch, inventory: &std::path::Path, extra: &[&str]) -> (bool, String) {
    let o = run(Command::new("ansible-playbook")
        .arg("-i")
        .arg(inventory)
        .arg(repo().join("contrib/ansible/site.yml"))
        .args(extra)
        .env("ANSIBLE_ROLES_PATH", repo().join("contrib/ansible/roles"))
        .env("ANSIBLE_HOST_KEY_CHECKING", "False")
        .env("ANSIBLE_NOCOLOR", "1")
        .env("ANSIBLE_LOCAL_TEMP", s.join("ansible-tmp"))
        .env("ANSIBLE_REMOTE_TEMP", "/tmp/.ansible"));
    (o.status.success(), text(&o))
}

/// `changed=N` of a host's PLAY RECAP line.
fn changed(out: &str, host: &str) -> u32 {
    let line = out.lines().find(|l| l.starts_with(host) && l.contains("ok=")).unwrap_or_else(|| panic!("no recap for {host}:\n{out}"));
    line.split_whitespace().find_map(|w| w.strip_prefix("changed=")).unwrap().parse().unwrap()
}

#[test]
fn ansible_role_moves_backs_up_is_idempotent_and_checks() {
    require_root();
    assert!(
        Command::new("ansible-playbook").arg("--version").output().is_ok_and(|o| o.status.success()),
        "ansible is missing: run scripts/setup.sh"
    );
    let s = Scratch::new("fleet");
    let out = ok(Command::new("bash").arg(repo().join("scripts/package.sh")).arg("deb").arg(s.join("deb")));
    let deb = String::from_utf8_lossy(&out.stdout).trim().lines().last().unwrap().to_string();
    // Guest A moves its data-root to a disk of its own.
    let disk = LoopFs::new(&s, "ext4", "1G");
    let a = guest(&s, "fleet-a", &[format!("{}:/data", disk.mnt.display())]);
    let b = guest(&s, "fleet-b", &[]);
    for h in [&a, &b] {
        h.ok("systemctl is-active docker && docker volume create appdata && docker volume ls -q");
    }
    // One restic repository for the fleet, on the controller's loopback (the guests share its network).
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    std::fs::create_dir_all(s.join("rest")).unwrap();
    let mut server = Command::new("rclone")
        .args(["serve", "restic", "--addr", &format!("127.0.0.1:{port}")])
        .arg(s.join("rest"))
        .env("RCLONE_CONFIG", "/nonexistent/rclone.conf")
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    struct Kill<'a>(&'a mut std::process::Child);
    impl Drop for Kill<'_> {
        fn drop(&mut self) {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }
    let _server = Kill(&mut server);
    let repo_url = format!("rest:http://127.0.0.1:{port}/");
    let inventory = s.join("inventory");
    std::fs::write(
        &inventory,
        format!(
            "[docker_hosts]\n\
             fleet-a ansible_nsenter_pid={} dockroot_move_to=/data/docker dockroot_finalize=true\n\
             fleet-b ansible_nsenter_pid={}\n\
             [docker_hosts:vars]\n\
             ansible_connection=community.docker.nsenter\n\
             ansible_python_interpreter=/usr/bin/python3\n\
             ansible_become=false\n\
             dockroot_deb={deb}\n\
             dockroot_restic_repository={repo_url}\n\
             dockroot_restic_password=fleet-secret\n\
             dockroot_install_restic=false\n\
             dockroot_restic_keep='--keep-last 3'\n",
            a.pid, b.pid
        ),
    )
    .unwrap();

    // Check mode on a fresh fleet: nothing is installed, nothing changes.
    let (okv, out) = playbook(&s, &inventory, &["--check"]);
    assert!(okv, "{out}");
    assert!(a.sh("test -e /data/docker/volumes").status.code() != Some(0), "check mode moved the data-root:\n{out}");
    assert!(a.sh("command -v dockroot").status.code() != Some(0), "check mode installed dockroot:\n{out}");

    // The real run: install, move A, back up both.
    let (okv, out) = playbook(&s, &inventory, &["-e", "dockroot_backup_now=true"]);
    assert!(okv, "{out}");
    assert!(out.contains("data-root /var/lib/docker"), "the layout is reported:\n{out}");
    a.ok("test -d /data/docker/volumes/appdata && findmnt -n /var/lib/docker && docker volume ls -q | grep -x appdata");
    a.ok("grep -q ' /var/lib/docker ' /etc/fstab && systemctl is-enabled dockroot-backup.timer");
    b.ok("docker volume ls -q | grep -x appdata && systemctl is-active dockroot-backup.timer");
    let snaps = run(Command::new("restic")
        .args(["--repo", &repo_url, "snapshots", "--json", "--tag", "dockroot"])
        .env("RESTIC_PASSWORD", "fleet-secret")
        .env("RESTIC_CACHE_DIR", s.join("cache")));
    let v: serde_json::Value = serde_json::from_slice(&snaps.stdout).unwrap();
    let mut hosts: Vec<&str> = v.as_array().unwrap().iter().map(|x| x["hostname"].as_str().unwrap()).collect();
    hosts.sort();
    assert_eq!(hosts, ["fleet-a", "fleet-b"], "{v}");

    // A second run changes nothing.
    let (okv, out) = playbook(&s, &inventory, &[]);
    assert!(okv, "{out}");
    assert_eq!((changed(&out, "fleet-a"), changed(&out, "fleet-b")), (0, 0), "the second run changed something:\n{out}");

    // Check mode with a move to do: a dry run only.
    let (okv, out) = playbook(&s, &inventory, &["--check", "--limit", "fleet-b", "-e", "dockroot_move_to=/srv/docker"]);
    assert!(okv, "{out}");
    assert!(out.contains("--dry-run") || out.contains("Move the data-root"), "{out}");
    b.ok("test ! -e /srv/docker/volumes && ! findmnt -n /var/lib/docker && docker volume ls -q | grep -x appdata");

    // A refused move fails the play with dockroot's message and exit code.
    b.ok("mkdir -p /srv/full && touch /srv/full/x");
    let (okv, out) = playbook(&s, &inventory, &["--limit", "fleet-b", "-e", "dockroot_move_to=/srv/full"]);
    assert!(!okv, "a refused move passed:\n{out}");
    assert!(out.contains("dockroot move failed (exit 2)") && out.contains("/srv/full"), "{out}");
    b.ok("docker volume ls -q | grep -x appdata");
    drop(a);
    drop(b);
    drop(disk);
}
