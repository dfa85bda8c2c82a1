//! Rootless Docker (issue 19): a dockerd run by an ordinary user's systemd
//! user manager, inside rootlesskit's user namespace. Its data-root is
//! `~/.local/share/docker` unless `~/.config/docker/daemon.json` says
//! otherwise, its socket `$XDG_RUNTIME_DIR/docker.sock`, and its files
//! belong to the user (in-container uid 0) and to the user's subordinate
//! ids from /etc/subuid and /etc/subgid (in-container ids 1 and up, in the
//! order the ranges are listed: rootlesskit maps them with newuidmap).
//!
//! [`Host::find_all`] lists the rootless daemons of every user that has a
//! running user manager (`/run/user/UID/systemd`) or linger
//! (`/var/lib/systemd/linger/NAME`): a user's daemon exists when the user
//! has a docker.service user unit or a data-root. [`choose`] picks the
//! daemon a command works on, and refuses an ambiguous host, naming the
//! choices.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::api::DockerApi;
use super::daemon_json::DaemonJson;
use super::error::{DockerError, Result};
pub use crate::util::idmap::{IdMap, IdRange};

/// Storage drivers a rootless daemon can use, as data-root subdirectories.
const DRIVERS: [&str; 4] = ["overlay2", "fuse-overlayfs", "vfs", "btrfs"];

/// The ranges of `name` (or of its numeric `id`) in an /etc/subuid or
/// /etc/subgid text (`NAME:START:COUNT` lines), in file order.
pub fn parse_subid(text: &str, name: &str, id: u32) -> Vec<IdRange> {
    let id = id.to_string();
    text.lines()
        .filter_map(|l| {
            let mut f = l.trim().splitn(3, ':');
            let (who, start, count) = (f.next()?, f.next()?, f.next()?);
            (who == name || who == id).then_some(())?;
            Some(IdRange { start: start.trim().parse().ok()?, count: count.trim().parse().ok()? })
        })
        .filter(|r| r.count > 0)
        .collect()
}

/// The owner of a rootless daemon and its id maps: what an archive records
/// and what a restore compares.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RootlessIds {
    pub user: String,
    pub uids: IdMap,
    pub gids: IdMap,
}

impl RootlessIds {
    /// What differs between the archive's ids (`self`) and this host's,
    /// in words; empty when they are the same.
    pub fn differences(&self, here: &RootlessIds) -> Vec<String> {
        let mut d = Vec::new();
        if self.user != here.user {
            d.push(format!("user {} in the archive, {} here", self.user, here.user));
        }
        for (what, a, b) in [("uids", &self.uids, &here.uids), ("gids", &self.gids, &here.gids)] {
            if a != b {
                d.push(format!("{what} {a} in the archive, {b} here (owner + /etc/sub{} ranges)", &what[..3]));
            }
        }
        d
    }
}

/// One user's rootless daemon, as found on disk and (if it runs) its socket.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct RootlessDaemon {
    pub user: String,
    pub uid: u32,
    pub gid: u32,
    pub home: PathBuf,
    pub data_root: PathBuf,
    /// `data-root in …/daemon.json` or `the rootless default`.
    pub data_root_source: String,
    pub daemon_json: PathBuf,
    pub socket: PathBuf,
    /// The user's unit directory (drop-ins go below it).
    pub unit_dir: PathBuf,
    pub running: bool,
    pub storage_driver: Option<String>,
    pub linger: bool,
    pub ids: RootlessIds,
}

impl RootlessDaemon {
    /// The daemon's API.
    pub fn api(&self) -> DockerApi {
        DockerApi::new(&self.socket)
    }

    /// How it runs, in words for `status`.
    pub fn service_line(&self) -> String {
        format!(
            "user manager{}, {}",
            if self.linger { " with linger" } else { "" },
            if self.running { format!("answering on {}", self.socket.display()) } else { "not running".into() }
        )
    }

    /// Where a bind move's drop-in goes: the user's docker.service.d.
    pub fn dropin(&self) -> PathBuf {
        self.unit_dir.join("docker.service.d/dockroot-mount.conf")
    }
}

/// An account of the password database.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Account {
    name: String,
    uid: u32,
    gid: u32,
    home: PathBuf,
}

fn parse_passwd(text: &str) -> Vec<Account> {
    text.lines()
        .filter_map(|l| {
            let f: Vec<&str> = l.split(':').collect();
            (f.len() >= 6).then_some(())?;
            Some(Account { name: f[0].into(), uid: f[2].parse().ok()?, gid: f[3].parse().ok()?, home: f[5].into() })
        })
        .collect()
}

/// The host whose `/` is `root` (tests use a directory).
#[derive(Debug, Clone)]
pub struct Host {
    pub root: PathBuf,
}

impl Default for Host {
    fn default() -> Self {
        Host { root: "/".into() }
    }
}

impl Host {
    fn path(&self, p: &Path) -> PathBuf {
        self.root.join(p.strip_prefix("/").unwrap_or(p))
    }

    fn read(&self, p: &str) -> String {
        std::fs::read_to_string(self.path(Path::new(p))).unwrap_or_default()
    }

    fn accounts(&self) -> Vec<Account> {
        parse_passwd(&self.read("/etc/passwd"))
    }

    fn lingering(&self) -> Vec<String> {
        let dir = self.path(Path::new("/var/lib/systemd/linger"));
        let names = std::fs::read_dir(dir).into_iter().flatten().flatten();
        names.map(|e| e.file_name().to_string_lossy().into_owned()).collect()
    }

    /// Uids with a running user manager: its runtime directory has `systemd/`.
    fn managed(&self) -> Vec<u32> {
        let dir = self.path(Path::new("/run/user"));
        let uids = std::fs::read_dir(dir).into_iter().flatten().flatten();
        uids.filter(|e| e.path().join("systemd").is_dir()).filter_map(|e| e.file_name().to_str()?.parse().ok()).collect()
    }

    /// The rootless daemons of every user with linger or a running manager.
    pub fn find_all(&self) -> Vec<RootlessDaemon> {
        self.scan().0
    }

    /// Users with linger or a running manager whose daemon could not be
    /// read (an invalid daemon.json), each as its error: a command that
    /// was to pick the only daemon must not overlook them.
    pub fn unreadable(&self) -> Vec<String> {
        self.scan().1
    }

    fn scan(&self) -> (Vec<RootlessDaemon>, Vec<String>) {
        let (linger, managed) = (self.lingering(), self.managed());
        let (mut found, mut errors) = (Vec::new(), Vec::new());
        for a in self.accounts().into_iter().filter(|a| a.uid != 0 && (linger.contains(&a.name) || managed.contains(&a.uid))) {
            match self.daemon(&a, linger.contains(&a.name)) {
                Ok(d) => found.extend(d),
                Err(e) => errors.push(format!("rootless Docker of user {}: {e}", a.name)),
            }
        }
        found.sort_by_key(|d| d.uid);
        found.dedup_by_key(|d| d.uid);
        (found, errors)
    }

    /// `name`'s rootless daemon; an error names what is missing.
    pub fn find(&self, name: &str) -> Result<RootlessDaemon> {
        let Some(a) = self.accounts().into_iter().find(|a| a.name == name) else {
            return Err(DockerError::Rootless { user: name.into(), reason: "no such user in /etc/passwd".into() });
        };
        let linger = self.lingering().contains(&a.name);
        self.daemon(&a, linger)?.ok_or_else(|| DockerError::Rootless {
            user: name.into(),
            reason: format!(
                "no rootless Docker found: neither {} nor {} exists (run `dockerd-rootless-setuptool.sh install` as {name})",
                a.home.join(".config/systemd/user/docker.service").display(),
                a.home.join(".local/share/docker").display()
            ),
        })
    }

    /// The account's daemon, `None` when it has neither unit nor data-root.
    fn daemon(&self, a: &Account, linger: bool) -> Result<Option<RootlessDaemon>> {
        let unit_dir = a.home.join(".config/systemd/user");
        let daemon_json = a.home.join(".config/docker/daemon.json");
        let cfg = DaemonJson::load(&self.path(&daemon_json))?;
        let (data_root, data_root_source) = match cfg.data_root() {
            Some((p, key)) => (p, format!("`{key}` in {}", daemon_json.display())),
            None => (a.home.join(".local/share/docker"), "the rootless default".into()),
        };
        if !self.path(&unit_dir.join("docker.service")).is_file() && !self.path(&data_root).is_dir() {
            return Ok(None);
        }
        let socket = PathBuf::from(format!("/run/user/{}/docker.sock", a.uid));
        let api = DockerApi::new(self.path(&socket));
        let info = api.ping().then(|| api.info().ok()).flatten();
        let on_disk = || DRIVERS.iter().find(|d| self.path(&data_root.join(d)).is_dir()).map(|d| d.to_string());
        let storage_driver = cfg.storage_driver().map(String::from).or(info.as_ref().map(|i| i.driver.clone())).or_else(on_disk);
        let (subuid, subgid) = (self.read("/etc/subuid"), self.read("/etc/subgid"));
        let ids = RootlessIds {
            user: a.name.clone(),
            uids: IdMap { owner: a.uid, ranges: parse_subid(&subuid, &a.name, a.uid) },
            gids: IdMap { owner: a.gid, ranges: parse_subid(&subgid, &a.name, a.uid) },
        };
        Ok(Some(RootlessDaemon {
            user: a.name.clone(),
            uid: a.uid,
            gid: a.gid,
            home: a.home.clone(),
            data_root,
            data_root_source,
            daemon_json,
            socket,
            unit_dir,
            running: info.is_some(),
            storage_driver,
            linger,
            ids,
        }))
    }
}

/// The unit directories of `user`'s manager, highest priority first
/// (systemd.unit(5), user units).
pub fn user_unit_dirs(user: &str) -> Vec<PathBuf> {
    let home = nix::unistd::User::from_name(user).ok().flatten().map(|u| u.dir);
    let mut dirs: Vec<PathBuf> = home.into_iter().map(|h| h.join(".config/systemd/user")).collect();
    dirs.extend(["/etc/systemd/user", "/usr/lib/systemd/user", "/lib/systemd/user"].map(PathBuf::from));
    dirs
}

/// The first existing ancestor of `path` that user `uid` (group `gid`)
/// cannot search (no x bit for it), so a rootless daemon pointed at `path`
/// could not reach it; `None` when every existing ancestor is searchable.
/// Supplementary groups are not considered: a group-only grant is reported.
pub fn unsearchable_ancestor(path: &Path, uid: u32, gid: u32) -> Option<PathBuf> {
    use std::os::unix::fs::MetadataExt;
    let mut ancestors: Vec<&Path> = path.ancestors().skip(1).collect();
    ancestors.reverse();
    ancestors.into_iter().find_map(|a| {
        let m = std::fs::metadata(a).ok()?;
        let bit = if m.uid() == uid {
            0o100
        } else if m.gid() == gid {
            0o010
        } else {
            0o001
        };
        (m.mode() & bit == 0).then(|| a.to_path_buf())
    })
}

/// Which daemon a command is for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Request {
    /// The only daemon there is.
    Auto,
    /// `--rootful`: the system daemon.
    Rootful,
    /// `--user NAME`: that user's rootless daemon.
    User(String),
}

/// What [`choose`] decided.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Choice {
    Rootful,
    Rootless(Box<RootlessDaemon>),
}

/// Picks the daemon: as requested; or, with [`Request::Auto`], the only one
/// there is (the system daemon when there is none at all). Several — the
/// system daemon and a rootless one, or two users' — are refused, naming
/// the choices. `rootful` says whether a system daemon exists.
pub fn choose(req: &Request, rootful: bool, found: Vec<RootlessDaemon>, host: &Host) -> Result<Choice> {
    match req {
        Request::Rootful => Ok(Choice::Rootful),
        Request::User(name) => match found.into_iter().find(|d| &d.user == name) {
            Some(d) => Ok(Choice::Rootless(Box::new(d))),
            None => host.find(name).map(|d| Choice::Rootless(Box::new(d))),
        },
        Request::Auto => {
            let mut choices: Vec<String> = found.iter().map(|d| format!("--user {} ({})", d.user, d.data_root.display())).collect();
            match (rootful, found.len()) {
                (_, 0) => Ok(Choice::Rootful),
                (false, 1) => Ok(Choice::Rootless(Box::new(found.into_iter().next().expect("one")))),
                _ => {
                    if rootful {
                        choices.insert(0, "--rootful (the system daemon)".into());
                    }
                    Err(DockerError::Ambiguous { choices: choices.join(", ") })
                }
            }
        }
    }
}

/// Whether this host has a system daemon: its data-root holds something or
/// a daemon answers on its socket (a socket file alone proves nothing:
/// systemd leaves docker.socket's file behind when it stops it).
pub fn rootful_present(host: &Host) -> bool {
    let dr = host.path(Path::new(super::DEFAULT_DATA_ROOT));
    let used = std::fs::read_dir(dr).map(|mut d| d.next().is_some()).unwrap_or(false);
    used || ["/run/docker.sock", "/var/run/docker.sock"].iter().any(|s| DockerApi::new(host.path(Path::new(s))).ping())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn host() -> (tempfile::TempDir, Host) {
        let d = tempfile::tempdir().unwrap();
        let h = Host { root: d.path().into() };
        let w = |p: &str, t: &str| {
            let p = d.path().join(p);
            std::fs::create_dir_all(p.parent().unwrap()).unwrap();
            std::fs::write(p, t).unwrap();
        };
        w("etc/passwd", "root:x:0:0:root:/root:/bin/bash\nalice:x:1000:1000::/home/alice:/bin/bash\nbob:x:1001:1001::/home/bob:/bin/sh\n");
        w("etc/subuid", "alice:100000:65536\nbob:165536:65536\n1000:300000:10\n");
        w("etc/subgid", "alice:100000:65536\n");
        w("var/lib/systemd/linger/alice", "");
        w("home/alice/.config/systemd/user/docker.service", "[Service]\nExecStart=dockerd-rootless.sh\n");
        w("home/alice/.local/share/docker/overlay2/l/x", "");
        std::fs::create_dir_all(d.path().join("run/user/1001/systemd")).unwrap();
        (d, h)
    }

    #[test]
    fn finds_users_with_linger_or_a_manager_and_a_daemon() {
        let (d, h) = host();
        let all = h.find_all();
        assert_eq!(all.len(), 1, "bob has a manager but no daemon: {all:?}");
        let a = &all[0];
        assert_eq!((a.user.as_str(), a.uid, a.linger, a.running), ("alice", 1000, true, false));
        assert_eq!(a.data_root, Path::new("/home/alice/.local/share/docker"));
        assert_eq!(a.socket, Path::new("/run/user/1000/docker.sock"));
        assert_eq!(a.storage_driver.as_deref(), Some("overlay2"));
        assert_eq!(a.ids.uids.ranges, [IdRange { start: 100000, count: 65536 }, IdRange { start: 300000, count: 10 }]);
        assert_eq!(a.dropin(), Path::new("/home/alice/.config/systemd/user/docker.service.d/dockroot-mount.conf"));
        std::fs::create_dir_all(d.path().join("home/bob/.config/docker")).unwrap();
        std::fs::write(d.path().join("home/bob/.config/docker/daemon.json"), r#"{"data-root":"/srv/bob","storage-driver":"vfs"}"#).unwrap();
        std::fs::create_dir_all(d.path().join("srv/bob")).unwrap();
        assert!(h.unreadable().is_empty());
        let all = h.find_all();
        assert_eq!(all.iter().map(|d| d.user.as_str()).collect::<Vec<_>>(), ["alice", "bob"]);
        assert_eq!((all[1].data_root.as_path(), all[1].storage_driver.as_deref()), (Path::new("/srv/bob"), Some("vfs")));
        assert!(all[1].data_root_source.contains("daemon.json"));
        std::fs::write(d.path().join("home/bob/.config/docker/daemon.json"), "{,}").unwrap();
        assert_eq!(h.find_all().len(), 1);
        let bad = h.unreadable();
        assert!(bad.len() == 1 && bad[0].contains("user bob") && bad[0].contains("daemon.json"), "{bad:?}");
    }

    #[test]
    fn choose_refuses_ambiguity_naming_the_choices() {
        let (d, h) = host();
        let found = h.find_all();
        assert!(matches!(choose(&Request::Auto, false, found.clone(), &h).unwrap(), Choice::Rootless(d) if d.user == "alice"));
        assert_eq!(choose(&Request::Auto, false, vec![], &h).unwrap(), Choice::Rootful);
        let e = choose(&Request::Auto, true, found.clone(), &h).unwrap_err().to_string();
        assert!(e.contains("--rootful") && e.contains("--user alice (/home/alice/.local/share/docker)"), "{e}");
        assert_eq!(choose(&Request::Rootful, true, found.clone(), &h).unwrap(), Choice::Rootful);
        let e = choose(&Request::User("bob".into()), true, found, &h).unwrap_err().to_string();
        assert!(e.contains("bob") && e.contains("dockerd-rootless-setuptool.sh"), "{e}");
        assert!(!rootful_present(&h));
        std::fs::create_dir_all(d.path().join("var/lib/docker/image")).unwrap();
        assert!(rootful_present(&h));
    }

    #[test]
    fn a_target_behind_a_closed_directory_is_named() {
        use std::os::unix::fs::PermissionsExt;
        let d = tempfile::tempdir().unwrap();
        let closed = d.path().join("closed");
        std::fs::create_dir_all(closed.join("in")).unwrap();
        std::fs::set_permissions(d.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
        std::fs::set_permissions(&closed, std::fs::Permissions::from_mode(0o700)).unwrap();
        assert_eq!(unsearchable_ancestor(&closed.join("in/docker"), 4242, 4242), Some(closed.clone()));
        assert_eq!(unsearchable_ancestor(&d.path().join("open/docker"), 4242, 4242), None);
        std::os::unix::fs::chown(&closed, Some(4242), None).unwrap();
        assert_eq!(unsearchable_ancestor(&closed.join("in/docker"), 4242, 4242), None, "the owner may search it");
    }

    #[test]
    fn id_maps_go_both_ways_across_ranges() {
        let m = IdMap { owner: 1000, ranges: vec![IdRange { start: 100000, count: 10 }, IdRange { start: 500, count: 5 }] };
        assert_eq!(
            (m.inside(1000), m.inside(100000), m.inside(100009), m.inside(500), m.inside(504)),
            (Some(0), Some(1), Some(10), Some(11), Some(15))
        );
        assert_eq!((m.inside(505), m.inside(0)), (None, None));
        for i in 0..16 {
            assert_eq!(m.inside(m.host(i).unwrap()), Some(i));
        }
        assert_eq!((m.host(16), m.size()), (None, 16));
        let a = RootlessIds { user: "alice".into(), uids: m.clone(), gids: m.clone() };
        let b = RootlessIds { uids: IdMap { owner: 1001, ..m.clone() }, ..a.clone() };
        assert!(a.differences(&a).is_empty());
        let d = a.differences(&b);
        assert!(d.len() == 1 && d[0].contains("1000 + [100000:10,500:5]") && d[0].contains("/etc/subuid"), "{d:?}");
    }
}
