//! One piece of an archive: a subtree of one of its trees (a volume's
//! `_data`, any path below the data-root), for `extract` and
//! `restore --volume`. The extractor sees the archive through
//! [`Pick::view`]: the piece's members re-rooted as if the piece were the
//! whole tree, everything else read past. So the piece goes through the
//! same checks as a whole tree (names, walk order, hardlinks to earlier
//! members only), and nothing outside it is written.

use std::io::Read;
use std::os::fd::BorrowedFd;

use super::error::{ArchiveError, Result};
use super::header::flag;
use super::layout::{Section, Tree};
use super::read::{Member, TarReader};
use super::records::components;

/// A subtree of one tree of an archive.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Pick {
    pub tree: Tree,
    /// Below the tree's root, without leading or trailing `/`; empty: the whole tree.
    pub prefix: Vec<u8>,
}

/// Where a Docker volume's files are below the data-root.
pub fn volume_prefix(name: &str) -> Vec<u8> {
    format!("volumes/{name}/_data").into_bytes()
}

/// Checks a volume name as Docker does (`[a-zA-Z0-9][a-zA-Z0-9_.-]+`), so
/// that it is one path component.
pub fn volume_name_ok(name: &str) -> bool {
    let b = name.as_bytes();
    b.len() >= 2 && b[0].is_ascii_alphanumeric() && b.iter().all(|c| c.is_ascii_alphanumeric() || matches!(c, b'_' | b'.' | b'-'))
}

impl Pick {
    /// The files of volume `name` (its `_data` below the data-root).
    pub fn volume(name: &str) -> Result<Pick> {
        if !volume_name_ok(name) {
            return Err(ArchiveError::Piece {
                what: format!("volume `{}`", name.escape_debug()),
                why: "not a Docker volume name ([a-zA-Z0-9][a-zA-Z0-9_.-]+)".into(),
            });
        }
        Ok(Pick { tree: Tree::Data, prefix: volume_prefix(name) })
    }

    /// The subtree at `path` below the data-root: `/`-separated, with no
    /// `.`, `..` or empty components (a leading or trailing `/` is dropped).
    pub fn path(path: &[u8]) -> Result<Pick> {
        let p = path.strip_prefix(b"/").unwrap_or(path);
        let p = p.strip_suffix(b"/").unwrap_or(p);
        let bad = p.split(|&b| b == b'/').any(|c| matches!(c, b"" | b"." | b"..") || c.contains(&0));
        if bad && !p.is_empty() {
            return Err(ArchiveError::Piece {
                what: format!("path `{}`", super::show(path)),
                why: "give a path below the data-root without `.`, `..` or `//`, e.g. volumes/NAME/_data".into(),
            });
        }
        Ok(Pick { tree: Tree::Data, prefix: p.to_vec() })
    }

    /// The path of a member of `tree` below the piece (`""` for the
    /// piece's root), or None when it is outside.
    pub(crate) fn below<'r>(&self, tree: Tree, rel: &'r [u8]) -> Option<&'r [u8]> {
        if tree != self.tree {
            return None;
        }
        let rel = rel.strip_suffix(b"/").unwrap_or(rel);
        if self.prefix.is_empty() {
            return Some(rel);
        }
        match rel.strip_prefix(self.prefix.as_slice())? {
            b"" => Some(b""),
            rest => rest.strip_prefix(b"/"),
        }
    }

    /// What the member names of the piece's hardlink targets begin with.
    pub(crate) fn link_prefix(&self) -> Vec<u8> {
        self.tree.path(&self.prefix, true)
    }

    /// How the piece is named in messages: `data/volumes/x/_data`.
    pub fn describe(&self) -> String {
        super::show(&self.tree.path(&self.prefix, false))
    }
}

impl Pick {
    /// The member `m` as the piece's extraction sees it: a member of the
    /// piece re-rooted so that the piece's root is its tree's root (and a
    /// hardlink's target with it), the piece's tree's manifest and the
    /// phase-2 members as they are; None for what lies outside
    /// the piece (read past, never written). A hardlink out of the piece
    /// is rejected: its target was not extracted.
    pub(crate) fn view(&self, mut m: Member) -> Result<Option<Member>> {
        let (tree, rel) = match Section::of(&m.path) {
            Some(Section::Members(tree, rel)) => (tree, rel),
            Some(Section::Manifest(tree)) if tree != self.tree => return Ok(None),
            // The host's configuration is not part of any piece.
            Some(Section::Config(_)) => return Ok(None),
            // The loop rejects a stray name; the rest goes as it is.
            _ => return Ok(Some(m)),
        };
        let Some(rel) = self.below(tree, rel) else { return Ok(None) };
        let dir = m.fields.typeflag == flag::DIR;
        let path = tree.path(rel, dir);
        if m.fields.typeflag == flag::LINK {
            let Some(target) = m.fields.linkname.strip_prefix(self.link_prefix().as_slice()) else {
                return Err(m.rejected(format!(
                    "hardlink to `{}`, outside {}, the part extracted; extract a part that holds both",
                    super::show(&m.fields.linkname),
                    self.describe()
                )));
            };
            m.fields.linkname = tree.path(target, false);
        }
        m.path = path;
        Ok(Some(m))
    }

    /// Applies a two-phase archive's deletion list `m` to the piece in
    /// `staging`: the names below it, re-rooted; the others, and the piece
    /// itself (deleted before phase 2: its manifest then has no entries,
    /// which the caller reports), are skipped. Returns the count of names.
    pub(crate) fn apply_deleted<R: Read>(
        &self,
        m: &Member,
        tar: &mut TarReader<R>,
        staging: BorrowedFd<'_>,
        buf: &mut [u8],
    ) -> Result<u64> {
        super::deleted::for_each(m, tar, buf, |tree, rel| match self.below(tree, rel) {
            Some(rel) if !rel.is_empty() => super::deleted::remove(m, staging, &components(m, rel)?),
            _ => Ok(()),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn volume_and_path_pieces() {
        let v = Pick::volume("db-data_1.x").unwrap();
        assert_eq!(v.prefix, b"volumes/db-data_1.x/_data");
        assert_eq!(v.below(Tree::Data, b"volumes/db-data_1.x/_data/"), Some(&b""[..]));
        assert_eq!(v.below(Tree::Data, b"volumes/db-data_1.x/_data/a/b"), Some(&b"a/b"[..]));
        assert_eq!(v.below(Tree::Data, b"volumes/db-data_1.x/_data/a/"), Some(&b"a"[..]));
        assert_eq!(v.below(Tree::Data, b"volumes/db-data_1.x/_datax"), None);
        assert_eq!(v.below(Tree::Data, b"volumes/db-data_1.x/"), None);
        assert_eq!(v.below(Tree::Containerd, b"volumes/db-data_1.x/_data/a"), None);
        assert_eq!(v.link_prefix(), b"data/volumes/db-data_1.x/_data/");
        for bad in ["", "x", "../x", "a/b", "-x", "a b"] {
            assert!(Pick::volume(bad).is_err(), "{bad}");
        }
        assert_eq!(Pick::path(b"/containers/abc/").unwrap().prefix, b"containers/abc");
        assert_eq!(Pick::path(b"").unwrap().prefix, b"");
        for bad in [&b"a/../b"[..], b"a//b", b"./a", b"a/\0"] {
            assert!(Pick::path(bad).is_err(), "{}", String::from_utf8_lossy(bad));
        }
        let whole = Pick::path(b"/").unwrap();
        assert_eq!(whole.below(Tree::Data, b"a/b"), Some(&b"a/b"[..]));
        assert_eq!(whole.link_prefix(), b"data/");
    }
}
