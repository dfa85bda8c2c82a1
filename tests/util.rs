//! Shared test helpers: the binary, scratch dirs, loop-mounted filesystems and
//! the independent tools in tests/tools.

#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

/// The data-root `root` as the one tree of an archive (`plan::backup::write_archive`).
pub fn data_tree(root: &Path) -> [dockroot::archive::TreeSource; 1] {
    [dockroot::archive::TreeSource::dir(dockroot::archive::Tree::Data, root)]
}

pub fn require_root() {
    assert!(nix::unistd::geteuid().is_root(), "these tests need root (devices, xattrs, loop mounts); run them with sudo or as root");
}

/// The dockroot under test: this build's, or `DOCKROOT_TEST_BIN` (to show
/// that a regression test fails on an older build).
pub fn bin() -> PathBuf {
    std::env::var_os("DOCKROOT_TEST_BIN").map_or_else(|| PathBuf::from(env!("CARGO_BIN_EXE_dockroot")), PathBuf::from)
}

pub fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

pub fn tool(name: &str) -> PathBuf {
    repo().join("tests/tools").join(name)
}

pub fn script(name: &str) -> PathBuf {
    repo().join("scripts/lib").join(name)
}

/// Runs a command and returns its output; panics with the command line if it
/// cannot be started.
pub fn run(cmd: &mut Command) -> Output {
    cmd.output().unwrap_or_else(|e| panic!("cannot run {cmd:?}: {e}"))
}

/// Runs a command that must succeed.
pub fn ok(cmd: &mut Command) -> Output {
    let out = run(cmd);
    assert!(out.status.success(), "{cmd:?} failed: {}\n{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    out
}

pub fn sh(script: &str) -> Output {
    ok(Command::new("bash").arg("-c").arg(script))
}

/// Runs dockroot with args.
pub fn dockroot<I, S>(args: I) -> Output
where
    I: IntoIterator<Item = S>,
    S: AsRef<std::ffi::OsStr>,
{
    run(Command::new(bin()).args(args))
}

pub fn text(o: &Output) -> String {
    format!("{}{}", String::from_utf8_lossy(&o.stdout), String::from_utf8_lossy(&o.stderr))
}

/// A scratch directory under /var/tmp, removed on drop (unless the test failed
/// and DOCKROOT_KEEP is set).
pub struct Scratch(pub PathBuf);

impl Scratch {
    pub fn new(tag: &str) -> Scratch {
        let d = tempfile::Builder::new().prefix(&format!("dockroot-{tag}-")).tempdir_in("/var/tmp").unwrap();
        Scratch(d.keep())
    }
    pub fn path(&self) -> &Path {
        &self.0
    }
    pub fn join(&self, p: &str) -> PathBuf {
        self.0.join(p)
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        if std::thread::panicking() && std::env::var_os("DOCKROOT_KEEP").is_some() {
            eprintln!("kept {}", self.0.display());
            return;
        }
        // Unmount anything a failed test left below.
        let _ = Command::new("bash")
            .arg("-c")
            .arg(format!("grep -o ' {}[^ ]*' /proc/self/mountinfo | sort -r | xargs -r -n1 umount -l", self.0.display()))
            .status();
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// A loop-mounted filesystem (ext4, xfs, btrfs) of `size`, unmounted on drop.
pub struct LoopFs {
    pub mnt: PathBuf,
}

impl LoopFs {
    pub fn new(scratch: &Scratch, fstype: &str, size: &str) -> LoopFs {
        static N: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
        let n = N.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let mnt = scratch.join(&format!("fs{n}-{fstype}"));
        ok(Command::new("bash").arg(script("loopfs.sh")).args(["make", fstype, size]).arg(&mnt));
        LoopFs { mnt }
    }
}

impl Drop for LoopFs {
    fn drop(&mut self) {
        let _ = Command::new("bash").arg(script("loopfs.sh")).arg("drop").arg(&self.mnt).status();
    }
}

/// Builds the fidelity tree (every entry type and metadata kind) at `root`.
pub fn fidelity_tree(root: &Path) {
    ok(Command::new("python3").arg(tool("mkfidelity.py")).arg(root));
}

/// Compares two trees with the independent comparer; panics with its report.
pub fn assert_same_tree(a: &Path, b: &Path) {
    let out = run(Command::new("python3").arg(tool("treecmp.py")).arg(a).arg(b));
    assert!(out.status.success(), "trees differ: {} vs {}\n{}", a.display(), b.display(), text(&out));
}

pub fn json(o: &Output) -> serde_json::Value {
    serde_json::from_slice(&o.stdout).unwrap_or_else(|e| panic!("not JSON ({e}): {}", text(o)))
}
