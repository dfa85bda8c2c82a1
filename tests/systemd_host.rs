//! A real systemd host for tests: the cached debootstrap rootfs booted with
//! systemd-nspawn (scripts/lib/systemd-host.sh), with dockroot's binary
//! installed inside. Powered off on drop.

#![allow(dead_code)]

use std::path::PathBuf;
use std::process::{Command, Output};

use crate::util::*;

pub struct SystemdHost {
    pub root: PathBuf,
    pub pid: String,
}

impl SystemdHost {
    /// Copies the cached rootfs into `scratch`, installs the dockroot binary
    /// as /usr/local/bin/dockroot and boots it; `binds` are `SRC:DST` pairs.
    pub fn boot(scratch: &Scratch, name: &str, binds: &[String]) -> SystemdHost {
        let root = scratch.join(&format!("host-{name}"));
        ok(Command::new("bash").arg(script("systemd-host.sh")).arg("copy").arg(&root));
        std::fs::copy(bin(), root.join("usr/local/bin/dockroot")).unwrap();
        let mut cmd = Command::new("bash");
        cmd.arg(script("systemd-host.sh")).arg("boot").arg(&root).arg(name);
        for b in binds {
            cmd.arg("--bind").arg(b);
        }
        let out = ok(&mut cmd);
        let pid = String::from_utf8_lossy(&out.stdout).trim().lines().last().unwrap_or_default().to_string();
        assert!(!pid.is_empty(), "no pid from systemd-host.sh boot: {}", text(&out));
        SystemdHost { root, pid }
    }

    /// Runs a shell command inside the host.
    pub fn sh(&self, script_text: &str) -> Output {
        run(Command::new("bash").arg(script("systemd-host.sh")).args(["exec", &self.pid, "bash", "-c", script_text]))
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
        let _ = Command::new("bash").arg(script("systemd-host.sh")).args(["stop", &self.pid]).status();
    }
}
