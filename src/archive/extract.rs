//! The hardened extractor. Archives are untrusted: tar-rs `unpack` is not
//! used because it turns devices into files, drops directory xattrs and
//! nanosecond times, and drops all xattrs when a PAX value holds a newline.
//!
//! Every member is created below the staging directory with fd-relative calls
//! only. Paths are split into components; empty, `.`, `..` and absolute paths
//! are rejected. Parent directories are opened with O_NOFOLLOW, so a symlink
//! in a path is an error and is never followed. Entries are created with
//! O_EXCL semantics (only directories may be declared twice), hardlinks may
//! only point at a member this archive already extracted, device nodes are
//! created but never opened. Metadata goes on in the order chown, chmod,
//! xattrs, times; directory metadata is deferred and applied deepest first.

use std::collections::HashSet;
use std::ffi::CString;
use std::io::Read;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::os::unix::fs::FileExt;

use super::error::{ArchiveError, Result};
use super::header::flag;
use super::read::{ArchiveReader, Member, TarReader};
use super::records::{components, ids, mtime, rdev};
use super::{EntryRecord, data, layout, show};
use crate::sys::{self, Kind, Timespec, stat};

/// Extraction settings.
#[derive(Debug, Clone)]
pub struct ExtractOptions {
    /// Hash file content as it is written (into the records). A caller that
    /// verifies the extracted tree from disk afterwards can skip it.
    pub hash: bool,
}

impl Default for ExtractOptions {
    fn default() -> Self {
        ExtractOptions { hash: true }
    }
}

/// What an extraction produced besides the tree in the staging directory.
#[derive(Debug, Default)]
pub struct Extracted {
    /// `(name below .dockroot/config/, bytes)`.
    pub config: Vec<(Vec<u8>, Vec<u8>)>,
    pub manifest: Vec<u8>,
    /// One record per data member, hashes computed while writing.
    pub records: Vec<EntryRecord>,
}

struct DirMeta {
    comps: Vec<Vec<u8>>,
    uid: u32,
    gid: u32,
    mode: u32,
    mtime: Timespec,
    xattrs: Vec<(Vec<u8>, Vec<u8>)>,
}

struct Ex<'a> {
    staging: BorrowedFd<'a>,
    /// Open parent chain below staging: (component, fd).
    stack: Vec<(Vec<u8>, OwnedFd)>,
    seen: HashSet<Vec<u8>>,
    dirs: Vec<DirMeta>,
    buf: Vec<u8>,
    hash: bool,
}

fn unsafe_(m: &Member, reason: impl Into<String>) -> ArchiveError {
    m.rejected(reason)
}

fn staging<'p>(path: &'p [u8], step: &'static str) -> impl FnOnce(std::io::Error) -> ArchiveError + 'p {
    move |source| ArchiveError::Staging { path: show(path), step, source }
}

fn cname(m: &Member, c: &[u8]) -> Result<CString> {
    CString::new(c).map_err(|_| unsafe_(m, "NUL byte in name"))
}

/// Extracts the data members of `a` into `staging` (an empty directory whose
/// own metadata becomes that of the archived root) and collects the config and
/// manifest members.
pub fn extract(a: &mut ArchiveReader, staging: BorrowedFd<'_>, opts: &ExtractOptions) -> Result<Extracted> {
    let mut ex = Ex { staging, stack: Vec::new(), seen: HashSet::new(), dirs: Vec::new(), buf: vec![0; 1 << 20], hash: opts.hash };
    let mut out = Extracted::default();
    let mut in_data = false;
    let mut manifest = None;
    while let Some(m) = a.tar.next_member()? {
        if manifest.is_some() {
            return Err(m.malformed("member after the manifest (the manifest must be last)"));
        }
        if m.path == layout::MANIFEST {
            manifest = Some(a.tar.read_small(&m)?);
        } else if let Some(name) = m.path.strip_prefix(layout::CONFIG_DIR) {
            if in_data || !matches!(m.fields.typeflag, flag::FILE | flag::OLD_FILE) {
                return Err(unsafe_(&m, "config member out of place or not a regular file"));
            }
            out.config.push((name.to_vec(), a.tar.read_small(&m)?));
        } else if m.path == b"data" || m.path == layout::DATA_DIR {
            in_data = true;
            if m.fields.typeflag != flag::DIR {
                return Err(unsafe_(&m, "the data root must be a directory"));
            }
            ex.defer_dir(&m, Vec::new())?;
            out.records.push(EntryRecord { path: Vec::new(), kind: Kind::Dir, size: 0, hash: None, hardlink_to: None });
        } else if let Some(rel) = m.path.strip_prefix(layout::DATA_DIR) {
            in_data = true;
            let comps = components(&m, rel)?;
            out.records.push(ex.member(&m, comps, &mut a.tar)?);
        } else {
            return Err(unsafe_(&m, "member outside data/ and .dockroot/"));
        }
    }
    out.manifest = manifest.ok_or_else(|| ArchiveError::Malformed {
        index: 0,
        member: "(end)".into(),
        reason: "no .dockroot/manifest member: the backup did not finish".into(),
    })?;
    ex.stack.clear();
    ex.apply_dirs()?;
    Ok(out)
}

impl Ex<'_> {
    fn top(&self) -> BorrowedFd<'_> {
        self.stack.last().map(|(_, fd)| fd.as_fd()).unwrap_or(self.staging)
    }

    /// Makes the open chain equal to `parents`, creating missing directories.
    fn enter(&mut self, m: &Member, parents: &[Vec<u8>]) -> Result<()> {
        let common = self.stack.iter().zip(parents).take_while(|((a, _), b)| a == *b).count();
        self.stack.truncate(common);
        for c in &parents[common..] {
            let n = cname(m, c)?;
            match sys::mkdir_at(self.top(), &n, 0o700) {
                Ok(()) => {}
                Err(e) if e.raw_os_error() == Some(libc::EEXIST) => {}
                Err(e) => return Err(staging(&m.path, "create parent directory of")(e)),
            }
            let fd = sys::open_dir_at(self.top(), &n).map_err(|e| match e.raw_os_error() {
                Some(libc::ELOOP) | Some(libc::ENOTDIR) => unsafe_(m, format!("path goes through `{}`, which is not a directory", show(c))),
                _ => staging(&m.path, "open parent directory of")(e),
            })?;
            self.stack.push((c.clone(), fd));
        }
        Ok(())
    }

    fn defer_dir(&mut self, m: &Member, comps: Vec<Vec<u8>>) -> Result<()> {
        let (uid, gid) = ids(m)?;
        let mtime = mtime(m);
        self.dirs.push(DirMeta { comps, uid, gid, mode: m.fields.mode, mtime, xattrs: m.xattrs.clone() });
        Ok(())
    }

    fn member<R: Read>(&mut self, m: &Member, comps: Vec<Vec<u8>>, tar: &mut TarReader<R>) -> Result<EntryRecord> {
        let (last, parents) = comps.split_last().expect("components are never empty");
        self.enter(m, parents)?;
        let name = cname(m, last)?;
        let rel = comps.join(&b'/');
        let mut rec = EntryRecord { path: rel.clone(), kind: Kind::File, size: 0, hash: None, hardlink_to: None };
        let (uid, gid) = ids(m)?;
        let mtime = mtime(m);
        let dir = self.stack.last().map(|(_, fd)| fd.as_fd()).unwrap_or(self.staging);
        let exists = |e: std::io::Error| match e.raw_os_error() {
            Some(libc::EEXIST) => unsafe_(m, "an entry of that name was already extracted"),
            _ => staging(&m.path, "create")(e),
        };
        let t = m.fields.typeflag;
        if t == flag::DIR {
            match sys::mkdir_at(dir, &name, 0o700) {
                Ok(()) => {}
                Err(e) if e.raw_os_error() == Some(libc::EEXIST) => {
                    if stat::lstat_at(dir, &name).map(|s| s.kind).ok() != Some(Kind::Dir) {
                        return Err(unsafe_(m, "directory declared over an existing non-directory"));
                    }
                }
                Err(e) => return Err(staging(&m.path, "create")(e)),
            }
            rec.kind = Kind::Dir;
            self.defer_dir(m, comps)?;
            return Ok(rec);
        }
        if t == flag::LINK {
            let target = m.fields.linkname.strip_prefix(layout::DATA_DIR).ok_or_else(|| unsafe_(m, "hardlink target outside data/"))?;
            let tc = components(m, target)?;
            let trel = tc.join(&b'/');
            if !self.seen.contains(&trel) {
                return Err(unsafe_(m, format!("hardlink to `{}`, which is not an earlier member of this archive", show(target))));
            }
            let (tlast, tparents) = tc.split_last().expect("non-empty");
            let mut fd: Option<OwnedFd> = None;
            for c in tparents {
                let base = fd.as_ref().map(|f| f.as_fd()).unwrap_or(self.staging);
                fd = Some(sys::open_dir_at(base, &cname(m, c)?).map_err(staging(&m.path, "open hardlink target parent of"))?);
            }
            let tdir = fd.as_ref().map(|f| f.as_fd()).unwrap_or(self.staging);
            sys::link_at(tdir, &cname(m, tlast)?, dir, &name).map_err(exists)?;
            let st = stat::lstat_at(dir, &name).map_err(staging(&m.path, "stat"))?;
            rec.kind = st.kind;
            rec.size = st.size;
            rec.hardlink_to = Some(trel);
            self.seen.insert(rel);
            return Ok(rec);
        }
        let set_x = |dir: BorrowedFd<'_>| {
            sys::xattr::write_at(dir, &name, &m.xattrs, false).map_err(|(k, source)| ArchiveError::Staging {
                path: format!("{} (xattr {})", show(&m.path), show(&k)),
                step: "set xattr on",
                source,
            })
        };
        match t {
            flag::FILE | flag::OLD_FILE if !m.socket => {
                let f = sys::create_file_at(dir, &name).map_err(exists)?;
                let write = |off: u64, d: &[u8]| f.write_all_at(d, off).map_err(staging(&m.path, "write"));
                let (size, hash) = data::content(tar, m, &mut self.buf, self.hash, write)?;
                if m.sparse_size.is_some() {
                    // A trailing hole: holes stay holes.
                    f.set_len(size).map_err(staging(&m.path, "set size of"))?;
                }
                rec.size = size;
                rec.hash = hash;
                sys::fchown(f.as_fd(), uid, gid).map_err(staging(&m.path, "chown"))?;
                sys::fchmod(f.as_fd(), m.fields.mode).map_err(staging(&m.path, "chmod"))?;
                set_x(dir)?;
                sys::futimens(f.as_fd(), mtime, mtime).map_err(staging(&m.path, "set times of"))?;
            }
            flag::SYMLINK => {
                rec.kind = Kind::Symlink;
                if m.fields.linkname.is_empty() || m.fields.linkname.contains(&0) {
                    return Err(m.malformed("empty or NUL-containing symlink target"));
                }
                sys::symlink_at(&m.fields.linkname, dir, &name).map_err(exists)?;
                sys::chown_at(dir, &name, uid, gid).map_err(staging(&m.path, "chown"))?;
                set_x(dir)?;
                sys::set_times_at(dir, &name, mtime, mtime).map_err(staging(&m.path, "set times of"))?;
            }
            flag::CHAR | flag::BLOCK | flag::FIFO | flag::FILE | flag::OLD_FILE => {
                rec.kind = match t {
                    flag::CHAR => Kind::Char,
                    flag::BLOCK => Kind::Block,
                    flag::FIFO => Kind::Fifo,
                    _ => Kind::Socket,
                };
                let rdev = rdev(m)?;
                sys::mknod_at(dir, &name, rec.kind, rdev).map_err(exists)?;
                sys::chown_at(dir, &name, uid, gid).map_err(staging(&m.path, "chown"))?;
                sys::chmod_at(dir, &name, m.fields.mode).map_err(staging(&m.path, "chmod"))?;
                set_x(dir)?;
                sys::set_times_at(dir, &name, mtime, mtime).map_err(staging(&m.path, "set times of"))?;
            }
            other => {
                return Err(m.malformed(format!("unsupported member type `{}`", other.escape_ascii())));
            }
        }
        self.seen.insert(rel);
        Ok(rec)
    }

    /// Applies directory metadata deepest first, after all children exist.
    fn apply_dirs(&mut self) -> Result<()> {
        let mut dirs = std::mem::take(&mut self.dirs);
        dirs.sort_by_key(|d| std::cmp::Reverse(d.comps.len()));
        for d in dirs {
            let path = d.comps.join(&b'/');
            let mut fd: Option<OwnedFd> = None;
            for c in &d.comps {
                let base = fd.as_ref().map(|f| f.as_fd()).unwrap_or(self.staging);
                let n = CString::new(c.as_slice()).expect("checked when extracted");
                fd = Some(sys::open_dir_at(base, &n).map_err(staging(&path, "open directory"))?);
            }
            let fd = fd.as_ref().map(|f| f.as_fd()).unwrap_or(self.staging);
            sys::fchown(fd, d.uid, d.gid).map_err(staging(&path, "chown directory"))?;
            sys::fchmod(fd, d.mode).map_err(staging(&path, "chmod directory"))?;
            sys::xattr::write_at(fd, sys::DOT, &d.xattrs, false).map_err(|(k, source)| ArchiveError::Staging {
                path: format!("{} (xattr {})", show(&path), show(&k)),
                step: "set xattr on directory",
                source,
            })?;
            sys::futimens(fd, d.mtime, d.mtime).map_err(staging(&path, "set times of directory"))?;
        }
        Ok(())
    }
}
