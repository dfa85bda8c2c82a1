//! userns-remap: dockerd maps container root to the first subordinate id of
//! a user (`/etc/subuid`, `/etc/subgid`) and keeps that engine's whole state
//! in `<data-root>/<uid>.<gid>/`, every file owned by the range. The archive
//! records the setting, the user's ranges and the subtree ([`Remap`]), so a
//! restore can refuse an engine or host where the files would belong to
//! nobody ([`mismatch`]).

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

/// The user `"userns-remap": "default"` stands for (dockerd creates it).
pub(crate) const DEFAULT_USER: &str = "dockremap";
/// Where the subordinate ranges are.
pub(crate) const SUBUID: &str = "/etc/subuid";
pub(crate) const SUBGID: &str = "/etc/subgid";

/// One `start:count` range of `/etc/subuid` or `/etc/subgid`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Range {
    pub start: u64,
    pub count: u64,
}

impl std::fmt::Display for Range {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}-{}", self.start, self.start + self.count.saturating_sub(1))
    }
}

/// An engine's remapping as the archive records it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Remap {
    /// The `userns-remap` value as configured (`default`, `user`, `user:group`).
    pub setting: String,
    /// The user (and group) whose ranges are used.
    pub user: String,
    pub group: String,
    pub subuid: Vec<Range>,
    pub subgid: Vec<Range>,
    /// `<uid>.<gid>`: the subtree of the data-root holding the engine's state.
    pub subtree: String,
}

/// The files to read the ranges from ([`Default`]: the host's).
#[derive(Debug, Clone)]
pub(crate) struct IdFiles {
    pub subuid: PathBuf,
    pub subgid: PathBuf,
}

impl Default for IdFiles {
    fn default() -> Self {
        Self { subuid: SUBUID.into(), subgid: SUBGID.into() }
    }
}

/// The user and group a `userns-remap` value names: `default` is
/// `dockremap:dockremap`, `user` is `user:user`.
pub(crate) fn names(setting: &str) -> (String, String) {
    let (u, g) = setting.split_once(':').unwrap_or((setting, setting));
    let u = if u == "default" { DEFAULT_USER } else { u };
    let g = if g == "default" { DEFAULT_USER } else { g };
    (u.to_string(), g.to_string())
}

/// The ranges of `name` in a subuid/subgid text, in file order. A line may
/// name the user by its numeric id (`uid`), as shadow-utils allow.
pub(crate) fn ranges(text: &str, name: &str, id: Option<u32>) -> Vec<Range> {
    let id = id.map(|i| i.to_string());
    text.lines()
        .filter_map(|l| {
            let mut f = l.trim().splitn(3, ':');
            let (who, start, count) = (f.next()?, f.next()?, f.next()?);
            let ours = who == name || id.as_deref() == Some(who);
            Some(Range { start: start.trim().parse().ok()?, count: count.trim().parse().ok()? }).filter(|_| ours)
        })
        .collect()
}

/// Reads the remapping of `setting` on this host: the user's ranges and the
/// subtree (the first range of each is what container root maps to).
/// None when the user has no range: dockerd would not start.
pub(crate) fn load(setting: &str, files: &IdFiles) -> Option<Remap> {
    let (user, group) = names(setting);
    let read = |p: &Path| std::fs::read_to_string(p).unwrap_or_default();
    let uid = nix::unistd::User::from_name(&user).ok().flatten().map(|u| u.uid.as_raw());
    let gid = nix::unistd::Group::from_name(&group).ok().flatten().map(|g| g.gid.as_raw());
    let subuid = ranges(&read(&files.subuid), &user, uid);
    let subgid = ranges(&read(&files.subgid), &group, gid);
    let subtree = format!("{}.{}", subuid.first()?.start, subgid.first()?.start);
    Some(Remap { setting: setting.into(), user, group, subuid, subgid, subtree })
}

/// The remapping that owns a data-root, from what is on disk: the
/// `<uid>.<gid>` subtree (the running daemon's, `running`, when there are
/// several) and the user whose first subordinate range starts there. None
/// without a subtree. The setting recorded is the user (`user:group` when
/// they differ), which names the same ids as `default` or the value once set.
pub(crate) fn observe(data_root: &Path, running: Option<&Path>, files: &IdFiles) -> Option<Remap> {
    let dirs = super::facts::userns_dirs(data_root).ok()?;
    let dir = match running {
        Some(r) => dirs.into_iter().find(|d| d == r)?,
        None if dirs.len() == 1 => dirs.into_iter().next()?,
        None => return None,
    };
    let subtree = dir.file_name()?.to_string_lossy().into_owned();
    let (uid, gid) = subtree.split_once('.')?;
    let (uid, gid): (u64, u64) = (uid.parse().ok()?, gid.parse().ok()?);
    let read = |p: &Path| std::fs::read_to_string(p).unwrap_or_default();
    let (subuid_text, subgid_text) = (read(&files.subuid), read(&files.subgid));
    let owner = |text: &str, start: u64| {
        text.lines().find_map(|l| {
            let f: Vec<&str> = l.trim().splitn(3, ':').collect();
            (f.len() == 3 && f[1].parse() == Ok(start)).then(|| f[0].to_string())
        })
    };
    let user = owner(&subuid_text, uid).unwrap_or_else(|| uid.to_string());
    let group = owner(&subgid_text, gid).unwrap_or_else(|| gid.to_string());
    let setting = if user == group { user.clone() } else { format!("{user}:{group}") };
    let (subuid, subgid) = (ranges(&subuid_text, &user, None), ranges(&subgid_text, &group, None));
    Some(Remap { setting, user, group, subuid, subgid, subtree })
}

/// Why an archive's remapping cannot go onto an engine: `archived` as the
/// archive records it, `engine` the target's setting, `host` the target's
/// ranges for the archived user.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Mismatch {
    /// The engine has another `userns-remap` (or none, or the archive had none).
    Setting { archived: Option<String>, engine: Option<String> },
    /// The host's ranges for the user differ: the files would belong to others.
    Ranges { user: String, file: &'static str, archived: Vec<Range>, host: Vec<Range> },
}

impl std::fmt::Display for Mismatch {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let some = |s: &Option<String>| s.as_deref().map_or("none".to_string(), |v| format!("`{v}`"));
        let list =
            |r: &[Range]| if r.is_empty() { "none".to_string() } else { r.iter().map(Range::to_string).collect::<Vec<_>>().join(", ") };
        match self {
            Mismatch::Setting { archived, engine } => write!(
                f,
                "the archive was made by an engine with userns-remap {}, this engine has {}: its state would be invisible to Docker; set \"userns-remap\" to the archive's value in daemon.json (or remove it) first",
                some(archived),
                some(engine)
            ),
            Mismatch::Ranges { user, file, archived, host } => write!(
                f,
                "{file} gives {user} {} here but the archive's files belong to {}: add the archive's range for {user} to {file} first",
                list(host),
                list(archived)
            ),
        }
    }
}

/// Checks that `archived` (None: the archive has no remapping) fits an
/// engine configured with `engine` on a host with `files`.
pub(crate) fn mismatch(archived: Option<&Remap>, engine: Option<&str>, files: &IdFiles) -> Option<Mismatch> {
    let user = |s: &str| names(s);
    let same = match (archived, engine) {
        (None, None) => return None,
        (Some(a), Some(e)) => user(&a.setting) == user(e),
        _ => false,
    };
    let archived_setting = archived.map(|a| a.setting.clone());
    if !same {
        return Some(Mismatch::Setting { archived: archived_setting, engine: engine.map(String::from) });
    }
    let a = archived.expect("both set");
    let here = load(&a.setting, files);
    let (uid, gid) = here.map(|h| (h.subuid, h.subgid)).unwrap_or_default();
    if uid != a.subuid {
        return Some(Mismatch::Ranges { user: a.user.clone(), file: SUBUID, archived: a.subuid.clone(), host: uid });
    }
    if gid != a.subgid {
        return Some(Mismatch::Ranges { user: a.group.clone(), file: SUBGID, archived: a.subgid.clone(), host: gid });
    }
    None
}

/// The data-root of a running daemon that reports `docker_root_dir`: with
/// remapping, dockerd reports the `<uid>.<gid>` subtree, not the data-root.
pub(crate) fn data_root_of(docker_root_dir: &Path, remapped: bool) -> PathBuf {
    let subtree = docker_root_dir.file_name().is_some_and(|n| super::facts::is_uid_gid(&n.to_string_lossy()));
    match (remapped && subtree, docker_root_dir.parent()) {
        (true, Some(p)) => p.to_path_buf(),
        _ => docker_root_dir.to_path_buf(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_and_ranges() {
        assert_eq!(names("default"), ("dockremap".into(), "dockremap".into()));
        assert_eq!(names("alice:staff"), ("alice".into(), "staff".into()));
        let text = "bob:100000:65536\nalice:300000:65536\n# x\n1001:400000:10\nalice:500000:5\n";
        assert_eq!(ranges(text, "alice", None), vec![Range { start: 300000, count: 65536 }, Range { start: 500000, count: 5 }]);
        assert_eq!(ranges(text, "carol", Some(1001)), vec![Range { start: 400000, count: 10 }]);
        assert_eq!(Range { start: 300000, count: 65536 }.to_string(), "300000-365535");
    }

    #[test]
    fn mismatches() {
        let d = tempfile::tempdir().unwrap();
        let files = IdFiles { subuid: d.path().join("subuid"), subgid: d.path().join("subgid") };
        std::fs::write(&files.subuid, "nosuchuser-x:300000:65536\n").unwrap();
        std::fs::write(&files.subgid, "nosuchuser-x:300000:65536\n").unwrap();
        let a = load("nosuchuser-x", &files).unwrap();
        assert_eq!(a.subtree, "300000.300000");
        assert_eq!(mismatch(None, None, &files), None);
        assert_eq!(mismatch(Some(&a), Some("nosuchuser-x"), &files), None);
        let m = mismatch(Some(&a), None, &files).unwrap();
        assert!(m.to_string().contains("userns-remap `nosuchuser-x`, this engine has none"), "{m}");
        assert!(matches!(mismatch(None, Some("default"), &files), Some(Mismatch::Setting { .. })));
        std::fs::write(&files.subuid, "nosuchuser-x:400000:65536\n").unwrap();
        let m = mismatch(Some(&a), Some("nosuchuser-x"), &files).unwrap();
        assert!(
            m.to_string().contains("/etc/subuid gives nosuchuser-x 400000-465535 here but the archive's files belong to 300000-365535"),
            "{m}"
        );
    }

    #[test]
    fn observed_from_the_subtree() {
        let d = tempfile::tempdir().unwrap();
        let files = IdFiles { subuid: d.path().join("subuid"), subgid: d.path().join("subgid") };
        std::fs::write(&files.subuid, "bob:100000:65536\nnosuchuser-x:300000:65536\n").unwrap();
        std::fs::write(&files.subgid, "nosuchuser-x:300000:65536\n").unwrap();
        let root = d.path().join("root");
        std::fs::create_dir_all(root.join("image")).unwrap();
        assert_eq!(observe(&root, None, &files), None);
        std::fs::create_dir_all(root.join("300000.300000")).unwrap();
        let r = observe(&root, None, &files).unwrap();
        assert_eq!((r.setting.as_str(), r.subtree.as_str()), ("nosuchuser-x", "300000.300000"));
        assert_eq!(r, load("nosuchuser-x", &files).unwrap());
        std::fs::create_dir_all(root.join("100000.100000")).unwrap();
        assert_eq!(observe(&root, None, &files), None, "two subtrees and no running daemon to choose");
        assert_eq!(observe(&root, Some(&root.join("300000.300000")), &files).unwrap().user, "nosuchuser-x");
    }

    #[test]
    fn running_root_of_a_remapped_engine() {
        assert_eq!(data_root_of(Path::new("/d/300000.300000"), true), PathBuf::from("/d"));
        assert_eq!(data_root_of(Path::new("/d/300000.300000"), false), PathBuf::from("/d/300000.300000"));
        assert_eq!(data_root_of(Path::new("/var/lib/docker"), true), PathBuf::from("/var/lib/docker"));
    }
}
