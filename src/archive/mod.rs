//! Backup archives: a POSIX/PAX tar stream inside a multi-threaded zstd frame.
//!
//! The writer ([`writer`]) records everything a Docker data-root needs to come
//! back bit for bit: numeric owners, nanosecond mtimes, all xattrs (including
//! `trusted.overlay.*` and `security.capability`), POSIX ACLs, holes, device
//! nodes, fifos, sockets and hardlinks. The archive stays readable by GNU tar
//! (`tar --zstd --xattrs --xattrs-include='*' --acls -xpf`).
//!
//! The extractor ([`extract`]) treats the archive as untrusted input: it parses
//! headers itself and creates every entry with fd-relative calls below a
//! staging directory, never following a symlink and never leaving the staging
//! directory. [`read`] opens archives; [`verify`] checks a whole archive,
//! every data member against the manifest, without extracting it.

pub mod acl;
pub mod data;
pub mod deleted;
pub mod entry;
pub mod error;
pub mod extract;
pub mod header;
pub mod meta;
pub mod overlay;
pub mod phase2;
pub mod phases;
pub mod pipe;
pub mod read;
pub mod records;
pub mod sink;
pub mod verify;
pub mod walk;
pub mod writer;
mod writers;

pub use entry::{ArchiveEntry, EntryRecord};
pub use error::ArchiveError;
pub use extract::{Extracted, Target, extract, extract_trees};
pub use read::{ArchiveReader, open, open_reader};
pub use verify::{TreeReport, VerifyReport, verify};
pub use walk::walk;
pub use writer::{ArchiveWriter, WriterOptions};

/// The member layout of a dockroot archive, in one place. Members appear in
/// this order: [`META`], then config members under [`CONFIG_DIR`], then
/// (only with the containerd image store's system containerd) containerd's
/// root under [`CONTAINERD_DIR`] followed by its manifest
/// [`CONTAINERD_MANIFEST`], then the data-root under [`DATA_DIR`], then
/// [`MANIFEST`] as the very last member. The containerd tree is additive:
/// archives without it read and restore as before. A live backup has two
/// runs of data members, [`PHASE2`] between them and [`DELETED`] after the
/// second; two-phase covers the data-root only.
pub mod layout {
    /// First member: JSON describing the backup (written by the caller).
    pub(crate) const META: &[u8] = b".dockroot/meta.json";
    /// Host configuration files (daemon.json, drop-ins), caller-chosen names below this.
    pub(crate) const CONFIG_DIR: &[u8] = b".dockroot/config/";
    /// The data-root itself; the root directory is the member `data/`.
    pub(crate) const DATA_DIR: &[u8] = b"data/";
    /// Last member: the manifest, produced after the data was written.
    pub(crate) const MANIFEST: &[u8] = b".dockroot/manifest";
    /// Two-phase (live) archives only: ends phase 1 (JSON about it). Data
    /// members after it are phase 2, again in walk order from `data/`.
    pub(crate) const PHASE2: &[u8] = b".dockroot/phase2.json";
    /// Two-phase archives only, after phase 2: the names (`data/...`, each
    /// ended by a NUL byte) that phase 1 archived and the stopped tree no
    /// longer has. The manifest describes the tree after the deletions.
    pub(crate) const DELETED: &[u8] = b".dockroot/deleted";
    /// containerd's root (content store, snapshots, metadata); its root
    /// directory is the member `containerd/`.
    pub(crate) const CONTAINERD_DIR: &[u8] = b"containerd/";
    /// The manifest of the containerd tree, right after its last member.
    pub(crate) const CONTAINERD_MANIFEST: &[u8] = b".dockroot/containerd.manifest";

    /// A tree an archive carries, each with its own member prefix and manifest.
    #[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
    pub enum Tree {
        /// containerd's root; comes first.
        Containerd,
        /// The data-root.
        Data,
    }

    impl Tree {
        pub(crate) const ALL: [Tree; 2] = [Tree::Containerd, Tree::Data];

        /// Member prefix, with the trailing `/`.
        pub(crate) fn prefix(self) -> &'static [u8] {
            match self {
                Tree::Containerd => CONTAINERD_DIR,
                Tree::Data => DATA_DIR,
            }
        }

        /// The member holding this tree's manifest.
        pub(crate) fn manifest(self) -> &'static [u8] {
            match self {
                Tree::Containerd => CONTAINERD_MANIFEST,
                Tree::Data => MANIFEST,
            }
        }

        /// The path of a member below this tree (`""` for its root), or None.
        pub(crate) fn rel(self, path: &[u8]) -> Option<&[u8]> {
            let p = self.prefix();
            if path == &p[..p.len() - 1] { Some(b"") } else { path.strip_prefix(p) }
        }

        /// `<prefix><rel>` (with a trailing `/` for directories; the root is the prefix).
        pub(crate) fn path(self, rel: &[u8], dir: bool) -> Vec<u8> {
            let mut p = self.prefix().to_vec();
            p.extend_from_slice(rel);
            if dir && !rel.is_empty() {
                p.push(b'/');
            }
            p
        }
    }

    /// Where a member belongs. Sections come in the order of
    /// [`Section::rank`]; a tree's members and config members may repeat,
    /// nothing else may.
    #[derive(Debug, Clone, Copy, PartialEq, Eq)]
    pub(crate) enum Section<'a> {
        Config(&'a [u8]),
        Members(Tree, &'a [u8]),
        /// [`PHASE2`]: data members after it are phase 2.
        Phase2,
        /// [`DELETED`], after the phase-2 members.
        Deleted,
        Manifest(Tree),
    }

    /// Ranks of the two-phase sections (data members are [`DATA_RANK`]
    /// before the marker and [`PHASE2_MEMBERS_RANK`] after it).
    const DATA_RANK: u8 = 3;
    const PHASE2_RANK: u8 = 4;
    const PHASE2_MEMBERS_RANK: u8 = 5;
    const DELETED_RANK: u8 = 6;
    const MANIFEST_RANK: u8 = 7;

    impl<'a> Section<'a> {
        /// The section of a member (after meta.json), or None for a stray name.
        pub(crate) fn of(path: &'a [u8]) -> Option<Section<'a>> {
            if let Some(name) = path.strip_prefix(CONFIG_DIR) {
                return Some(Section::Config(name));
            }
            if path == PHASE2 {
                return Some(Section::Phase2);
            }
            if path == DELETED {
                return Some(Section::Deleted);
            }
            for t in Tree::ALL {
                if path == t.manifest() {
                    return Some(Section::Manifest(t));
                }
                if let Some(rel) = t.rel(path) {
                    return Some(Section::Members(t, rel));
                }
            }
            None
        }

        /// Position in the archive: config, containerd members, its manifest,
        /// data members, [phase-2 marker, phase-2 data members, deletion
        /// list,] the manifest. Phase-2 data members rank as phase-1 ones
        /// here; [`advance`] tells them apart.
        pub(crate) fn rank(&self) -> u8 {
            match self {
                Section::Config(_) => 0,
                Section::Members(Tree::Containerd, _) => 1,
                Section::Manifest(Tree::Containerd) => 2,
                Section::Members(Tree::Data, _) => DATA_RANK,
                Section::Phase2 => PHASE2_RANK,
                Section::Deleted => DELETED_RANK,
                Section::Manifest(Tree::Data) => MANIFEST_RANK,
            }
        }
    }

    /// Checks that a member of `section` may follow members up to `rank`
    /// (None: only meta.json so far) and returns the new rank.
    pub(crate) fn advance(rank: Option<u8>, section: &Section) -> Result<u8, &'static str> {
        let mut r = section.rank();
        if r == DATA_RANK && rank.is_some_and(|c| c >= PHASE2_RANK) {
            r = PHASE2_MEMBERS_RANK;
        }
        let repeatable = matches!(section, Section::Config(_) | Section::Members(..));
        let Some(cur) = rank else {
            return match section {
                Section::Phase2 | Section::Deleted => Err("phase-2 marker or deletion list before any data member"),
                _ => Ok(r),
            };
        };
        if r < cur || (r == cur && !repeatable) {
            return Err(
                "member out of place (the order is config, containerd tree and its manifest, data tree, [phase-2 marker, phase-2 data, deletion list,] manifest)",
            );
        }
        match (cur, r) {
            (_, _) if r == cur => Ok(r),
            // Members (odd ranks) end with their own manifest, nothing else.
            (1, r) if r != 2 => Err("a tree's members must be followed by its manifest"),
            (DATA_RANK, r) if r != PHASE2_RANK && r != MANIFEST_RANK => {
                Err("data members must be followed by the manifest or the phase-2 marker")
            }
            (c, PHASE2_RANK) if c != DATA_RANK => Err("the phase-2 marker must follow phase 1's data members"),
            (c, DELETED_RANK) if c != PHASE2_RANK && c != PHASE2_MEMBERS_RANK => {
                Err("the deletion list must follow the phase-2 marker and members")
            }
            (PHASE2_RANK | PHASE2_MEMBERS_RANK, r) if r != PHASE2_MEMBERS_RANK && r != DELETED_RANK => {
                Err("phase 2 must end with the deletion list")
            }
            (DELETED_RANK, r) if r != MANIFEST_RANK => Err("only the manifest may follow the deletion list"),
            _ => Ok(r),
        }
    }
}

/// Escapes an untrusted name for an error message (control bytes, non-ASCII).
pub(crate) fn show(bytes: &[u8]) -> String {
    bytes.escape_ascii().to_string()
}

#[cfg(test)]
mod tests {
    use super::layout::{Section, Tree, advance};

    /// Config, containerd members, their manifest, data members, the
    /// manifest: any other order is refused, as are members after a tree's
    /// manifest and a tree left without its manifest.
    #[test]
    fn sections_come_in_layout_order() {
        let walk = |paths: &[&str]| -> Result<(), String> {
            let mut rank = None;
            for p in paths {
                let s = Section::of(p.as_bytes()).ok_or(format!("stray {p}"))?;
                rank = Some(advance(rank, &s).map_err(|e| format!("{p}: {e}"))?);
            }
            Ok(())
        };
        assert_eq!(Section::of(b"containerd"), Some(Section::Members(Tree::Containerd, b"")));
        assert_eq!(Section::of(b"data/a/b"), Some(Section::Members(Tree::Data, b"a/b")));
        assert_eq!(Section::of(b"containerdx/a"), None);
        walk(&[".dockroot/config/etc/docker/daemon.json", "data/", "data/a", ".dockroot/manifest"]).unwrap();
        walk(&["containerd/", "containerd/x", ".dockroot/containerd.manifest", "data/", ".dockroot/manifest"]).unwrap();
        // Two-phase, with and without the containerd tree before it.
        let two = ["data/", "data/a", ".dockroot/phase2.json", "data/", "data/a", ".dockroot/deleted", ".dockroot/manifest"];
        walk(&two).unwrap();
        walk(&[&["containerd/", ".dockroot/containerd.manifest"][..], &two].concat()).unwrap();
        walk(&["data/", ".dockroot/phase2.json", ".dockroot/deleted", ".dockroot/manifest"]).unwrap();
        for bad in [
            &["data/", "containerd/", ".dockroot/containerd.manifest"][..],
            &["containerd/", "data/"],
            &["data/", ".dockroot/config/x"],
            &["containerd/", ".dockroot/containerd.manifest", "containerd/y"],
            &["data/", ".dockroot/manifest", ".dockroot/manifest"],
            &[".dockroot/phase2.json", "data/"],
            &["containerd/", ".dockroot/phase2.json"],
            &["containerd/", ".dockroot/containerd.manifest", ".dockroot/phase2.json"],
            &["data/", ".dockroot/phase2.json", ".dockroot/phase2.json"],
            &["data/", ".dockroot/phase2.json", "data/a", ".dockroot/manifest"],
            &["data/", ".dockroot/deleted", ".dockroot/manifest"],
            &["data/", ".dockroot/phase2.json", ".dockroot/deleted", "data/b"],
            &["data/", ".dockroot/phase2.json", "containerd/"],
            &["data/", ".dockroot/phase2.json", ".dockroot/deleted", ".dockroot/deleted"],
        ] {
            assert!(walk(bad).is_err(), "{bad:?}");
        }
    }
}
