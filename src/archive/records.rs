//! A data member as a manifest [`Record`], so that [`super::verify`] can
//! compare an archive's members with its manifest without extracting them,
//! and the checks on member names and numbers that the extractor shares.
//!
//! The mapping mirrors the writer: `data/<rel>` names (directories with a
//! trailing `/`, the root is `data/`), hardlinks as type `1` members linking
//! to `data/<first name>`, sockets as regular members with
//! `DOCKROOT.type=socket`, xattrs from `SCHILY.xattr.*`, nanosecond mtimes
//! from PAX `mtime`. `ino` and `ctime` are not in archives: they stay zero
//! and the comparison ignores them.

use std::fs::File;
use std::io::{BufReader, Read, Seek, SeekFrom};
use std::path::Path;

use super::error::{ArchiveError, Result};
use super::header::flag;
use super::layout::Tree;
use super::read::{Member, TarReader};
use super::{data, show};
use crate::manifest::{Body, Reader, Record, Writer};
use crate::sys::Timespec;

/// Splits a member path below `data/` into safe components: no absolute
/// paths, no empty, `.` or `..` components, no NUL bytes.
pub(crate) fn components(m: &Member, rel: &[u8]) -> Result<Vec<Vec<u8>>> {
    let rel = rel.strip_suffix(b"/").unwrap_or(rel);
    if rel.first() == Some(&b'/') {
        return Err(m.rejected("absolute path"));
    }
    let mut out = Vec::new();
    for c in rel.split(|&b| b == b'/') {
        match c {
            b"" => return Err(m.rejected("empty path component")),
            b"." | b".." => return Err(m.rejected("`.` or `..` path component")),
            _ if c.contains(&0) => return Err(m.rejected("NUL byte in path")),
            _ => out.push(c.to_vec()),
        }
    }
    Ok(out)
}

/// The member's owner as 32-bit ids.
pub(crate) fn ids(m: &Member) -> Result<(u32, u32)> {
    let u = u32::try_from(m.fields.uid).map_err(|_| m.malformed("uid out of range"))?;
    let g = u32::try_from(m.fields.gid).map_err(|_| m.malformed("gid out of range"))?;
    Ok((u, g))
}

/// The member's device number.
pub(crate) fn rdev(m: &Member) -> Result<u64> {
    match (u32::try_from(m.fields.devmajor), u32::try_from(m.fields.devminor)) {
        (Ok(a), Ok(b)) => Ok(libc::makedev(a, b)),
        _ => Err(m.malformed("device number out of range")),
    }
}

pub(crate) fn mtime(m: &Member) -> Timespec {
    Timespec { sec: m.fields.mtime, nsec: m.mtime_nsec }
}

/// The record of member `m` of `tree` (`rel`: its name after the tree's
/// prefix). A file's content is read through `buf` and hashed.
pub(crate) fn record<R: Read>(m: &Member, tree: Tree, rel: &[u8], tar: &mut TarReader<R>, buf: &mut [u8]) -> Result<Record> {
    let t = m.fields.typeflag;
    let path = if rel.is_empty() {
        if t != flag::DIR {
            return Err(m.rejected("a tree's root must be a directory"));
        }
        Vec::new()
    } else {
        components(m, rel)?.join(&b'/')
    };
    let body = match t {
        flag::LINK => {
            let prefix = tree.prefix();
            let target =
                m.fields.linkname.strip_prefix(&*prefix).ok_or_else(|| m.rejected(format!("hardlink target outside {}", show(&prefix))))?;
            let target = components(m, target)?.join(&b'/');
            // As the backup records hardlinks: the target only.
            return Ok(Record::hardlink(path, target));
        }
        flag::DIR => Body::Dir,
        flag::FILE | flag::OLD_FILE if m.socket => Body::Socket,
        flag::FILE | flag::OLD_FILE => {
            let (size, blake3) = data::content(tar, m, buf, true, |_, _| Ok(()))?;
            Body::File { size, blake3: blake3.unwrap_or_default(), ino: 0, ctime: Timespec::default() }
        }
        flag::SYMLINK => {
            if m.fields.linkname.is_empty() || m.fields.linkname.contains(&0) {
                return Err(m.malformed("empty or NUL-containing symlink target"));
            }
            Body::Symlink { target: m.fields.linkname.clone() }
        }
        flag::CHAR => Body::Char { rdev: rdev(m)? },
        flag::BLOCK => Body::Block { rdev: rdev(m)? },
        flag::FIFO => Body::Fifo,
        other => return Err(m.malformed(format!("unsupported member type `{}`", other.escape_ascii()))),
    };
    let (uid, gid) = ids(m)?;
    Ok(Record { path, body, perm: m.fields.mode, uid, gid, mtime: mtime(m), xattrs: m.xattrs.clone() })
}

/// What error messages call a spooled manifest.
const SPOOL: &str = "(manifest of the archive's members, a temporary file)";

/// Records written as a manifest into an unnamed temporary file (O_TMPFILE in
/// `$TMPDIR`, gone with the process), so that no archive size keeps them in
/// memory: the backup spools the manifest it appends as the last member, and
/// [`super::verify`] the records of the members it read.
pub struct Spool {
    file: File,
    writer: Writer,
    /// Set by [`Spool::named`].
    path: Option<tempfile::TempPath>,
}

fn scratch(step: &'static str) -> impl FnOnce(std::io::Error) -> ArchiveError {
    move |source| ArchiveError::Scratch { step, source }
}

impl Spool {
    pub fn new() -> Result<Spool> {
        let file = tempfile::tempfile().map_err(scratch("create"))?;
        let out = file.try_clone().map_err(scratch("open"))?;
        Ok(Spool { file, writer: Writer::new(Box::new(out), Path::new(SPOOL))?, path: None })
    }

    /// A spool with a name in `$TMPDIR` (removed when its path is dropped),
    /// which a walk can merge as its baseline manifest.
    pub(crate) fn named() -> Result<Spool> {
        let (file, path) = tempfile::NamedTempFile::new().map_err(scratch("create"))?.into_parts();
        let out = file.try_clone().map_err(scratch("open"))?;
        Ok(Spool { file, writer: Writer::new(Box::new(out), Path::new(SPOOL))?, path: Some(path) })
    }

    /// Ends a [`Spool::named`] manifest and returns its path.
    pub(crate) fn into_path(mut self) -> Result<tempfile::TempPath> {
        let path = self.path.take().ok_or_else(|| scratch("name")(std::io::ErrorKind::InvalidInput.into()))?;
        self.into_file()?;
        Ok(path)
    }

    /// Adds a record; the caller keeps them in walk order.
    pub fn push(&mut self, r: &Record) -> Result<()> {
        Ok(self.writer.push(r)?)
    }

    /// Ends the manifest (trailer) and returns the file, rewound, with its length.
    pub fn into_file(self) -> Result<(File, u64)> {
        self.writer.finish()?;
        let mut f = self.file;
        let len = f.seek(SeekFrom::End(0)).map_err(scratch("measure"))?;
        f.seek(SeekFrom::Start(0)).map_err(scratch("rewind"))?;
        Ok((f, len))
    }

    /// Ends the manifest and reads it back from the start.
    pub(crate) fn into_reader(self) -> Result<Reader> {
        let (f, _) = self.into_file()?;
        Ok(Reader::new(Box::new(BufReader::with_capacity(1 << 20, f)), Path::new(SPOOL))?)
    }
}
