//! Scanning /proc for what uses a data-root: dockerd processes (identified by
//! argv and their effective `--data-root`) and processes whose open files or
//! working directory are below it (typically `containerd-shim` of containers
//! kept alive by live-restore). The proc root is a parameter for tests.

use super::error::Leftover;
use crate::docker::daemon_json::DaemonJson;
use crate::docker::unit::{self, DATA_ROOT_FLAGS};
use crate::docker::{DEFAULT_DAEMON_JSON, DEFAULT_DATA_ROOT};
use std::path::{Path, PathBuf};

/// A process seen in /proc.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProcInfo {
    /// Process id.
    pub pid: u32,
    /// `comm` (short name).
    pub comm: String,
    /// Command line (empty for kernel threads and zombies).
    pub argv: Vec<String>,
}

/// All numeric entries of `proc_root`, skipping those that vanish meanwhile.
pub fn pids(proc_root: &Path) -> Vec<u32> {
    let Ok(rd) = std::fs::read_dir(proc_root) else {
        return Vec::new();
    };
    let mut v: Vec<u32> = rd.flatten().filter_map(|e| e.file_name().to_str()?.parse().ok()).collect();
    v.sort_unstable();
    v
}

/// Reads a process's argv (NUL-separated `cmdline`).
pub fn read_cmdline(proc_root: &Path, pid: u32) -> std::io::Result<Vec<String>> {
    let raw = std::fs::read(proc_root.join(pid.to_string()).join("cmdline"))?;
    Ok(split_nul(&raw))
}

/// Splits NUL-separated data (cmdline, environ) into strings.
pub(crate) fn split_nul(raw: &[u8]) -> Vec<String> {
    raw.split(|b| *b == 0).filter(|s| !s.is_empty()).map(|s| String::from_utf8_lossy(s).into_owned()).collect()
}

/// Reads one process; `None` if it is gone.
pub fn process(proc_root: &Path, pid: u32) -> Option<ProcInfo> {
    let dir = proc_root.join(pid.to_string());
    let comm = std::fs::read_to_string(dir.join("comm")).ok()?.trim().to_string();
    let argv = read_cmdline(proc_root, pid).ok()?;
    Some(ProcInfo { pid, comm, argv })
}

/// Whether a process exists and is not a zombie.
pub fn alive(proc_root: &Path, pid: u32) -> bool {
    match std::fs::read_to_string(proc_root.join(pid.to_string()).join("stat")) {
        Ok(stat) => stat.rsplit_once(')').map(|(_, rest)| rest.trim_start()).is_some_and(|r| !r.starts_with(['Z', 'X'])),
        Err(_) => false,
    }
}

/// Whether argv is a dockerd invocation.
pub fn is_dockerd(argv: &[String]) -> bool {
    argv.first().and_then(|a| Path::new(a).file_name()).is_some_and(|n| n == "dockerd")
}

/// The data-root a dockerd with this argv uses: its flag, else `data-root`
/// in its `--config-file` (default /etc/docker/daemon.json), else the default.
pub fn dockerd_data_root(argv: &[String]) -> PathBuf {
    if let Some(v) = unit::flag_value(argv, DATA_ROOT_FLAGS) {
        return PathBuf::from(v);
    }
    let cfg = unit::flag_value(argv, &["--config-file"]).unwrap_or_else(|| DEFAULT_DAEMON_JSON.into());
    DaemonJson::load(Path::new(&cfg)).ok().and_then(|c| c.data_root().map(|(p, _)| p)).unwrap_or_else(|| PathBuf::from(DEFAULT_DATA_ROOT))
}

/// [`dockerd_data_root`] for the running dockerd `pid`: a rootless one
/// (run by another uid than root, as the host sees it) defaults to its
/// user's `$XDG_CONFIG_HOME/docker/daemon.json` and
/// `$XDG_DATA_HOME/docker` (`~/.config`, `~/.local/share`), as dockerd does
/// when it runs rootless; its environment says where they are.
pub fn running_data_root(proc_root: &Path, pid: u32, argv: &[String]) -> PathBuf {
    let dir = proc_root.join(pid.to_string());
    let status = std::fs::read_to_string(dir.join("status")).unwrap_or_default();
    let uid = status.lines().find_map(|l| l.strip_prefix("Uid:")).and_then(|v| v.split_whitespace().next()?.parse::<u32>().ok());
    if uid.is_none_or(|u| u == 0) || unit::flag_value(argv, DATA_ROOT_FLAGS).is_some() {
        return dockerd_data_root(argv);
    }
    let environ = std::fs::read(dir.join("environ")).unwrap_or_default();
    let var = |k: &str| {
        environ
            .split(|b| *b == 0)
            .find_map(|e| e.strip_prefix(format!("{k}=").as_bytes()))
            .map(|v| PathBuf::from(String::from_utf8_lossy(v).into_owned()))
    };
    let home = var("HOME").unwrap_or_default();
    let config = unit::flag_value(argv, &["--config-file"])
        .map(PathBuf::from)
        .unwrap_or_else(|| var("XDG_CONFIG_HOME").unwrap_or_else(|| home.join(".config")).join("docker/daemon.json"));
    let from_json = DaemonJson::load(&config).ok().and_then(|c| c.data_root().map(|(p, _)| p));
    from_json.unwrap_or_else(|| var("XDG_DATA_HOME").unwrap_or_else(|| home.join(".local/share")).join("docker"))
}

/// Resolves symlinks when possible so `/var/lib/docker` and its target compare equal.
pub fn normalize(p: &Path) -> PathBuf {
    std::fs::canonicalize(p).unwrap_or_else(|_| p.to_path_buf())
}

/// dockerd processes whose data-root is `data_root`.
pub(crate) fn dockerds_using(proc_root: &Path, data_root: &Path) -> Vec<ProcInfo> {
    let want = normalize(data_root);
    pids(proc_root)
        .into_iter()
        .filter_map(|pid| process(proc_root, pid))
        .filter(|p| is_dockerd(&p.argv) && alive(proc_root, p.pid))
        .filter(|p| normalize(&running_data_root(proc_root, p.pid, &p.argv)) == want)
        .collect()
}

/// Processes (other than this one) with an open fd or cwd at or below `path`.
pub(crate) fn holders_below(proc_root: &Path, path: &Path) -> Vec<Leftover> {
    let want = normalize(path);
    let me = std::process::id();
    let mut out = Vec::new();
    for pid in pids(proc_root).into_iter().filter(|p| *p != me) {
        let dir = proc_root.join(pid.to_string());
        if let Some(hit) = first_link_below(&dir, &want) {
            let comm = std::fs::read_to_string(dir.join("comm")).unwrap_or_default().trim().to_string();
            out.push(Leftover::Holder { pid, comm, path: hit });
        }
    }
    out
}

fn first_link_below(pid_dir: &Path, want: &Path) -> Option<PathBuf> {
    let cwd = std::fs::read_link(pid_dir.join("cwd")).ok().filter(|c| c.starts_with(want));
    cwd.or_else(|| {
        std::fs::read_dir(pid_dir.join("fd"))
            .ok()?
            .flatten()
            .filter_map(|e| std::fs::read_link(e.path()).ok())
            .find(|t| t.starts_with(want))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fake_proc(pid: u32, comm: &str, argv: &[&str], state: char) -> tempfile::TempDir {
        let root = tempfile::tempdir().unwrap();
        let d = root.path().join(pid.to_string());
        std::fs::create_dir_all(d.join("fd")).unwrap();
        std::fs::write(d.join("comm"), format!("{comm}\n")).unwrap();
        let mut cmd = argv.join("\0");
        cmd.push('\0');
        std::fs::write(d.join("cmdline"), cmd).unwrap();
        std::fs::write(d.join("stat"), format!("{pid} ({comm}) {state} 1 2 3")).unwrap();
        root
    }

    #[test]
    fn finds_dockerd_by_data_root() {
        let p = fake_proc(42, "dockerd", &["/usr/bin/dockerd", "--data-root=/srv/d", "-H", "unix:///x"], 'S');
        assert_eq!(dockerds_using(p.path(), Path::new("/srv/d"))[0].pid, 42);
        assert!(dockerds_using(p.path(), Path::new("/var/lib/docker")).is_empty());
        let z = fake_proc(43, "dockerd", &["dockerd", "-g", "/srv/d"], 'Z');
        assert!(dockerds_using(z.path(), Path::new("/srv/d")).is_empty());
    }

    #[test]
    fn a_rootless_dockerd_uses_its_users_data_root_not_the_systems() {
        let p = fake_proc(44, "dockerd", &["dockerd", "--iptables=false"], 'S');
        let d = p.path().join("44");
        std::fs::write(d.join("status"), "Name:\tdockerd\nUid:\t1000\t1000\t1000\t1000\n").unwrap();
        std::fs::write(d.join("environ"), "PATH=/bin\0HOME=/home/alice\0").unwrap();
        assert!(dockerds_using(p.path(), Path::new("/var/lib/docker")).is_empty(), "not the system daemon's");
        assert_eq!(dockerds_using(p.path(), Path::new("/home/alice/.local/share/docker"))[0].pid, 44);
        std::fs::write(d.join("environ"), "HOME=/home/alice\0XDG_DATA_HOME=/data/a\0").unwrap();
        assert_eq!(running_data_root(p.path(), 44, &["dockerd".into()]), Path::new("/data/a/docker"));
    }

    #[test]
    fn holder_by_fd_link() {
        let p = fake_proc(7, "containerd-shim", &["containerd-shim-runc-v2"], 'S');
        let target = tempfile::tempdir().unwrap();
        let file = target.path().join("f");
        std::fs::write(&file, "x").unwrap();
        std::os::unix::fs::symlink(&file, p.path().join("7/fd/3")).unwrap();
        let h = holders_below(p.path(), target.path());
        assert!(matches!(&h[..], [Leftover::Holder { pid: 7, .. }]), "{h:?}");
        assert!(h[0].to_string().contains("live-restore"));
    }
}
