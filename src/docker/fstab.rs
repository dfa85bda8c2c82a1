//! Keeping a relocated data-root mounted across reboots via a bind mount in
//! /etc/fstab (`NEW /var/lib/docker none bind,x-systemd.requires-mounts-for=NEW 0 0`).
//! The `x-systemd.requires-mounts-for` option orders the bind after the disk
//! holding NEW is mounted. Edits keep every other line byte for byte and go
//! through [`super::atomic`]. Fields escape blanks as `\040` (fstab(5)).

use super::error::{DockerError, Result};
use super::mountinfo::unescape;
use std::path::{Path, PathBuf};

/// One mount line of fstab (fields decoded).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct FstabEntry {
    /// 1-based line number in the file.
    pub line: usize,
    /// First field: device, UUID=, or bind source.
    pub spec: String,
    /// Second field: the mount point.
    pub file: PathBuf,
    /// Filesystem type (`none` for binds).
    pub vfstype: String,
    /// Mount options, comma-separated.
    pub options: String,
}

/// An fstab file kept as lines so untouched lines are written back verbatim.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Fstab {
    path: PathBuf,
    lines: Vec<String>,
}

impl Fstab {
    /// Loads `path`; a missing file is an empty table.
    pub fn load(path: &Path) -> Result<Self> {
        let text = match std::fs::read_to_string(path) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => String::new(),
            Err(source) => {
                return Err(DockerError::Read { path: path.into(), source });
            }
        };
        Ok(Self::parse(path, &text))
    }

    /// Builds a table from text; `path` is where [`Fstab::save`] writes.
    pub fn parse(path: &Path, text: &str) -> Self {
        Self { path: path.into(), lines: text.lines().map(String::from).collect() }
    }

    /// All mount lines.
    pub(crate) fn entries(&self) -> Vec<FstabEntry> {
        self.lines.iter().enumerate().filter_map(|(i, l)| parse_line(i + 1, l)).collect()
    }

    /// The exact bind line for `target` on `data_root`.
    pub(crate) fn bind_line(target: &Path, data_root: &Path) -> String {
        let t = escape(&target.to_string_lossy());
        let d = escape(&data_root.to_string_lossy());
        format!("{t} {d} none bind,x-systemd.requires-mounts-for={t} 0 0")
    }

    /// Adds the bind line in memory. Unchanged if an identical bind exists;
    /// an error if another line already mounts on `data_root`.
    pub(crate) fn add_bind(&mut self, target: &Path, data_root: &Path) -> Result<bool> {
        if let Some(e) = self.entries().into_iter().find(|e| e.file == data_root) {
            if e.spec == target.to_string_lossy() && is_bind(&e) {
                return Ok(false);
            }
            let mount_point = data_root.display().to_string();
            return Err(DockerError::FstabConflict { path: self.path.clone(), mount_point, line: e.line });
        }
        self.lines.push(Self::bind_line(target, data_root));
        Ok(true)
    }

    /// The file's text as it would be written.
    pub(crate) fn to_text(&self) -> String {
        let mut s = self.lines.join("\n");
        s.push('\n');
        s
    }
}

fn is_bind(e: &FstabEntry) -> bool {
    e.options.split(',').any(|o| o == "bind" || o == "rbind")
}

fn parse_line(line: usize, text: &str) -> Option<FstabEntry> {
    let t = text.trim();
    if t.is_empty() || t.starts_with('#') {
        return None;
    }
    let f: Vec<&str> = t.split_whitespace().collect();
    if f.len() < 2 {
        return None;
    }
    Some(FstabEntry {
        line,
        spec: unescape(f[0]),
        file: PathBuf::from(unescape(f[1])),
        vfstype: f.get(2).map_or_else(String::new, |s| unescape(s)),
        options: f.get(3).map_or_else(|| "defaults".into(), |s| unescape(s)),
    })
}

/// Escapes space, tab, newline and backslash as octal for an fstab field.
pub(crate) fn escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            ' ' | '\t' | '\n' | '\\' => out.push_str(&format!("\\{:03o}", c as u32)),
            c => out.push(c),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    const TAB: &str = "# /etc/fstab\nUUID=1 / ext4 errors=remount-ro 0 1\nUUID=2\t/mnt/big\\040disk  xfs defaults 0 2\n";

    #[test]
    fn escape_round_trip() {
        assert_eq!(escape("/mnt/big disk\\x"), "/mnt/big\\040disk\\134x");
        assert_eq!(unescape(&escape("/a b\tc")), "/a b\tc");
    }

    #[test]
    fn add_is_idempotent_and_keeps_the_rest() {
        let mut t = Fstab::parse(Path::new("/f"), TAB);
        let target = Path::new("/mnt/big disk/docker");
        let root = Path::new("/var/lib/docker");
        assert!(t.add_bind(target, root).unwrap());
        assert!(!t.add_bind(target, root).unwrap());
        assert!(
            t.to_text().ends_with(
                "/mnt/big\\040disk/docker /var/lib/docker none bind,x-systemd.requires-mounts-for=/mnt/big\\040disk/docker 0 0\n"
            )
        );
        assert!(matches!(t.add_bind(Path::new("/other"), root), Err(DockerError::FstabConflict { line: 4, .. })));
    }
}
