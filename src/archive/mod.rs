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
pub mod entry;
pub mod error;
pub mod extract;
pub mod header;
pub mod meta;
pub mod pipe;
pub mod read;
pub mod records;
pub mod sink;
pub mod verify;
pub mod walk;
pub mod writer;

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
/// archives without it read and restore as before.
pub mod layout {
    /// First member: JSON describing the backup (written by the caller).
    pub const META: &[u8] = b".dockroot/meta.json";
    /// Host configuration files (daemon.json, drop-ins), caller-chosen names below this.
    pub const CONFIG_DIR: &[u8] = b".dockroot/config/";
    /// The data-root itself; the root directory is the member `data/`.
    pub const DATA_DIR: &[u8] = b"data/";
    /// Last member: the manifest, produced after the data was written.
    pub const MANIFEST: &[u8] = b".dockroot/manifest";
    /// containerd's root (content store, snapshots, metadata); its root
    /// directory is the member `containerd/`.
    pub const CONTAINERD_DIR: &[u8] = b"containerd/";
    /// The manifest of the containerd tree, right after its last member.
    pub const CONTAINERD_MANIFEST: &[u8] = b".dockroot/containerd.manifest";

    /// A tree an archive carries, each with its own member prefix and manifest.
    #[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
    pub enum Tree {
        /// containerd's root; comes first.
        Containerd,
        /// The data-root.
        Data,
    }

    impl Tree {
        pub const ALL: [Tree; 2] = [Tree::Containerd, Tree::Data];

        /// Member prefix, with the trailing `/`.
        pub fn prefix(self) -> &'static [u8] {
            match self {
                Tree::Containerd => CONTAINERD_DIR,
                Tree::Data => DATA_DIR,
            }
        }

        /// The member holding this tree's manifest.
        pub fn manifest(self) -> &'static [u8] {
            match self {
                Tree::Containerd => CONTAINERD_MANIFEST,
                Tree::Data => MANIFEST,
            }
        }

        /// The path of a member below this tree (`""` for its root), or None.
        pub fn rel(self, path: &[u8]) -> Option<&[u8]> {
            let p = self.prefix();
            if path == &p[..p.len() - 1] { Some(b"") } else { path.strip_prefix(p) }
        }

        /// `<prefix><rel>` (with a trailing `/` for directories; the root is the prefix).
        pub fn path(self, rel: &[u8], dir: bool) -> Vec<u8> {
            let mut p = self.prefix().to_vec();
            p.extend_from_slice(rel);
            if dir && !rel.is_empty() {
                p.push(b'/');
            }
            p
        }
    }

    /// Where a member belongs. Sections must come in the order of this
    /// enum; a tree's members may repeat, nothing else may.
    #[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
    pub enum Section<'a> {
        Config(&'a [u8]),
        Members(Tree, &'a [u8]),
        Manifest(Tree),
    }

    impl<'a> Section<'a> {
        /// The section of a member (after meta.json), or None for a stray name.
        pub fn of(path: &'a [u8]) -> Option<Section<'a>> {
            if let Some(name) = path.strip_prefix(CONFIG_DIR) {
                return Some(Section::Config(name));
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

        /// Position in the archive: config, containerd members, its manifest, data members, the manifest.
        pub fn rank(&self) -> u8 {
            match self {
                Section::Config(_) => 0,
                Section::Members(t, _) => 1 + 2 * (*t as u8),
                Section::Manifest(t) => 2 + 2 * (*t as u8),
            }
        }
    }

    /// Checks that a member of `section` may follow members up to `rank`
    /// (None: only meta.json so far) and returns the new rank.
    pub fn advance(rank: Option<u8>, section: &Section) -> Result<u8, &'static str> {
        let r = section.rank();
        let repeatable = matches!(section, Section::Config(_) | Section::Members(..));
        match rank {
            Some(cur) if r < cur || (r == cur && !repeatable) => {
                Err("member out of place (the order is config, containerd tree and its manifest, data tree, manifest)")
            }
            // Members (odd ranks) end with their own manifest, nothing else.
            Some(cur) if cur % 2 == 1 && r > cur + 1 => Err("a tree's members must be followed by its manifest"),
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
        for bad in [
            &["data/", "containerd/", ".dockroot/containerd.manifest"][..],
            &["containerd/", "data/"],
            &["data/", ".dockroot/config/x"],
            &["containerd/", ".dockroot/containerd.manifest", "containerd/y"],
            &["data/", ".dockroot/manifest", ".dockroot/manifest"],
        ] {
            assert!(walk(bad).is_err(), "{bad:?}");
        }
    }
}
