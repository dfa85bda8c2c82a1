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
pub fn unescape(s: &str) -> String {
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
pub fn below<'a>(mounts: &'a [MountEntry], path: &Path) -> Vec<&'a MountEntry> {
    mounts.iter().filter(|m| m.mount_point.starts_with(path)).collect()
}

/// The mount that contains `path` (longest mount point prefix).
pub fn containing<'a>(mounts: &'a [MountEntry], path: &Path) -> Option<&'a MountEntry> {
    mounts.iter().filter(|m| path.starts_with(&m.mount_point)).max_by_key(|m| m.mount_point.as_os_str().len())
}

/// Whether `path` itself is a mount point. dockerd with live-restore
/// bind-mounts its data-root onto itself and leaves that mount after exit,
/// so a move must unmount it before renaming or removing the old data-root.
pub fn is_mount_point(mounts: &[MountEntry], path: &Path) -> bool {
    mounts.iter().any(|m| m.mount_point == path)
}

/// Reads and parses `/proc/self/mountinfo`.
pub fn read_self() -> Result<Vec<MountEntry>> {
    read(Path::new("/proc/self/mountinfo"))
}

/// Reads and parses a mountinfo file.
pub fn read(path: &Path) -> Result<Vec<MountEntry>> {
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
}
