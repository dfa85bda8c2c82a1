//! A simple sequential walker that feeds the writer: sorted names, recursion
//! through directory fds (so trees deeper than PATH_MAX work), hardlinks
//! detected by (dev, ino) for nlink > 1, and no crossing into other
//! filesystems (a mount point below the root is archived as an empty
//! directory). It stands in until the engine's walker (src/tree) is merged.

use std::collections::HashMap;
use std::ffi::CStr;
use std::os::fd::{AsFd, BorrowedFd};
use std::path::Path;

use super::error::{ArchiveError, Result};
use super::{ArchiveEntry, show};
use crate::sys::{self, Kind, Meta, stat};

struct Walk<'a> {
    dev: u64,
    links: HashMap<(u64, u64), Vec<u8>>,
    visit: &'a mut dyn FnMut(ArchiveEntry) -> Result<()>,
}

fn src<'p>(path: &'p [u8], step: &'static str) -> impl FnOnce(std::io::Error) -> ArchiveError + 'p {
    move |source| ArchiveError::Source { path: show(path), step, source }
}

/// Walks `root` and calls `visit` for the root (empty `rel_path`) and every
/// entry below it, parents before children, names sorted bytewise.
pub fn walk(root: &Path, visit: &mut dyn FnMut(ArchiveEntry) -> Result<()>) -> Result<()> {
    let rootb = root.as_os_str().as_encoded_bytes();
    let fd = sys::open_dir_path(root).map_err(src(rootb, "open"))?;
    let meta = stat::fstat(fd.as_fd()).map_err(src(rootb, "stat"))?;
    let mut w = Walk { dev: meta.dev, links: HashMap::new(), visit };
    let xattrs = sys::xattr::read_at(fd.as_fd(), sys::DOT).map_err(src(rootb, "read xattrs of"))?;
    (w.visit)(ArchiveEntry { rel_path: Vec::new(), meta, xattrs, link_target: None, hardlink_to: None, data: None })?;
    w.dir(fd.as_fd(), &mut Vec::new())
}

impl Walk<'_> {
    fn dir(&mut self, dir: BorrowedFd<'_>, rel: &mut Vec<u8>) -> Result<()> {
        let names = sys::list_dir(dir).map_err(src(rel, "list"))?;
        for name in names {
            let len = rel.len();
            if !rel.is_empty() {
                rel.push(b'/');
            }
            rel.extend_from_slice(name.as_bytes());
            self.entry(dir, &name, rel)?;
            rel.truncate(len);
        }
        Ok(())
    }

    fn entry(&mut self, dir: BorrowedFd<'_>, name: &CStr, rel: &mut Vec<u8>) -> Result<()> {
        let meta = stat::lstat_at(dir, name).map_err(src(rel, "stat"))?;
        let xattrs = sys::xattr::read_at(dir, name).map_err(src(rel, "read xattrs of"))?;
        let mut e = ArchiveEntry { rel_path: rel.clone(), meta, xattrs, link_target: None, hardlink_to: None, data: None };
        match meta.kind {
            Kind::Dir => {
                (self.visit)(e)?;
                if meta.dev != self.dev {
                    return Ok(());
                }
                let sub = sys::open_dir_at(dir, name).map_err(src(rel, "open"))?;
                return self.dir(sub.as_fd(), rel);
            }
            Kind::Symlink => e.link_target = Some(sys::readlink_at(dir, name).map_err(src(rel, "read link"))?),
            Kind::File => {
                if meta.nlink > 1 {
                    if let Some(first) = self.links.get(&(meta.dev, meta.ino)) {
                        e.hardlink_to = Some(first.clone());
                        return (self.visit)(e);
                    }
                    self.links.insert((meta.dev, meta.ino), rel.clone());
                }
                let f = sys::open_read_at(dir, name).map_err(src(rel, "open"))?;
                let now: Meta = stat::fstat(f.as_fd()).map_err(src(rel, "stat"))?;
                if now.ino != meta.ino || now.kind != Kind::File {
                    return Err(ArchiveError::SourceChanged { path: show(rel), what: "replaced while walking".into() });
                }
                e.meta = now;
                e.data = Some(f);
            }
            _ => {}
        }
        (self.visit)(e)
    }
}
