//! One piece of an archive: a subtree of one of its trees (a volume's
//! `_data`, any path below the data-root), for `extract` and
//! `restore --volume`. [`Route`] tells the extractor where each member
//! goes: the whole trees into their staging directories, or only the
//! piece's members, re-rooted at the piece, into one directory (everything
//! else is read past and dropped).

use std::io::Write;
use std::os::fd::BorrowedFd;

use super::error::{ArchiveError, Result};
use super::extract::Target;
use super::layout::Tree;
use super::read::Member;

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
        if self.prefix.is_empty() {
            return Some(rel);
        }
        let rel = rel.strip_suffix(b"/").unwrap_or(rel);
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

/// Where an extraction puts what.
pub(crate) enum Route<'t, 'a> {
    /// The data-root and, if the archive has it, containerd's root.
    Whole { data: Target<'a>, containerd: Option<Target<'a>> },
    /// Only `pick`'s members, into `target`; its tree's manifest goes to
    /// `target.manifest` whole (the caller cuts it, see [`crate::manifest::subtree`]).
    Piece { pick: &'t Pick, target: Target<'a> },
}

/// Where one member goes.
pub(crate) struct Place<'a, 'r> {
    pub staging: BorrowedFd<'a>,
    /// The member's path below `staging` (`""`: the root itself).
    pub rel: &'r [u8],
    /// What its hardlink targets' member names begin with.
    pub link_prefix: Vec<u8>,
}

impl<'a> Route<'_, 'a> {
    /// Where the member `m` of `tree` at `rel` goes; None: it is dropped.
    pub(crate) fn member<'r>(&self, tree: Tree, rel: &'r [u8], m: &Member) -> Result<Option<Place<'a, 'r>>> {
        match self {
            Route::Whole { data, containerd } => {
                let staging = match (tree, containerd) {
                    (Tree::Data, _) => data.staging,
                    (Tree::Containerd, Some(c)) => c.staging,
                    (Tree::Containerd, None) => {
                        return Err(m.rejected("the archive carries containerd's root, which this extraction has no place for"));
                    }
                };
                Ok(Some(Place { staging, rel, link_prefix: tree.prefix().to_vec() }))
            }
            Route::Piece { pick, target } => {
                Ok(pick.below(tree, rel).map(|rel| Place { staging: target.staging, rel, link_prefix: pick.link_prefix() }))
            }
        }
    }

    /// Where the manifest member of `tree` goes; None: it is dropped.
    pub(crate) fn manifest(&mut self, tree: Tree, m: &Member) -> Result<Option<&mut (dyn Write + 'a)>> {
        match self {
            Route::Whole { data, containerd } => match (tree, containerd) {
                (Tree::Data, _) => Ok(Some(&mut *data.manifest)),
                (Tree::Containerd, Some(c)) => Ok(Some(&mut *c.manifest)),
                (Tree::Containerd, None) => {
                    Err(m.rejected("the archive carries containerd's root, which this extraction has no place for"))
                }
            },
            Route::Piece { pick, target } => Ok((pick.tree == tree).then_some(&mut *target.manifest)),
        }
    }

    /// The data-root's phase 2 (a live backup's) applies here below this
    /// prefix; None: the data-root is not extracted.
    pub(crate) fn phase2_prefix(&self) -> Option<&[u8]> {
        match self {
            Route::Whole { .. } => Some(b""),
            Route::Piece { pick, .. } => (pick.tree == Tree::Data).then_some(pick.prefix.as_slice()),
        }
    }

    /// The directory the data-root's phase 2 applies to.
    pub(crate) fn data_staging(&self) -> BorrowedFd<'a> {
        match self {
            Route::Whole { data, .. } => data.staging,
            Route::Piece { target, .. } => target.staging,
        }
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
