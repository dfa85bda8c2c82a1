//! The packages: the .deb installs and removes cleanly on a fresh Debian 12
//! (a systemd-nspawn guest from the cached rootfs), and the static binary
//! runs in a root filesystem that has no libc at all.

use std::process::Command;

use crate::systemd_host::SystemdHost;
use crate::util::*;

#[test]
fn deb_installs_and_removes_cleanly_on_debian_12() {
    require_root();
    let s = Scratch::new("deb");
    let out = ok(Command::new("bash").arg(repo().join("scripts/package.sh")).arg("deb").arg(s.join("out")));
    let deb = std::path::PathBuf::from(String::from_utf8_lossy(&out.stdout).trim().lines().last().unwrap().to_string());
    assert!(deb.is_file(), "no .deb at {}: {}", deb.display(), text(&out));
    let listing = String::from_utf8(ok(Command::new("dpkg-deb").arg("-c").arg(&deb)).stdout).unwrap();
    for f in [
        "./usr/bin/dockroot",
        "./usr/share/man/man1/dockroot.1.gz",
        "./usr/share/man/man1/dockroot-move.1.gz",
        "./usr/share/bash-completion/completions/dockroot",
        "./usr/share/zsh/vendor-completions/_dockroot",
        "./usr/share/fish/vendor_completions.d/dockroot.fish",
        "./lib/systemd/system/dockroot-backup.service",
        "./lib/systemd/system/dockroot-backup.timer",
        "./lib/systemd/system/dockroot-failure@.service",
        "./usr/share/dockroot/dockroot-mount.conf",
        "./etc/default/dockroot-backup",
    ] {
        assert!(listing.contains(f), "{f} missing from the package:\n{listing}");
    }
    let conffiles = String::from_utf8(ok(Command::new("dpkg-deb").arg("-I").arg(&deb).arg("conffiles")).stdout).unwrap();
    assert_eq!(conffiles.trim(), "/etc/default/dockroot-backup");
    // The man page renders (man -l on the packaged file).
    let x = s.join("x");
    ok(Command::new("dpkg-deb").arg("-x").arg(&deb).arg(&x));
    let man =
        ok(Command::new("man").arg("-l").arg(x.join("usr/share/man/man1/dockroot.1.gz")).env("MANPAGER", "cat").env("COLUMNS", "100"));
    let page = String::from_utf8_lossy(&man.stdout);
    assert!(page.contains("dockroot") && page.contains("Exit codes") && page.contains("backup"), "{page}");

    let host = SystemdHost::boot(&s, "deb", &[]);
    host.ok("rm -f /usr/local/bin/dockroot");
    std::fs::copy(&deb, host.path("/root/dockroot.deb")).unwrap();
    host.ok("dpkg -i /root/dockroot.deb");
    let v = host.ok("dockroot --version");
    assert!(v.starts_with("dockroot "), "{v}");
    assert_eq!(host.ok("command -v dockroot").trim(), "/usr/bin/dockroot");
    host.ok("test -s /usr/share/man/man1/dockroot.1.gz && zcat /usr/share/man/man1/dockroot-backup.1.gz | grep -q compress");
    host.ok("grep -q 'complete -F _dockroot' /usr/share/bash-completion/completions/dockroot");
    host.ok("grep -q '^#compdef dockroot' /usr/share/zsh/vendor-completions/_dockroot");
    host.ok("grep -q 'complete -c dockroot' /usr/share/fish/vendor_completions.d/dockroot.fish");
    let state = host.ok("systemctl show -p LoadState,UnitFileState dockroot-backup.timer");
    assert!(state.contains("LoadState=loaded") && state.contains("UnitFileState=disabled"), "{state}");
    host.ok("systemctl enable dockroot-backup.timer && systemctl is-enabled dockroot-backup.timer");
    host.ok("systemctl show -p LoadState dockroot-backup.service | grep -q loaded");
    host.ok("systemctl disable dockroot-backup.timer");

    // Remove: everything goes but the edited conffile; purge takes that too.
    host.ok("echo DOCKROOT_BACKUP_KEEP=3 >> /etc/default/dockroot-backup && dpkg -r dockroot");
    host.ok("! command -v dockroot && test ! -e /usr/share/man/man1/dockroot.1.gz && test ! -e /lib/systemd/system/dockroot-backup.timer \
         && test ! -e /usr/share/bash-completion/completions/dockroot && test -e /etc/default/dockroot-backup");
    let state = host.ok("systemctl show -p LoadState dockroot-backup.timer");
    assert!(state.contains("LoadState=not-found"), "{state}");
    host.ok("dpkg -P dockroot && test ! -e /etc/default/dockroot-backup && ! dpkg -s dockroot 2>/dev/null");
}

#[test]
fn static_binary_runs_without_a_libc() {
    require_root();
    let out = ok(Command::new("bash").arg(repo().join("scripts/package.sh")).arg("static"));
    let bin = std::path::PathBuf::from(String::from_utf8_lossy(&out.stdout).trim().lines().last().unwrap().to_string());
    let file = String::from_utf8(ok(Command::new("file").arg(&bin)).stdout).unwrap_or_default();
    assert!(file.contains("statically linked") || file.contains("static-pie"), "{file}");
    let s = Scratch::new("static");
    let root = s.join("root");
    std::fs::create_dir_all(root.join("proc")).unwrap();
    std::fs::copy(&bin, root.join("dockroot")).unwrap();
    fidelity_tree(&root.join("src"));
    // Nothing else: no /lib, no /usr, no loader.
    let entries: Vec<_> = std::fs::read_dir(&root).unwrap().map(|e| e.unwrap().file_name().into_string().unwrap()).collect();
    assert_eq!(entries.len(), 3, "{entries:?}");
    ok(Command::new("mount").args(["-t", "proc", "proc"]).arg(root.join("proc")));
    struct Umount(std::path::PathBuf);
    impl Drop for Umount {
        fn drop(&mut self) {
            let _ = Command::new("umount").arg(&self.0).status();
        }
    }
    let _proc = Umount(root.join("proc"));
    let v = ok(Command::new("chroot").arg(&root).args(["/dockroot", "--version"]));
    assert!(String::from_utf8_lossy(&v.stdout).starts_with("dockroot "), "{}", text(&v));
    let c = ok(Command::new("chroot").arg(&root).args(["/dockroot", "copy", "/src", "/dst", "--verify"]));
    assert!(text(&c).contains("verified"), "{}", text(&c));
    drop(_proc);
    assert_same_tree(&root.join("src"), &root.join("dst"));
}
