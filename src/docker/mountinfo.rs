//! Parsing `/proc/self/mountinfo` (proc(5)). Mounts below the data-root
//! (overlay layers, container shm, bind-mounted volumes) mean something still
//! uses it; copying or moving it then would capture a half-torn-down state.
//! Fields escape space, tab, newline and backslash as octal (`\040`).

use super::error::{DockerError, Result};
use std::path::{Path, PathBuf};

/// One line of mountinfo.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MountEntry {
    /// Unique mount id.
    pub mount_id: u64,
    /// Parent mount id.
    pub parent_id: u64,
    /// `major:minor` of the filesystem.
    pub major_minor: String,
    /// Root of the mount within its filesystem.
    pub root: PathBuf,
    /// Mount point (decoded).
    pub mount_point: PathBuf,
    /// Filesystem type, e.g. `overlay`.
    pub fstype: String,
    /// Mount source (decoded), e.g. `/dev/sda1`.
    pub source: String,
}

/// Parses mountinfo text; malformed lines are skipped.
pub fn parse(text: &str) -> Vec<MountEntry> {
    text.lines().filter_map(parse_line).collect()
}

fn parse_line(line: &str) -> Option<MountEntry> {
    let (left, right) = line.split_once(" - ")?;
    let l: Vec<&str> = left.split(' ').collect();
    let r: Vec<&str> = right.split(' ').collect();
    if l.len() < 5 || r.len() < 2 {
        return None;
    }
    Some(MountEntry {
        mount_id: l[0].parse().ok()?,
        parent_id: l[1].parse().ok()?,
        major_minor: l[2].to_string(),
        root: PathBuf::from(unescape(l[3])),
        mount_point: PathBuf::from(unescape(l[4])),
        fstype: r[0].to_string(),
        source: unescape(r[1]),
    })
}

/// Decodes `\NNN` octal escapes as used by the kernel in mount tables.
pub(crate) fn unescape(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        let oct = b.get(i + 1..i + 4).filter(|d| d.iter().all(|c| (b'0'..=b'7').contains(c)));
        match (b[i], oct) {
            (b'\\', Some(d)) => {
                let v = d.iter().fold(0u32, |a, c| a * 8 + u32::from(c - b'0'));
                out.push(v as u8);
                i += 4;
            }
            (c, _) => {
                out.push(c);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// Mounts whose mount point is `path` itself or below it.
pub(crate) fn below<'a>(mounts: &'a [MountEntry], path: &Path) -> Vec<&'a MountEntry> {
    mounts.iter().filter(|m| m.mount_point.starts_with(path)).collect()
}

/// The mount that contains `path` (longest mount point prefix).
pub(crate) fn containing<'a>(mounts: &'a [MountEntry], path: &Path) -> Option<&'a MountEntry> {
    mounts.iter().filter(|m| path.starts_with(&m.mount_point)).max_by_key(|m| m.mount_point.as_os_str().len())
}

/// Whether `path` itself is a mount point. dockerd with live-restore
/// bind-mounts its data-root onto itself and leaves that mount after exit,
/// so a move must unmount it before renaming or removing the old data-root.
pub(crate) fn is_mount_point(mounts: &[MountEntry], path: &Path) -> bool {
    mounts.iter().any(|m| m.mount_point == path)
}

/// What is mounted at a path, judged from the lowest mount on it (the one
/// whose parent is not itself mounted there) and its parent, by mount and
/// device IDs rather than by path names.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum MountKind {
    /// No mount, or only dockerd's bind of the path onto itself (the same
    /// directory of the same filesystem as the parent mount shows there).
    None,
    /// A bind mount of the directory `root` of filesystem `major_minor`;
    /// `source` is where that directory is visible outside the mount
    /// (`None` when no other mount of that filesystem shows it).
    Bind { source: Option<PathBuf>, major_minor: String },
    /// The root of a filesystem is mounted there (a dedicated disk).
    Filesystem { source: String, fstype: String },
}

/// The lowest mount whose mount point is `path`, if any.
pub(crate) fn lowest_at<'a>(mounts: &'a [MountEntry], path: &Path) -> Option<&'a MountEntry> {
    let at: Vec<&MountEntry> = mounts.iter().filter(|m| m.mount_point == path).collect();
    at.iter().copied().find(|m| !at.iter().any(|o| o.mount_id == m.parent_id))
}

/// Classifies what is mounted at `path` (see [`MountKind`]).
pub(crate) fn kind_at(mounts: &[MountEntry], path: &Path) -> MountKind {
    let Some(m) = lowest_at(mounts, path) else {
        return MountKind::None;
    };
    let parent = mounts.iter().find(|p| p.mount_id == m.parent_id);
    let own_dir = parent.and_then(|p| path.strip_prefix(&p.mount_point).ok().map(|rest| (p, p.root.join(rest))));
    if own_dir.is_some_and(|(p, dir)| p.major_minor == m.major_minor && dir == m.root) {
        return MountKind::None;
    }
    if m.root == Path::new("/") {
        return MountKind::Filesystem { source: m.source.clone(), fstype: m.fstype.clone() };
    }
    // Another mount of the same filesystem that shows the bound directory,
    // outside `path`; the one nearest to the directory wins.
    let source = mounts
        .iter()
        .filter(|n| n.major_minor == m.major_minor && !n.mount_point.starts_with(path) && m.root.starts_with(&n.root))
        .max_by_key(|n| n.root.as_os_str().len())
        .map(|n| n.mount_point.join(m.root.strip_prefix(&n.root).unwrap_or(Path::new(""))));
    MountKind::Bind { source, major_minor: m.major_minor.clone() }
}

/// The mount points that are binds of the directory `source` (a restore
/// given the bind's source as its data-root must act on the bind too).
pub(crate) fn binds_of(mounts: &[MountEntry], source: &Path) -> Vec<PathBuf> {
    let mut points: Vec<PathBuf> = mounts.iter().map(|m| m.mount_point.clone()).collect();
    points.sort();
    points.dedup();
    points.into_iter().filter(|p| matches!(kind_at(mounts, p), MountKind::Bind { source: Some(s), .. } if s == source)).collect()
}

/// Reads and parses `/proc/self/mountinfo`.
pub(crate) fn read_self() -> Result<Vec<MountEntry>> {
    read(Path::new("/proc/self/mountinfo"))
}

/// Reads and parses a mountinfo file.
pub(crate) fn read(path: &Path) -> Result<Vec<MountEntry>> {
    let text = std::fs::read_to_string(path).map_err(|source| DockerError::Read { path: path.into(), source })?;
    Ok(parse(&text))
}

/// Mounts at or below `path` on this host, from `/proc/self/mountinfo`.
pub fn mounts_below(path: &Path) -> Result<Vec<MountEntry>> {
    Ok(below(&read_self()?, path).into_iter().cloned().collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    const SAMPLE: &str = "\
22 1 8:1 / / rw,relatime shared:1 - ext4 /dev/sda1 rw
40 22 0:40 / /var/lib/docker/overlay2/abc/merged rw,relatime - overlay overlay rw,lowerdir=/x
41 22 8:2 /data /mnt/my\\040disk rw shared:5 master:1 - xfs /dev/sd\\134b rw
bogus line
";

    #[test]
    fn octal_and_optional_fields() {
        let m = parse(SAMPLE);
        assert_eq!(m.len(), 3);
        assert_eq!(m[2].mount_point, PathBuf::from("/mnt/my disk"));
        assert_eq!(m[2].source, "/dev/sd\\b");
        assert_eq!(m[2].fstype, "xfs");
        assert_eq!(unescape("a\\011b\\\\c\\12"), "a\tb\\\\c\\12");
    }

    #[test]
    fn below_and_containing() {
        let m = parse(SAMPLE);
        assert_eq!(below(&m, Path::new("/var/lib/docker")).len(), 1);
        assert!(below(&m, Path::new("/var/lib/dock")).is_empty());
        assert!(is_mount_point(&m, Path::new("/mnt/my disk")));
        assert!(!is_mount_point(&m, Path::new("/mnt")));
        let c = containing(&m, Path::new("/mnt/my disk/docker")).unwrap();
        assert_eq!(c.mount_id, 41);
    }

    /// The guest after `move --method bind`: /data is a disk, /var/lib/docker
    /// binds its `docker` directory, and dockerd's self-bind sits on top.
    const BOUND: &str = "\
22 1 8:1 / / rw shared:1 - ext4 /dev/sda1 rw
30 22 7:3 / /data rw shared:2 - xfs /dev/loop3 rw
31 22 7:3 /docker /var/lib/docker rw shared:2 - xfs /dev/loop3 rw
32 31 7:3 /docker /var/lib/docker rw shared:2 - xfs /dev/loop3 rw
33 22 8:1 /srv/plain /srv/plain rw shared:1 - ext4 /dev/sda1 rw
34 22 8:1 /srv/hand /opt/docker rw shared:1 - ext4 /dev/sda1 rw
35 22 7:4 / /mnt/disk rw - ext4 /dev/loop4 rw
36 22 7:5 /gone /mnt/lost rw - ext4 /dev/loop5 rw
";

    #[test]
    fn mount_kinds_by_id_and_device() {
        let m = parse(BOUND);
        assert_eq!(lowest_at(&m, Path::new("/var/lib/docker")).unwrap().mount_id, 31);
        let bind = |s: &str, mm: &str| MountKind::Bind { source: Some(PathBuf::from(s)), major_minor: mm.into() };
        assert_eq!(kind_at(&m, Path::new("/var/lib/docker")), bind("/data/docker", "7:3"));
        // dockerd's bind of a plain directory onto itself is no mount of the user's.
        assert_eq!(kind_at(&m, Path::new("/srv/plain")), MountKind::None);
        assert_eq!(kind_at(&m, Path::new("/var/lib")), MountKind::None);
        // A hand-made bind within the root filesystem.
        assert_eq!(kind_at(&m, Path::new("/opt/docker")), bind("/srv/hand", "8:1"));
        assert_eq!(kind_at(&m, Path::new("/mnt/disk")), MountKind::Filesystem { source: "/dev/loop4".into(), fstype: "ext4".into() });
        assert_eq!(kind_at(&m, Path::new("/mnt/lost")), MountKind::Bind { source: None, major_minor: "7:5".into() });
        assert_eq!(binds_of(&m, Path::new("/data/docker")), vec![PathBuf::from("/var/lib/docker")]);
        assert!(binds_of(&m, Path::new("/data")).is_empty());
    }
}
