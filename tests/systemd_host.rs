//! A real systemd host for tests: the cached debootstrap rootfs booted with
//! systemd-nspawn (scripts/lib/systemd-host.sh: Debian 12, Docker 20.10; or
//! scripts/lib/sid-host.sh: Debian sid, Docker 28 and containerd 2), with
//! dockroot's binary installed inside. Powered off on drop.

#![allow(dead_code)]

use std::path::PathBuf;
use std::process::{Command, Output};

use crate::util::*;

pub struct SystemdHost {
    pub root: PathBuf,
    pub pid: String,
    /// The script that built and booted it.
    script: &'static str,
    name: String,
    binds: Vec<String>,
}

impl SystemdHost {
    /// Copies the cached rootfs into `scratch`, installs the dockroot binary
    /// as /usr/local/bin/dockroot and boots it; `binds` are `SRC:DST` pairs.
    pub fn boot(scratch: &Scratch, name: &str, binds: &[String]) -> SystemdHost {
        Self::boot_with("systemd-host.sh", scratch, name, binds, |_| {})
    }

    /// Like [`SystemdHost::boot`] with another host script; `prepare` edits
    /// the copied rootfs before it boots.
    pub fn boot_with(
        host_script: &'static str,
        scratch: &Scratch,
        name: &str,
        binds: &[String],
        prepare: impl FnOnce(&std::path::Path),
    ) -> SystemdHost {
        Self::boot_copy((host_script, "copy"), scratch, name, binds, prepare)
    }

    /// The rootless variant of systemd-host.sh (`copy-rootless`): Debian 12
    /// with alice's rootless Docker enabled in her user manager.
    pub fn boot_rootless(scratch: &Scratch, name: &str, binds: &[String], prepare: impl FnOnce(&std::path::Path)) -> SystemdHost {
        Self::boot_copy(("systemd-host.sh", "copy-rootless"), scratch, name, binds, prepare)
    }

    /// Like [`SystemdHost::boot_with`], copying the rootfs with `copy.1` of `copy.0`.
    fn boot_copy(
        (host_script, copy): (&'static str, &str),
        scratch: &Scratch,
        name: &str,
        binds: &[String],
        prepare: impl FnOnce(&std::path::Path),
    ) -> SystemdHost {
        let root = scratch.join(&format!("host-{name}"));
        ok(Command::new("bash").arg(script(host_script)).arg(copy).arg(&root));
        std::fs::copy(bin(), root.join("usr/local/bin/dockroot")).unwrap();
        prepare(&root);
        let mut h = SystemdHost { root, pid: String::new(), script: host_script, name: name.into(), binds: binds.to_vec() };
        h.start();
        h
    }

    fn start(&mut self) {
        let mut cmd = Command::new("bash");
        cmd.arg(script(self.script)).arg("boot").arg(&self.root).arg(&self.name);
        for b in &self.binds {
            cmd.arg("--bind").arg(b);
        }
        let out = ok(&mut cmd);
        self.pid = String::from_utf8_lossy(&out.stdout).trim().lines().last().unwrap_or_default().to_string();
        assert!(!self.pid.is_empty(), "no pid from {} boot: {}", self.script, text(&out));
    }

    /// Powers the host off and boots it again on the same rootfs.
    pub fn reboot(&mut self) {
        ok(Command::new("bash").arg(script(self.script)).args(["stop", &self.pid]));
        self.start();
    }

    /// Runs a shell command inside the host.
    pub fn sh(&self, script_text: &str) -> Output {
        run(Command::new("bash").arg(script(self.script)).args(["exec", &self.pid, "bash", "-c", script_text]))
    }

    /// Runs a shell command inside the host that must succeed.
    pub fn ok(&self, script_text: &str) -> String {
        let out = self.sh(script_text);
        assert!(out.status.success(), "in the systemd host: `{script_text}` failed:\n{}", text(&out));
        String::from_utf8_lossy(&out.stdout).to_string()
    }

    pub fn path(&self, inside: &str) -> PathBuf {
        self.root.join(inside.trim_start_matches('/'))
    }
}

impl Drop for SystemdHost {
    fn drop(&mut self) {
        let _ = Command::new("bash").arg(script(self.script)).args(["stop", &self.pid]).status();
    }
}
