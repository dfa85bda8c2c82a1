//! Compares manifest records field by field, and two manifests streamed in
//! walk order. Each difference is one readable line: the path, then the field.
//! Walking a tree to compare it is the job of `audit`, a layer above `tree`.

use std::cmp::Ordering;

use super::format::{Body, Record, hex};
use super::order;
use super::reader::Reader;
use crate::error::Result;
use crate::util::display::display;

#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Field {
    Missing,
    Extra,
    Type,
    Content,
    Size,
    Mode,
    Owner,
    Mtime,
    LinkTarget,
    Rdev,
    Xattr,
    HardlinkGroup,
}

/// One difference between what the manifest says and what the tree holds.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Difference {
    pub path: String,
    pub field: Field,
    pub detail: String,
}

impl std::fmt::Display for Difference {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let field = serde_json::to_value(self.field).ok().and_then(|v| v.as_str().map(str::to_owned)).unwrap_or_default();
        if self.detail.is_empty() { write!(f, "{}: {field}", self.path) } else { write!(f, "{}: {field}: {}", self.path, self.detail) }
    }
}

fn shown(rel: &[u8]) -> String {
    if rel.is_empty() { ".".into() } else { display(rel) }
}

pub fn diff(path: &[u8], field: Field, detail: String) -> Difference {
    Difference { path: shown(path), field, detail }
}

/// The differences between an expected and an actual record of one path.
pub(crate) fn compare(want: &Record, got: &Record) -> Vec<Difference> {
    let p = &want.path;
    let mut out = Vec::new();
    let d = |field, w: &dyn std::fmt::Display, g: &dyn std::fmt::Display| diff(p, field, format!("expected {w}, found {g}"));
    if want.body.type_name() != got.body.type_name() {
        out.push(d(Field::Type, &want.body.type_name(), &got.body.type_name()));
        return out;
    }
    match (&want.body, &got.body) {
        (Body::File { size: ws, blake3: wh, .. }, Body::File { size: gs, blake3: gh, .. }) => {
            if ws != gs {
                out.push(d(Field::Size, ws, gs));
            }
            if wh != gh {
                out.push(d(Field::Content, &hex(wh), &hex(gh)));
            }
        }
        (Body::Symlink { target: w }, Body::Symlink { target: g }) if w != g => out.push(d(Field::LinkTarget, &display(w), &display(g))),
        (Body::Hardlink { target: w }, Body::Hardlink { target: g }) if w != g => {
            out.push(d(Field::HardlinkGroup, &format!("link to {}", display(w)), &format!("link to {}", display(g))))
        }
        (Body::Char { rdev: w }, Body::Char { rdev: g }) | (Body::Block { rdev: w }, Body::Block { rdev: g }) if w != g => {
            let f = |r: &u64| format!("{}:{}", libc::major(*r), libc::minor(*r));
            out.push(d(Field::Rdev, &f(w), &f(g)))
        }
        _ => {}
    }
    if matches!(want.body, Body::Hardlink { .. }) {
        return out;
    }
    if want.perm != got.perm {
        out.push(d(Field::Mode, &format!("{:04o}", want.perm), &format!("{:04o}", got.perm)));
    }
    if (want.uid, want.gid) != (got.uid, got.gid) {
        out.push(d(Field::Owner, &format!("{}:{}", want.uid, want.gid), &format!("{}:{}", got.uid, got.gid)));
    }
    if want.mtime != got.mtime {
        out.push(d(Field::Mtime, &want.mtime, &got.mtime));
    }
    compare_xattrs(want, got, &mut out);
    out
}

fn compare_xattrs(want: &Record, got: &Record, out: &mut Vec<Difference>) {
    let p = &want.path;
    for (k, v) in &want.xattrs {
        match got.xattrs.iter().find(|(gk, _)| gk == k) {
            None => out.push(diff(p, Field::Xattr, format!("{} missing", display(k)))),
            Some((_, gv)) if gv != v => out.push(diff(p, Field::Xattr, format!("{} differs", display(k)))),
            _ => {}
        }
    }
    for (k, _) in &got.xattrs {
        if !want.xattrs.iter().any(|(wk, _)| wk == k) {
            out.push(diff(p, Field::Xattr, format!("{} extra", display(k))));
        }
    }
}

/// The result of checking a tree against a manifest.
#[derive(Debug, Default, serde::Serialize)]
pub struct Report {
    pub entries: u64,
    pub bytes: u64,
    pub differences: Vec<Difference>,
    /// Differences beyond the first `MAX_REPORTED` are counted only.
    pub more: u64,
    pub errors: Vec<String>,
}

const MAX_REPORTED: usize = 100_000;

impl Report {
    pub(crate) fn add(&mut self, d: Difference) {
        if self.differences.len() < MAX_REPORTED { self.differences.push(d) } else { self.more += 1 }
    }

    pub fn ok(&self) -> bool {
        self.differences.is_empty() && self.errors.is_empty() && self.more == 0
    }
}

/// Compares two manifests entry by entry, streaming both in walk order:
/// `want` says what should be there, `got` what is. Entries only in `want`
/// are missing, entries only in `got` are extra. `entries` and `bytes` count
/// `got`.
pub(crate) fn compare_manifests(want: &mut Reader, got: &mut Reader) -> Result<Report> {
    let mut report = Report::default();
    let (mut w, mut g) = (want.next_record()?, got.next_record()?);
    loop {
        let step = match (&w, &g) {
            (Some(a), Some(b)) => order::cmp(&a.path, &b.path),
            (Some(_), None) => Ordering::Less,
            (None, Some(_)) => Ordering::Greater,
            (None, None) => break,
        };
        match (step, w.take(), g.take()) {
            (Ordering::Less, Some(a), b) => {
                report.add(diff(&a.path, Field::Missing, String::new()));
                (w, g) = (want.next_record()?, b);
            }
            (Ordering::Greater, a, Some(b)) => {
                count(&mut report, &b);
                report.add(diff(&b.path, Field::Extra, String::new()));
                (w, g) = (a, got.next_record()?);
            }
            (Ordering::Equal, Some(a), Some(b)) => {
                count(&mut report, &b);
                compare(&a, &b).into_iter().for_each(|d| report.add(d));
                (w, g) = (want.next_record()?, got.next_record()?);
            }
            _ => break,
        }
    }
    Ok(report)
}

fn count(report: &mut Report, r: &Record) {
    report.entries += 1;
    if let Body::File { size, .. } = r.body {
        report.bytes += size;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::manifest::format::{HEADER, TRAILER_PREFIX};
    use std::io::Cursor;
    use std::path::Path;

    fn reader(lines: &[&str]) -> Reader {
        let text = format!("{HEADER}\n{}{TRAILER_PREFIX}{}\n", lines.iter().map(|l| format!("{l}\n")).collect::<String>(), lines.len());
        Reader::new(Box::new(Cursor::new(text.into_bytes())), Path::new("m")).unwrap()
    }

    const D: &str = "type=dir mode=0755 uid=0 gid=0 mtime=1.000000000";
    const F: &str = "type=file mode=0644 uid=0 gid=0 mtime=1.000000000 size=3";

    #[test]
    fn manifests_merge_in_walk_order() {
        let h = |b: u8| format!("blake3={}", hex(&[b; 32]));
        let want = [format!(". {D}"), format!("a {D}"), format!("a/b {F} {} ino=1 ctime=5.000000000", h(1)), format!("a/c {F} {}", h(1))];
        let got = [format!(". {D}"), format!("a {D}"), format!("a/b {F} {} ino=9", h(1)), format!("a.b {F} {}", h(2)), format!("z {D}")];
        let (want, got): (Vec<&str>, Vec<&str>) = (want.iter().map(|s| s.as_str()).collect(), got.iter().map(|s| s.as_str()).collect());
        let r = compare_manifests(&mut reader(&want), &mut reader(&got)).unwrap();
        let found: Vec<(&str, Field)> = r.differences.iter().map(|d| (d.path.as_str(), d.field)).collect();
        // ino and ctime differ on a/b and are not differences.
        assert_eq!(found, [("a/c", Field::Missing), ("a.b", Field::Extra), ("z", Field::Extra)]);
        assert_eq!((r.entries, r.bytes), (5, 6));
        let same = compare_manifests(&mut reader(&want), &mut reader(&want)).unwrap();
        assert!(same.ok() && same.entries == 4);
    }
}
