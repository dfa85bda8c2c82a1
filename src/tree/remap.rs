//! Shifting every id of a tree from one rootless id map to another
//! (`restore --remap-ids`, issue 19). A rootless daemon's files belong to
//! host ids that stand for in-namespace ids (the user for 0, the user's
//! subordinate ranges for 1 and up); on a host whose user or ranges differ,
//! the same in-namespace id is another host id. Each id is translated
//! through the in-namespace id it stands for: file owners, the user and
//! group entries of POSIX ACLs (`system.posix_acl_access`/`_default`) and
//! the root id of v3 file capabilities (`security.capability`, written by a
//! setcap inside a user namespace).
//!
//! Order per entry: chown (which clears setuid/setgid bits and the
//! capability xattr), chmod with the old bits, then the shifted xattrs;
//! times are untouched (ownership and xattrs change only ctime). Each
//! entry is stat'ed again afterwards and must have the ids it was given.
//! A hardlinked inode is shifted once. An id outside the source map (an
//! entry the daemon could not have written) is an error naming it: nothing
//! is guessed.

use std::collections::HashSet;
use std::ffi::{CStr, CString, OsStr};
use std::os::fd::{AsFd, BorrowedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

use crate::sys::{self, Kind};
use crate::util::idmap::IdMap;

const ACL_ACCESS: &[u8] = b"system.posix_acl_access";
const ACL_DEFAULT: &[u8] = b"system.posix_acl_default";
const CAPABILITY: &[u8] = b"security.capability";
/// `VFS_CAP_REVISION_3` in the magic word's top byte (linux/capability.h).
const CAP_V3: u32 = 0x0300_0000;
const CAP_V3_SIZE: usize = 24;

/// From one id map to another, for uids and for gids.
#[derive(Debug, Clone)]
pub struct Shift {
    pub uids: (IdMap, IdMap),
    pub gids: (IdMap, IdMap),
}

impl Shift {
    fn uid(&self, id: u32) -> Option<u32> {
        self.uids.1.host(self.uids.0.inside(id)?)
    }

    fn gid(&self, id: u32) -> Option<u32> {
        self.gids.1.host(self.gids.0.inside(id)?)
    }
}

/// What a remap did.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq, serde::Serialize)]
pub struct RemapStats {
    pub entries: u64,
    /// Entries whose owner, ACL or capability changed.
    pub changed: u64,
}

/// A remap that could not be done; the tree is then partly shifted and must be discarded.
#[derive(Debug, thiserror::Error)]
pub enum RemapError {
    /// An id the source map does not cover, or the target map cannot hold.
    #[error("{path}: {what} {id} is not in the archive's id map or has no place in this host's ({map}); nothing was guessed")]
    Unmapped { path: PathBuf, what: &'static str, id: u32, map: String },
    /// A system call failed.
    #[error("{path}: cannot {step}: {source}")]
    Io {
        path: PathBuf,
        step: &'static str,
        #[source]
        source: std::io::Error,
    },
    /// The entry did not take the ids it was given.
    #[error("{path}: owner is {have} after the shift, expected {want}")]
    Mismatch { path: PathBuf, have: String, want: String },
}

type Result<T> = std::result::Result<T, RemapError>;

fn io<'p>(path: &'p Path, step: &'static str) -> impl FnOnce(std::io::Error) -> RemapError + 'p {
    move |source| RemapError::Io { path: path.into(), step, source }
}

/// Shifts every entry of the tree at `root` (itself included).
pub fn remap_tree(root: &Path, shift: &Shift) -> Result<RemapStats> {
    let parent = root.parent().unwrap_or(Path::new("/"));
    let name = root.file_name().ok_or_else(|| RemapError::Io {
        path: root.into(),
        step: "name",
        source: std::io::Error::from(std::io::ErrorKind::InvalidInput),
    })?;
    let dir = sys::open_dir_path(parent).map_err(io(parent, "open"))?;
    let name = CString::new(name.as_bytes()).map_err(|e| io(root, "name")(e.into()))?;
    let mut w = Walk { shift, stats: RemapStats::default(), links: HashSet::new() };
    w.entry(dir.as_fd(), &name, root)?;
    Ok(w.stats)
}

struct Walk<'a> {
    shift: &'a Shift,
    stats: RemapStats,
    /// (dev, ino) of hardlinked inodes already shifted.
    links: HashSet<(u64, u64)>,
}

impl Walk<'_> {
    fn entry(&mut self, dir: BorrowedFd<'_>, name: &CStr, path: &Path) -> Result<()> {
        let m = sys::stat::lstat_at(dir, name).map_err(io(path, "stat"))?;
        self.stats.entries += 1;
        let first = m.kind == Kind::Dir || m.nlink < 2 || self.links.insert((m.dev, m.ino));
        if first {
            self.shift_one(dir, name, path, &m)?;
        }
        if m.kind == Kind::Dir {
            let sub = sys::open_dir_at(dir, name).map_err(io(path, "open directory"))?;
            for child in sys::list_dir(sub.as_fd()).map_err(io(path, "list"))? {
                let p = path.join(OsStr::from_bytes(child.as_bytes()));
                self.entry(sub.as_fd(), &child, &p)?;
            }
        }
        Ok(())
    }

    fn unmapped(&self, path: &Path, what: &'static str, id: u32) -> RemapError {
        let (from, to) = if what.contains("gid") { &self.shift.gids } else { &self.shift.uids };
        RemapError::Unmapped { path: path.into(), what, id, map: format!("from {from} to {to}") }
    }

    fn shift_one(&mut self, dir: BorrowedFd<'_>, name: &CStr, path: &Path, m: &sys::stat::Meta) -> Result<()> {
        let uid = self.shift.uid(m.uid).ok_or_else(|| self.unmapped(path, "uid", m.uid))?;
        let gid = self.shift.gid(m.gid).ok_or_else(|| self.unmapped(path, "gid", m.gid))?;
        let (fd, _) = sys::seen::open_entry(dir, name).map_err(io(path, "open"))?;
        let xattrs = sys::xattr::read_path_fd(fd.as_fd()).map_err(io(path, "read xattrs of"))?;
        let mut shifted = Vec::new();
        for (k, v) in &xattrs {
            let new = match k.as_slice() {
                ACL_ACCESS | ACL_DEFAULT => Some(self.acl(v, path)?),
                CAPABILITY => Some(self.capability(v, path)?),
                _ => None,
            };
            shifted.extend(new.map(|n| (k.clone(), n)));
        }
        let changed = (uid, gid) != (m.uid, m.gid) || shifted.iter().any(|(k, v)| xattrs.iter().any(|(k2, v2)| k == k2 && v != v2));
        if !changed {
            return Ok(());
        }
        self.stats.changed += 1;
        sys::chown_at(dir, name, uid, gid).map_err(io(path, "chown"))?;
        if m.kind != Kind::Symlink {
            // chown cleared the setuid/setgid bits; put the mode back.
            sys::chmod_at(dir, name, m.perm).map_err(io(path, "chmod"))?;
        }
        sys::xattr::write_at(dir, name, &shifted, false).map_err(|(_, e)| io(path, "set the shifted xattrs of")(e))?;
        let after = sys::stat::lstat_at(dir, name).map_err(io(path, "stat"))?;
        if (after.uid, after.gid, after.perm) != (uid, gid, m.perm) {
            return Err(RemapError::Mismatch {
                path: path.into(),
                have: format!("{}:{} mode {:o}", after.uid, after.gid, after.perm),
                want: format!("{uid}:{gid} mode {:o}", m.perm),
            });
        }
        Ok(())
    }

    /// A binary POSIX ACL (u32 version 2, then {u16 tag, u16 perm, u32 id})
    /// with its named user (tag 2) and group (tag 8) ids shifted.
    fn acl(&self, v: &[u8], path: &Path) -> Result<Vec<u8>> {
        let mut out = v.to_vec();
        if v.len() < 4 || !(v.len() - 4).is_multiple_of(8) {
            return Ok(out);
        }
        for (i, e) in v[4..].chunks_exact(8).enumerate() {
            let tag = u16::from_le_bytes([e[0], e[1]]);
            let id = u32::from_le_bytes([e[4], e[5], e[6], e[7]]);
            let new = match tag {
                0x02 => self.shift.uid(id).ok_or_else(|| self.unmapped(path, "ACL uid", id))?,
                0x08 => self.shift.gid(id).ok_or_else(|| self.unmapped(path, "ACL gid", id))?,
                _ => continue,
            };
            let at = 4 + i * 8 + 4;
            out[at..at + 4].copy_from_slice(&new.to_le_bytes());
        }
        Ok(out)
    }

    /// A v3 capability's root id shifted (v2 has none and stays).
    fn capability(&self, v: &[u8], path: &Path) -> Result<Vec<u8>> {
        let mut out = v.to_vec();
        if v.len() != CAP_V3_SIZE || u32::from_le_bytes([v[0], v[1], v[2], v[3]]) & 0xFF00_0000 != CAP_V3 {
            return Ok(out);
        }
        let root = u32::from_le_bytes([v[20], v[21], v[22], v[23]]);
        let new = self.shift.uid(root).ok_or_else(|| self.unmapped(path, "capability root uid", root))?;
        out[20..24].copy_from_slice(&new.to_le_bytes());
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::util::idmap::IdRange;
    use std::os::unix::fs::MetadataExt;

    fn map(owner: u32, start: u32) -> IdMap {
        IdMap { owner, ranges: vec![IdRange { start, count: 65536 }] }
    }

    fn shift() -> Shift {
        Shift { uids: (map(1000, 100000), map(1001, 200000)), gids: (map(1000, 100000), map(1001, 200000)) }
    }

    #[test]
    fn owners_acls_capabilities_and_modes_are_shifted() {
        let d = tempfile::tempdir().unwrap();
        let root = d.path().join("dr");
        std::fs::create_dir_all(root.join("sub")).unwrap();
        std::fs::write(root.join("sub/f"), b"x").unwrap();
        std::fs::hard_link(root.join("sub/f"), root.join("link")).unwrap();
        std::os::unix::fs::symlink("sub/f", root.join("sym")).unwrap();
        let c = |p: &Path, u: u32, g: u32| std::os::unix::fs::lchown(p, Some(u), Some(g)).unwrap();
        c(&root, 1000, 1000);
        c(&root.join("sub"), 100000, 100999);
        c(&root.join("sub/f"), 101233, 1000);
        c(&root.join("sym"), 165535, 100000);
        std::fs::set_permissions(root.join("sub/f"), std::os::unix::fs::PermissionsExt::from_mode(0o4755)).unwrap();
        // ACL user:100999:r-x (tag 2), group:1000:r-- (tag 8), and a v3 capability rooted at uid 1000.
        let mut acl = 2u32.to_le_bytes().to_vec();
        for (tag, perm, id) in
            [(1u16, 7u16, u32::MAX), (2, 5, 100999), (4, 5, u32::MAX), (8, 4, 1000), (0x10, 5, u32::MAX), (0x20, 5, u32::MAX)]
        {
            acl.extend(tag.to_le_bytes());
            acl.extend(perm.to_le_bytes());
            acl.extend(id.to_le_bytes());
        }
        xattr::set(root.join("sub"), "system.posix_acl_access", &acl).unwrap();
        let mut cap = (CAP_V3 | 1).to_le_bytes().to_vec();
        cap.extend([0u8; 16]);
        cap[4] = 0x20; // cap_net_raw in permitted
        cap.extend(1000u32.to_le_bytes());
        xattr::set(root.join("sub/f"), "security.capability", &cap).unwrap();

        let stats = remap_tree(&root, &shift()).unwrap();
        assert_eq!(stats, RemapStats { entries: 5, changed: 4 });
        let ids = |p: &Path| {
            let m = std::fs::symlink_metadata(p).unwrap();
            (m.uid(), m.gid(), m.mode() & 0o7777)
        };
        assert_eq!(ids(&root).0, 1001);
        assert_eq!(ids(&root.join("sub")), (200000, 200999, ids(&root.join("sub")).2));
        assert_eq!(ids(&root.join("sub/f")), (201233, 1001, 0o4755), "setuid bit kept, hardlink shifted once");
        assert_eq!(ids(&root.join("sym")).0, 265535);
        let acl = xattr::get(root.join("sub"), "system.posix_acl_access").unwrap().unwrap();
        assert_eq!(crate::archive::acl::to_text(&acl).unwrap(), "user::rwx,user:200999:r-x,group::r-x,group:1001:r--,mask::r-x,other::r-x");
        let cap = xattr::get(root.join("sub/f"), "security.capability").unwrap().unwrap();
        assert_eq!((cap.len(), u32::from_le_bytes(cap[20..24].try_into().unwrap()), cap[4]), (24, 1001, 0x20));
    }

    #[test]
    fn an_id_outside_the_map_is_an_error_naming_it() {
        let d = tempfile::tempdir().unwrap();
        let root = d.path().join("dr");
        std::fs::create_dir(&root).unwrap();
        std::fs::write(root.join("f"), b"").unwrap();
        std::os::unix::fs::lchown(&root, Some(1000), Some(1000)).unwrap();
        std::os::unix::fs::lchown(root.join("f"), Some(4242), Some(1000)).unwrap();
        let e = remap_tree(&root, &shift()).unwrap_err().to_string();
        assert!(e.contains("uid 4242") && e.contains("/f") && e.contains("100000:65536"), "{e}");
    }
}
