//! Every mount of every container, and what a whole-engine backup does with
//! each bind source (issue 18). Most Compose apps keep their data in bind
//! mounts outside the data-root; a backup that leaves them out brings the
//! apps back on empty directories (dockerd creates a missing bind source,
//! silently). Host plumbing (the Docker socket, `/etc/localtime`, `/proc`…)
//! belongs to the host and is never carried nor written by a restore.
//!
//! The classification ([`plumbing`], [`classify`], [`survey`]) is pure and
//! tested rule by rule; the probing (the daemon's API, each container's
//! `config.v2.json` when it is stopped, the filesystem) is kept apart. The
//! restore checks the paths an archive names with the same [`plumbing`].

use std::collections::BTreeMap;
use std::path::{Component, Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::api::DockerApi;
use super::error::{DockerError, Result};
use super::mountinfo::{self, MountEntry};

/// What kind of mount a container has at a destination.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum MountType {
    Volume,
    Bind,
    Tmpfs,
    /// npipe, cluster, image: listed, never carried.
    Other,
}

impl MountType {
    fn parse(s: &str) -> MountType {
        match s {
            "volume" => MountType::Volume,
            "bind" => MountType::Bind,
            "tmpfs" => MountType::Tmpfs,
            _ => MountType::Other,
        }
    }
}

/// One mount of a container.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Mount {
    #[serde(rename = "type")]
    pub kind: MountType,
    /// The host path (a volume's `_data`); `None` for tmpfs.
    pub source: Option<PathBuf>,
    pub destination: String,
    /// The volume's name (volumes only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub volume: Option<String>,
    pub read_only: bool,
}

/// A container and its mounts, running or not.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ContainerMounts {
    pub id: String,
    /// Without the leading `/`.
    pub name: String,
    pub running: bool,
    pub mounts: Vec<Mount>,
}

#[derive(Deserialize)]
struct RawMount {
    #[serde(rename = "Type", default)]
    kind: String,
    #[serde(rename = "Name", default)]
    name: String,
    #[serde(rename = "Source", default)]
    source: String,
    #[serde(rename = "Destination", default)]
    destination: String,
    #[serde(rename = "RW", default)]
    rw: bool,
}

impl RawMount {
    fn mount(self) -> Mount {
        // Engines before 17.06 wrote no Type: a named mount is a volume.
        let kind = match self.kind.as_str() {
            "" if self.name.is_empty() => MountType::Bind,
            "" => MountType::Volume,
            k => MountType::parse(k),
        };
        let source = (!self.source.is_empty()).then(|| PathBuf::from(self.source));
        let volume = (kind == MountType::Volume && !self.name.is_empty()).then_some(self.name);
        Mount { kind, source, destination: self.destination, volume, read_only: !self.rw }
    }
}

fn tmpfs(dests: BTreeMap<String, String>, mounts: &mut Vec<Mount>) {
    for destination in dests.into_keys() {
        if !mounts.iter().any(|m| m.destination == destination) {
            mounts.push(Mount { kind: MountType::Tmpfs, source: None, destination, volume: None, read_only: false });
        }
    }
}

fn finish(id: String, name: &str, running: bool, mut mounts: Vec<Mount>) -> ContainerMounts {
    for m in &mut mounts {
        if m.kind == MountType::Tmpfs {
            m.source = None;
        }
    }
    mounts.sort_by(|a, b| a.destination.cmp(&b.destination));
    ContainerMounts { id, name: name.trim_start_matches('/').to_string(), running, mounts }
}

#[derive(Deserialize)]
struct Inspect {
    #[serde(rename = "Id")]
    id: String,
    #[serde(rename = "Name", default)]
    name: String,
    #[serde(rename = "State")]
    state: Option<InspectState>,
    #[serde(rename = "Mounts", default)]
    mounts: Option<Vec<RawMount>>,
    #[serde(rename = "HostConfig")]
    host_config: Option<TmpfsConfig>,
}

#[derive(Deserialize)]
struct InspectState {
    #[serde(rename = "Running", default)]
    running: bool,
}

#[derive(Deserialize, Default)]
struct TmpfsConfig {
    #[serde(rename = "Tmpfs", default)]
    tmpfs: Option<BTreeMap<String, String>>,
}

/// Parses `GET /containers/{id}/json`.
pub(crate) fn from_inspect(json: &[u8]) -> serde_json::Result<ContainerMounts> {
    let i: Inspect = serde_json::from_slice(json)?;
    let mut mounts: Vec<Mount> = i.mounts.unwrap_or_default().into_iter().map(RawMount::mount).collect();
    tmpfs(i.host_config.and_then(|h| h.tmpfs).unwrap_or_default(), &mut mounts);
    Ok(finish(i.id, &i.name, i.state.is_some_and(|s| s.running), mounts))
}

#[derive(Deserialize)]
struct ConfigV2 {
    #[serde(rename = "ID")]
    id: String,
    #[serde(rename = "Name", default)]
    name: String,
    #[serde(rename = "State")]
    state: Option<InspectState>,
    #[serde(rename = "MountPoints", default)]
    mount_points: Option<BTreeMap<String, RawMount>>,
}

/// Parses a stopped engine's `containers/<id>/config.v2.json` and its
/// `hostconfig.json` (`--tmpfs` mounts live only there).
pub(crate) fn from_disk(config: &[u8], hostconfig: Option<&[u8]>) -> serde_json::Result<ContainerMounts> {
    let c: ConfigV2 = serde_json::from_slice(config)?;
    let mut mounts: Vec<Mount> = c.mount_points.unwrap_or_default().into_values().map(RawMount::mount).collect();
    if let Some(h) = hostconfig {
        let h: TmpfsConfig = serde_json::from_slice(h)?;
        tmpfs(h.tmpfs.unwrap_or_default(), &mut mounts);
    }
    Ok(finish(c.id, &c.name, c.state.is_some_and(|s| s.running), mounts))
}

/// Every container's mounts: from the API when the daemon answers, else
/// from each container's files below `data_root` (a stopped engine).
pub fn read_all(api: Option<&DockerApi>, data_root: &Path) -> Result<Vec<ContainerMounts>> {
    if let Some(api) = api.filter(|a| a.ping()) {
        let ids: Vec<IdOnly> = api.get_json("/containers/json?all=1")?;
        let mut out = Vec::new();
        for c in ids {
            let endpoint = format!("/containers/{}/json", c.id);
            let body = api.raw(&endpoint)?;
            out.push(from_inspect(&body).map_err(|source| DockerError::Decode { endpoint, source })?);
        }
        return Ok(out);
    }
    let dir = data_root.join("containers");
    let entries = match std::fs::read_dir(&dir) {
        Ok(e) => e,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(source) => return Err(DockerError::Read { path: dir, source }),
    };
    let mut out = Vec::new();
    for e in entries.filter_map(|e| e.ok()) {
        let cfg = e.path().join("config.v2.json");
        let Ok(bytes) = std::fs::read(&cfg) else { continue };
        let host = std::fs::read(e.path().join("hostconfig.json")).ok();
        let c = from_disk(&bytes, host.as_deref()).map_err(|source| DockerError::Json { path: cfg, source })?;
        out.push(c);
    }
    out.sort_by(|a, b| a.name.cmp(&b.name));
    Ok(out)
}

#[derive(Deserialize)]
struct IdOnly {
    #[serde(rename = "Id")]
    id: String,
}

/// What is at a bind source, as far as the classification cares.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum SourceKind {
    Dir,
    File,
    Socket,
    Device,
    /// A fifo or anything else.
    Other,
    Missing,
}

/// What a backup does with a bind source.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "class", content = "reason", rename_all = "snake_case")]
pub enum BindClass {
    /// Carried as a tree of its own.
    AppData,
    /// Inside a tree the backup carries anyway (the data-root, containerd's
    /// root, or another carried bind source): named here.
    Inside(String),
    /// Host plumbing, never carried nor restored: why.
    Plumbing(String),
    /// Not carried for another reason (missing, a fifo, excluded).
    Skipped(String),
}

impl BindClass {
    pub fn carried(&self) -> bool {
        *self == BindClass::AppData
    }

    /// The reason, for a source that is not carried as its own tree.
    pub fn reason(&self) -> Option<&str> {
        match self {
            BindClass::AppData => None,
            BindClass::Inside(r) | BindClass::Plumbing(r) | BindClass::Skipped(r) => Some(r),
        }
    }
}

/// Top-level directories whose contents belong to the running host.
const PLUMBING_DIRS: &[&str] = &["proc", "sys", "dev", "run", "var/run", "boot", "usr"];
/// Files in /etc that describe this host, not an app.
const PLUMBING_FILES: &[&str] = &["/etc/localtime", "/etc/timezone", "/etc/hosts", "/etc/resolv.conf", "/etc/machine-id"];
/// The host's accounts, boot and engine configuration: never written from an
/// archive's bind tree, whatever its meta.json says (`--with-config`
/// restores Docker's own configuration, checked apart).
const HOST_FILES: &[&str] = &[
    "/etc/passwd",
    "/etc/shadow",
    "/etc/group",
    "/etc/gshadow",
    "/etc/sudoers",
    "/etc/sudoers.d",
    "/etc/fstab",
    "/etc/crypttab",
    "/etc/docker",
    "/etc/containerd",
    "/etc/systemd",
];

/// Why `path` is host plumbing (or no clean absolute path), judged by its
/// name alone; `None` for a path a restore may write. `data_root`'s own
/// parents are plumbing: replacing one would replace the data-root.
pub fn plumbing(path: &Path, data_root: &Path) -> Option<String> {
    if !path.is_absolute() || path.components().any(|c| matches!(c, Component::CurDir | Component::ParentDir)) {
        return Some(format!("{} is not a clean absolute path", path.display()));
    }
    let rel = path.strip_prefix("/").unwrap_or(path);
    if rel.as_os_str().is_empty() {
        return Some("/ is the host's root filesystem".into());
    }
    for d in PLUMBING_DIRS {
        if rel.starts_with(d) {
            return Some(format!("host plumbing: under /{d}"));
        }
    }
    if let Some(Component::Normal(first)) = rel.components().next()
        && first.as_encoded_bytes().starts_with(b"lib")
    {
        return Some(format!("host plumbing: under /{}", first.to_string_lossy()));
    }
    if PLUMBING_FILES.iter().any(|f| path == Path::new(f)) {
        return Some(format!("host plumbing: {} belongs to this host", path.display()));
    }
    if let Some(f) = HOST_FILES.iter().find(|f| path.starts_with(f)) {
        return Some(format!("host configuration: {f} belongs to this host"));
    }
    // A directory that holds any of the above (`/etc`, `/var`) would take it along.
    let held = PLUMBING_DIRS.iter().map(|d| format!("/{d}")).chain(PLUMBING_FILES.iter().chain(HOST_FILES).map(|f| f.to_string()));
    if let Some(f) = held.into_iter().find(|f| Path::new(f).starts_with(path)) {
        return Some(format!("holds host plumbing ({f})"));
    }
    if data_root.starts_with(path) && data_root != path {
        return Some(format!("a parent of the data-root {}", data_root.display()));
    }
    None
}

/// The trees a backup carries anyway, with what error messages call them.
#[derive(Debug, Clone, Default)]
pub struct Carried {
    pub data_root: PathBuf,
    pub containerd_root: Option<PathBuf>,
}

/// Classifies one bind source (`path` already resolved to an absolute
/// path without symlinks where it exists) by its name and its kind.
pub fn classify(path: &Path, kind: SourceKind, carried: &Carried) -> BindClass {
    if path.starts_with(&carried.data_root) {
        return BindClass::Inside(format!("inside the data-root {} (carried with it)", carried.data_root.display()));
    }
    if let Some(c) = carried.containerd_root.as_ref().filter(|c| path.starts_with(c)) {
        return BindClass::Inside(format!("inside containerd's root {} (carried with it)", c.display()));
    }
    if let Some(why) = plumbing(path, &carried.data_root) {
        return BindClass::Plumbing(why);
    }
    match kind {
        SourceKind::Dir | SourceKind::File => BindClass::AppData,
        SourceKind::Socket => BindClass::Plumbing("host plumbing: a socket".into()),
        SourceKind::Device => BindClass::Plumbing("host plumbing: a device node".into()),
        SourceKind::Other => BindClass::Skipped("neither a directory nor a regular file".into()),
        SourceKind::Missing => BindClass::Skipped("does not exist on this host".into()),
    }
}

/// A bind source of one or more containers, classified and measured.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct BindSource {
    pub path: PathBuf,
    pub kind: SourceKind,
    #[serde(flatten)]
    pub class: BindClass,
    /// Names of the containers that mount it.
    pub containers: Vec<String>,
    pub size_bytes: u64,
    /// Bytes on disk (st_blocks, holes excluded).
    #[serde(skip)]
    pub allocated: u64,
    pub entries: u64,
    /// The filesystem type it is on (from mountinfo).
    pub fstype: Option<String>,
    /// Mount points at or below it (relative; `.` for the source itself):
    /// a carried tree stops at each.
    pub mounts_inside: Vec<String>,
}

/// What [`survey`] needs to know of a path on this host.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Probed {
    /// The path with symlinks resolved (the path itself when missing).
    pub resolved: PathBuf,
    pub kind: Option<SourceKind>,
    pub size_bytes: u64,
    pub allocated: u64,
    pub entries: u64,
    pub fstype: Option<String>,
    pub mounts_inside: Vec<String>,
}

/// Every distinct bind source of `containers`, classified: overlapping
/// app-data sources are carried once (the outermost directory), the others
/// are named as inside it. `exclude` lists sources the user left out.
pub fn survey(
    containers: &[ContainerMounts],
    carried: &Carried,
    exclude: &[PathBuf],
    probe: &mut dyn FnMut(&Path) -> Probed,
) -> Vec<BindSource> {
    let mut by_path: BTreeMap<PathBuf, (Probed, Vec<String>)> = BTreeMap::new();
    for c in containers {
        for m in c.mounts.iter().filter(|m| m.kind == MountType::Bind) {
            let Some(src) = &m.source else { continue };
            // Host plumbing by its name as mounted (`/etc/localtime` is a symlink into /usr).
            let p = match plumbing(src, &carried.data_root) {
                Some(_) => Probed { resolved: src.clone(), kind: Some(kind_of(src)), ..Probed::default() },
                None => probe(src),
            };
            let e = by_path.entry(p.resolved.clone()).or_insert_with(|| (p, Vec::new()));
            if !e.1.contains(&c.name) {
                e.1.push(c.name.clone());
            }
        }
    }
    let mut out: Vec<BindSource> = by_path
        .into_iter()
        .map(|(path, (p, mut containers))| {
            containers.sort();
            let kind = p.kind.unwrap_or(SourceKind::Missing);
            let mut class = classify(&path, kind, carried);
            if class.carried() && exclude.iter().any(|x| path.starts_with(x)) {
                class = BindClass::Skipped("excluded (--exclude-bind)".into());
            }
            BindSource {
                path,
                kind,
                class,
                containers,
                size_bytes: p.size_bytes,
                allocated: p.allocated,
                entries: p.entries,
                fstype: p.fstype,
                mounts_inside: p.mounts_inside,
            }
        })
        .collect();
    // Sorted by path: an enclosing directory comes before what it holds.
    let mut tops: Vec<PathBuf> = Vec::new();
    for b in &mut out {
        if !b.class.carried() {
            continue;
        }
        if let Some(top) = tops.iter().find(|t| b.path.starts_with(t)) {
            b.class = BindClass::Inside(format!("inside the bind source {} (carried with it)", top.display()));
        } else if b.kind == SourceKind::Dir {
            tops.push(b.path.clone());
        }
    }
    out
}

/// What is at `path`, symlinks followed (as the kernel's bind mount does).
fn kind_of(path: &Path) -> SourceKind {
    use std::os::unix::fs::FileTypeExt;
    match std::fs::metadata(path).map(|m| m.file_type()) {
        Ok(t) if t.is_dir() => SourceKind::Dir,
        Ok(t) if t.is_file() => SourceKind::File,
        Ok(t) if t.is_socket() => SourceKind::Socket,
        Ok(t) if t.is_block_device() || t.is_char_device() => SourceKind::Device,
        Ok(_) => SourceKind::Other,
        Err(_) => SourceKind::Missing,
    }
}

/// Resolves and measures `path` on this host (`mounts`: this host's mountinfo).
pub fn probe(path: &Path, mounts: &[MountEntry]) -> Probed {
    let resolved = std::fs::canonicalize(path).unwrap_or_else(|_| path.to_path_buf());
    let kind = Some(kind_of(&resolved));
    let (entries, size_bytes, allocated) = match kind {
        Some(SourceKind::Dir) => crate::tree::estimate::estimate_with_allocated(&resolved),
        Some(SourceKind::File) => {
            use std::os::unix::fs::MetadataExt;
            std::fs::metadata(&resolved).map(|m| (1, m.len(), m.blocks() * 512)).unwrap_or((1, 0, 0))
        }
        _ => (0, 0, 0),
    };
    let fstype = mountinfo::containing(mounts, &resolved).map(|m| m.fstype.clone());
    let mut mounts_inside: Vec<String> = if kind == Some(SourceKind::Dir) {
        mountinfo::below(mounts, &resolved)
            .into_iter()
            .filter_map(|m| m.mount_point.strip_prefix(&resolved).ok())
            .map(|r| if r.as_os_str().is_empty() { ".".to_string() } else { r.display().to_string() })
            .collect()
    } else {
        Vec::new()
    };
    mounts_inside.sort();
    mounts_inside.dedup();
    Probed { resolved, kind, size_bytes, allocated, entries, fstype, mounts_inside }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn carried() -> Carried {
        Carried { data_root: "/var/lib/docker".into(), containerd_root: Some("/var/lib/containerd".into()) }
    }

    #[test]
    fn plumbing_paths_each_with_their_reason() {
        let dr = Path::new("/var/lib/docker");
        for (p, why) in [
            ("/", "root filesystem"),
            ("/proc/1", "under /proc"),
            ("/sys", "under /sys"),
            ("/dev/kvm", "under /dev"),
            ("/run/docker.sock", "under /run"),
            ("/var/run/docker.sock", "under /var/run"),
            ("/boot/efi", "under /boot"),
            ("/usr/share/zoneinfo", "under /usr"),
            ("/lib/modules", "under /lib"),
            ("/lib64", "under /lib64"),
            ("/libx32/x", "under /libx32"),
            ("/etc/localtime", "belongs to this host"),
            ("/etc/timezone", "belongs to this host"),
            ("/etc/hosts", "belongs to this host"),
            ("/etc/resolv.conf", "belongs to this host"),
            ("/etc/machine-id", "belongs to this host"),
            ("/var/lib", "parent of the data-root"),
            ("/var", "holds host plumbing (/var/run)"),
            ("/etc", "holds host plumbing"),
            ("/etc/shadow", "host configuration"),
            ("/etc/docker/daemon.json", "host configuration"),
            ("relative/x", "not a clean absolute path"),
            ("/srv/../etc/shadow", "not a clean absolute path"),
        ] {
            let got = plumbing(Path::new(p), dr);
            assert!(got.as_deref().is_some_and(|g| g.contains(why)), "{p}: {got:?}");
        }
        for ok in ["/srv/app/data", "/etc/app/app.conf", "/home/u/compose/data", "/var/lib/app", "/libertine", "/usrdata", "/etc/hostsx"] {
            // `/libertine` starts with "lib": the rule covers /lib*, so it is plumbing.
            let got = plumbing(Path::new(ok), dr);
            assert_eq!(got.is_some(), ok == "/libertine", "{ok}: {got:?}");
        }
    }

    #[test]
    fn classify_by_place_then_kind() {
        let c = carried();
        let cl = |p: &str, k| classify(Path::new(p), k, &c);
        assert!(matches!(cl("/var/lib/docker/volumes/v/_data", SourceKind::Dir), BindClass::Inside(r) if r.contains("data-root")));
        assert!(matches!(cl("/var/lib/docker", SourceKind::Dir), BindClass::Inside(_)));
        assert!(matches!(cl("/var/lib/containerd/x", SourceKind::Dir), BindClass::Inside(r) if r.contains("containerd")));
        assert_eq!(cl("/srv/app/data", SourceKind::Dir), BindClass::AppData);
        assert_eq!(cl("/etc/app/app.conf", SourceKind::File), BindClass::AppData);
        assert!(matches!(cl("/srv/app.sock", SourceKind::Socket), BindClass::Plumbing(r) if r.contains("socket")));
        assert!(matches!(cl("/srv/tty", SourceKind::Device), BindClass::Plumbing(r) if r.contains("device")));
        assert!(matches!(cl("/srv/fifo", SourceKind::Other), BindClass::Skipped(_)));
        assert!(matches!(cl("/srv/gone", SourceKind::Missing), BindClass::Skipped(r) if r.contains("does not exist")));
        // A name rule wins over the kind: the Docker socket is plumbing twice over.
        assert!(matches!(cl("/run/docker.sock", SourceKind::Socket), BindClass::Plumbing(r) if r.contains("/run")));
        assert!(matches!(cl("/etc/localtime", SourceKind::File), BindClass::Plumbing(_)));
    }

    fn bind(src: &str) -> Mount {
        Mount { kind: MountType::Bind, source: Some(src.into()), destination: "/d".into(), volume: None, read_only: false }
    }

    #[test]
    fn survey_carries_overlapping_sources_once_and_honours_exclusions() {
        let containers = vec![
            ContainerMounts {
                id: "1".into(),
                name: "a".into(),
                running: true,
                mounts: vec![bind("/srv/app"), bind("/srv/app/data"), bind("/etc/localtime"), bind("/opt/x")],
            },
            ContainerMounts { id: "2".into(), name: "b".into(), running: false, mounts: vec![bind("/srv/app/data"), bind("/srv/apple")] },
        ];
        let mut probe = |p: &Path| Probed { resolved: p.into(), kind: Some(SourceKind::Dir), ..Probed::default() };
        let s = survey(&containers, &carried(), &[PathBuf::from("/opt/x")], &mut probe);
        let find = |p: &str| s.iter().find(|b| b.path == Path::new(p)).unwrap();
        assert_eq!(find("/srv/app").class, BindClass::AppData);
        assert!(matches!(&find("/srv/app/data").class, BindClass::Inside(r) if r.contains("/srv/app ")));
        assert_eq!(find("/srv/app/data").containers, ["a", "b"]);
        // A sibling whose name merely starts the same is its own tree.
        assert_eq!(find("/srv/apple").class, BindClass::AppData);
        assert!(matches!(find("/etc/localtime").class, BindClass::Plumbing(_)));
        assert!(matches!(&find("/opt/x").class, BindClass::Skipped(r) if r.contains("--exclude-bind")));
        assert_eq!(s.len(), 5);
    }

    #[test]
    fn mounts_from_the_api_and_from_a_stopped_engines_files() {
        let inspect = br#"{"Id":"abc","Name":"/app","State":{"Running":true},
            "Mounts":[{"Type":"bind","Source":"/srv/app/data","Destination":"/data","RW":true},
                      {"Type":"volume","Name":"v","Source":"/var/lib/docker/volumes/v/_data","Destination":"/v","RW":false}],
            "HostConfig":{"Tmpfs":{"/run":"size=1m"}}}"#;
        let c = from_inspect(inspect).unwrap();
        assert_eq!((c.name.as_str(), c.running), ("app", true));
        let kinds: Vec<_> = c.mounts.iter().map(|m| (m.kind, m.destination.as_str(), m.read_only)).collect();
        assert_eq!(kinds, [(MountType::Bind, "/data", false), (MountType::Tmpfs, "/run", false), (MountType::Volume, "/v", true)]);
        assert_eq!(c.mounts[2].volume.as_deref(), Some("v"));
        let config = br#"{"ID":"abc","Name":"/app","State":{"Running":false},
            "MountPoints":{"/etc/app.conf":{"Source":"/etc/app/app.conf","Destination":"/etc/app.conf","RW":false,"Name":"","Type":"bind"},
                           "/old":{"Source":"/srv/old","Destination":"/old","RW":true,"Name":""},
                           "/v":{"Source":"","Destination":"/v","RW":true,"Name":"v","Type":"volume"}}}"#;
        let c = from_disk(config, Some(br#"{"Tmpfs":{"/tmp":""}}"#)).unwrap();
        let got: Vec<_> = c.mounts.iter().map(|m| (m.kind, m.destination.as_str(), m.source.clone())).collect();
        assert_eq!(
            got,
            [
                (MountType::Bind, "/etc/app.conf", Some("/etc/app/app.conf".into())),
                (MountType::Bind, "/old", Some("/srv/old".into())),
                (MountType::Tmpfs, "/tmp", None),
                (MountType::Volume, "/v", None),
            ]
        );
        assert!(!c.running && c.mounts[0].read_only);
    }
}
