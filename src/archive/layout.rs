//! The member layout of a dockroot archive, in one place (docs/archive-format.md).
//!
//! An archive carries a list of trees ([`Tree`]: containerd's root, bind
//! sources, the data-root), each under its own member prefix with its own
//! manifest. After [`META`] and the config members under [`CONFIG_DIR`]:
//! - single pass: each tree's members then its manifest, trees in [`Tree`]
//!   order, the data-root's manifest [`MANIFEST`] last;
//! - two phases: every tree's phase-1 members (trees in order), [`PHASE2`],
//!   the changed members of each tree (same order), [`DELETED`] (names of
//!   all trees), then every tree's manifest, [`MANIFEST`] last.
//!
//! Archives of format 1 are accepted as they are: a containerd tree closed
//! by its manifest before the data-root's members, and phase 2 for the
//! data-root only. A tree closed before the phase-2 marker has no phase 2.

use std::borrow::Cow;
use std::collections::BTreeSet;

/// First member: JSON describing the backup (written by the caller).
pub(crate) const META: &[u8] = b".dockroot/meta.json";
/// Host configuration files (daemon.json, drop-ins), caller-chosen names below this.
pub(crate) const CONFIG_DIR: &[u8] = b".dockroot/config/";
/// The data-root itself; the root directory is the member `data/`.
pub(crate) const DATA_DIR: &[u8] = b"data/";
/// Last member: the data-root's manifest.
pub(crate) const MANIFEST: &[u8] = b".dockroot/manifest";
/// Two-phase (live) archives only: ends phase 1 (JSON about it). Tree
/// members after it are phase 2, each tree again in walk order.
pub(crate) const PHASE2: &[u8] = b".dockroot/phase2.json";
/// Two-phase archives only, after phase 2: the names (`<prefix><rel>`, each
/// ended by a NUL byte) that phase 1 archived and the stopped trees no
/// longer have. The manifests describe the trees after the deletions.
pub(crate) const DELETED: &[u8] = b".dockroot/deleted";
/// containerd's root (content store, snapshots, metadata); its root
/// directory is the member `containerd/`.
pub(crate) const CONTAINERD_DIR: &[u8] = b"containerd/";
/// The manifest of the containerd tree.
pub(crate) const CONTAINERD_MANIFEST: &[u8] = b".dockroot/containerd.manifest";
/// Bind sources: `binds/<n>/`, their manifests `.dockroot/binds/<n>.manifest`.
const BINDS_DIR: &[u8] = b"binds/";
const BINDS_MANIFEST_DIR: &[u8] = b".dockroot/binds/";
const MANIFEST_SUFFIX: &[u8] = b".manifest";
/// More bind trees than any host has; bounds the numbers an archive may use.
const MAX_BINDS: u32 = 1 << 20;

/// A tree an archive carries, each with its own member prefix and manifest,
/// in archive order (the derived order).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize)]
pub enum Tree {
    /// containerd's root; comes first.
    Containerd,
    /// The n-th bind source carried (meta.json's `binds[n]`).
    Bind(u32),
    /// The data-root; always last.
    Data,
}

/// Parses the decimal `<n>` of a bind tree: digits, no leading zero.
fn bind_number(digits: &[u8]) -> Option<u32> {
    if digits.is_empty() || digits.len() > 7 || (digits[0] == b'0' && digits.len() > 1) || !digits.iter().all(u8::is_ascii_digit) {
        return None;
    }
    std::str::from_utf8(digits).ok()?.parse().ok().filter(|n| *n < MAX_BINDS)
}

impl Tree {
    /// Member prefix, with the trailing `/`.
    pub fn prefix(self) -> Cow<'static, [u8]> {
        match self {
            Tree::Containerd => Cow::Borrowed(CONTAINERD_DIR),
            Tree::Data => Cow::Borrowed(DATA_DIR),
            Tree::Bind(n) => Cow::Owned(format!("binds/{n}/").into_bytes()),
        }
    }

    /// The member holding this tree's manifest.
    pub fn manifest(self) -> Cow<'static, [u8]> {
        match self {
            Tree::Containerd => Cow::Borrowed(CONTAINERD_MANIFEST),
            Tree::Data => Cow::Borrowed(MANIFEST),
            Tree::Bind(n) => Cow::Owned(format!(".dockroot/binds/{n}.manifest").into_bytes()),
        }
    }

    /// The tree a member belongs to and its path below the tree's prefix
    /// (`""` for the root, with or without the trailing `/`).
    pub(crate) fn of_member(path: &[u8]) -> Option<(Tree, &[u8])> {
        let strip = |p: &[u8]| -> Option<&[u8]> { if path == &p[..p.len() - 1] { Some(&path[..0]) } else { path.strip_prefix(p) } };
        if let Some(rel) = strip(DATA_DIR) {
            return Some((Tree::Data, rel));
        }
        if let Some(rel) = strip(CONTAINERD_DIR) {
            return Some((Tree::Containerd, rel));
        }
        let rest = path.strip_prefix(BINDS_DIR)?;
        let (digits, rel) = match rest.iter().position(|&b| b == b'/') {
            Some(i) => (&rest[..i], &rest[i + 1..]),
            None => (rest, &rest[rest.len()..]),
        };
        Some((Tree::Bind(bind_number(digits)?), rel))
    }

    /// `<prefix><rel>` (with a trailing `/` for directories; the root is the prefix).
    pub(crate) fn path(self, rel: &[u8], dir: bool) -> Vec<u8> {
        let mut p = self.prefix().into_owned();
        p.extend_from_slice(rel);
        if dir && !rel.is_empty() {
            p.push(b'/');
        }
        p
    }

    /// What messages call the tree.
    pub fn describe(self) -> String {
        match self {
            Tree::Containerd => "containerd's root".into(),
            Tree::Data => "the data-root".into(),
            Tree::Bind(n) => format!("bind source {n}"),
        }
    }
}

/// Where a member belongs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Section<'a> {
    Config(&'a [u8]),
    Members(Tree, &'a [u8]),
    /// [`PHASE2`]: tree members after it are phase 2.
    Phase2,
    /// [`DELETED`], after the phase-2 members.
    Deleted,
    Manifest(Tree),
}

impl<'a> Section<'a> {
    /// The section of a member (after meta.json), or None for a stray name.
    pub(crate) fn of(path: &'a [u8]) -> Option<Section<'a>> {
        if path == PHASE2 {
            return Some(Section::Phase2);
        }
        if path == DELETED {
            return Some(Section::Deleted);
        }
        if path == MANIFEST {
            return Some(Section::Manifest(Tree::Data));
        }
        if path == CONTAINERD_MANIFEST {
            return Some(Section::Manifest(Tree::Containerd));
        }
        if let Some(n) = path.strip_prefix(BINDS_MANIFEST_DIR).and_then(|r| r.strip_suffix(MANIFEST_SUFFIX)) {
            return bind_number(n).map(|n| Section::Manifest(Tree::Bind(n)));
        }
        if let Some(name) = path.strip_prefix(CONFIG_DIR) {
            return Some(Section::Config(name));
        }
        Tree::of_member(path).map(|(t, rel)| Section::Members(t, rel))
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
enum Stage {
    /// Only meta.json and config members so far.
    #[default]
    Config,
    /// Tree members of phase 1 (or of a single pass), and their manifests.
    Phase1,
    /// After the phase-2 marker.
    Phase2,
    /// After the deletion list: manifests only.
    Deleted,
    /// After the data-root's manifest: nothing.
    Done,
}

/// How far an archive has come, member by member; [`Position::advance`]
/// refuses a member out of place.
#[derive(Debug, Clone, Default)]
pub(crate) struct Position {
    stage: Stage,
    /// The tree of the current run of members.
    cur: Option<Tree>,
    /// Trees with members and no manifest yet.
    open: BTreeSet<Tree>,
    /// The last tree whose manifest came.
    closed: Option<Tree>,
}

impl Position {
    /// True after a phase-2 marker (members replace earlier ones).
    pub(crate) fn in_phase2(&self) -> bool {
        self.stage == Stage::Phase2
    }

    /// True once the data-root's manifest, the last member, came.
    pub(crate) fn done(&self) -> bool {
        self.stage == Stage::Done
    }

    /// True once `tree`'s manifest came (trees close in order).
    pub(crate) fn closed(&self, tree: Tree) -> bool {
        self.closed.is_some_and(|c| c >= tree)
    }

    /// Checks that a member of `section` may come now, and records it.
    pub(crate) fn advance(&mut self, section: &Section) -> Result<(), &'static str> {
        if self.stage == Stage::Done {
            return Err("member after the manifest (the manifest must be last)");
        }
        match *section {
            Section::Config(_) if self.stage == Stage::Config => {}
            Section::Config(_) => return Err("config members must come before every tree"),
            Section::Members(t, _) => match self.stage {
                Stage::Config | Stage::Phase1 => {
                    if self.closed.is_some_and(|c| t <= c) || self.cur.is_some_and(|c| t < c) {
                        return Err("tree members out of place (trees come in the order containerd, binds, data, each once per phase)");
                    }
                    self.stage = Stage::Phase1;
                    self.cur = Some(t);
                    self.open.insert(t);
                }
                Stage::Phase2 => {
                    if !self.open.contains(&t) || self.cur.is_some_and(|c| t < c) {
                        return Err("phase-2 members of a tree phase 1 did not archive, or out of tree order");
                    }
                    self.cur = Some(t);
                }
                _ => return Err("tree members after the deletion list"),
            },
            Section::Phase2 => {
                if self.stage != Stage::Phase1 || self.open.is_empty() {
                    return Err("the phase-2 marker must follow phase 1's tree members, once");
                }
                self.stage = Stage::Phase2;
                self.cur = None;
            }
            Section::Deleted => {
                if self.stage != Stage::Phase2 {
                    return Err("the deletion list must follow the phase-2 marker and members, once");
                }
                self.stage = Stage::Deleted;
            }
            Section::Manifest(t) => {
                if self.open.first() != Some(&t) {
                    return Err("a manifest without its tree's members, or out of tree order");
                }
                match self.stage {
                    Stage::Phase1 if self.open.len() > 1 => return Err("a tree's members must be followed by its manifest"),
                    Stage::Phase1 | Stage::Deleted => {}
                    _ => return Err("phase 2 must end with the deletion list before the manifests"),
                }
                self.open.remove(&t);
                self.closed = Some(t);
                if t == Tree::Data {
                    self.stage = Stage::Done;
                }
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn walk(paths: &[&str]) -> Result<(), String> {
        let mut pos = Position::default();
        for p in paths {
            let s = Section::of(p.as_bytes()).ok_or(format!("stray {p}"))?;
            pos.advance(&s).map_err(|e| format!("{p}: {e}"))?;
        }
        if !pos.done() { Err("no data manifest at the end".into()) } else { Ok(()) }
    }

    #[test]
    fn members_and_manifests_name_their_tree() {
        assert_eq!(Section::of(b"containerd"), Some(Section::Members(Tree::Containerd, b"")));
        assert_eq!(Section::of(b"data/a/b"), Some(Section::Members(Tree::Data, b"a/b")));
        assert_eq!(Section::of(b"binds/12/a"), Some(Section::Members(Tree::Bind(12), b"a")));
        assert_eq!(Section::of(b"binds/0/"), Some(Section::Members(Tree::Bind(0), b"")));
        assert_eq!(Section::of(b"binds/0"), Some(Section::Members(Tree::Bind(0), b"")));
        assert_eq!(Section::of(b".dockroot/binds/3.manifest"), Some(Section::Manifest(Tree::Bind(3))));
        for stray in ["containerdx/a", "binds/01/a", "binds/x/a", "binds//a", "binds/99999999/a", ".dockroot/binds/1.x", "datax"] {
            assert_eq!(Section::of(stray.as_bytes()), None, "{stray}");
        }
        assert_eq!(Tree::Bind(7).path(b"a", true), b"binds/7/a/");
        assert_eq!(&*Tree::Bind(7).manifest(), b".dockroot/binds/7.manifest");
        assert!(Tree::Containerd < Tree::Bind(0) && Tree::Bind(0) < Tree::Bind(1) && Tree::Bind(9) < Tree::Data);
    }

    /// Single pass: each tree's members then its manifest, trees in order.
    /// Two phases: all phase-1 runs, marker, phase-2 runs, deletion list,
    /// all manifests. Format 1's orders stay valid; any other is refused.
    #[test]
    fn sections_come_in_layout_order() {
        walk(&[".dockroot/config/etc/docker/daemon.json", "data/", "data/a", ".dockroot/manifest"]).unwrap();
        walk(&["containerd/", "containerd/x", ".dockroot/containerd.manifest", "data/", ".dockroot/manifest"]).unwrap();
        let single = ["containerd/", ".dockroot/containerd.manifest", "binds/0/", ".dockroot/binds/0.manifest", "binds/1/", "binds/1/a"];
        walk(&[&single[..], &[".dockroot/binds/1.manifest", "data/", ".dockroot/manifest"]].concat()).unwrap();
        // Format 1 two-phase, with and without a closed containerd tree before it.
        let two = ["data/", "data/a", ".dockroot/phase2.json", "data/", "data/a", ".dockroot/deleted", ".dockroot/manifest"];
        walk(&two).unwrap();
        walk(&[&["containerd/", ".dockroot/containerd.manifest"][..], &two].concat()).unwrap();
        walk(&["data/", ".dockroot/phase2.json", ".dockroot/deleted", ".dockroot/manifest"]).unwrap();
        // Format 2 two-phase over every tree; a tree may have no phase-2 members.
        walk(&[
            "containerd/",
            "binds/0/",
            "binds/1/",
            "data/",
            ".dockroot/phase2.json",
            "containerd/",
            "binds/1/x",
            "data/a",
            ".dockroot/deleted",
            ".dockroot/containerd.manifest",
            ".dockroot/binds/0.manifest",
            ".dockroot/binds/1.manifest",
            ".dockroot/manifest",
        ])
        .unwrap();
        for bad in [
            &["data/", "containerd/", ".dockroot/containerd.manifest", ".dockroot/manifest"][..],
            &["containerd/", "data/", ".dockroot/manifest"],
            &["data/", ".dockroot/config/x", ".dockroot/manifest"],
            &["containerd/", ".dockroot/containerd.manifest", "containerd/y", "data/", ".dockroot/manifest"],
            &["data/", ".dockroot/manifest", ".dockroot/manifest"],
            &[".dockroot/phase2.json", "data/"],
            &["containerd/", ".dockroot/phase2.json", ".dockroot/deleted", ".dockroot/containerd.manifest"],
            &["containerd/", ".dockroot/containerd.manifest", ".dockroot/phase2.json"],
            &["data/", ".dockroot/phase2.json", ".dockroot/phase2.json"],
            &["data/", ".dockroot/phase2.json", "data/a", ".dockroot/manifest"],
            &["data/", ".dockroot/deleted", ".dockroot/manifest"],
            &["data/", ".dockroot/phase2.json", ".dockroot/deleted", "data/b", ".dockroot/manifest"],
            &["data/", ".dockroot/phase2.json", "containerd/"],
            &["data/", ".dockroot/phase2.json", ".dockroot/deleted", ".dockroot/deleted"],
            &["binds/1/", "binds/0/", ".dockroot/phase2.json", ".dockroot/deleted"],
            &["binds/0/", "data/", ".dockroot/phase2.json", "data/", "binds/0/", ".dockroot/deleted"],
            &["binds/0/", "data/", ".dockroot/phase2.json", ".dockroot/deleted", ".dockroot/manifest"],
            &["binds/0/", ".dockroot/binds/1.manifest"],
            &["data/"],
        ] {
            assert!(walk(bad).is_err(), "{bad:?}");
        }
    }
}
