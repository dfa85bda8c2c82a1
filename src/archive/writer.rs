//! Writes a dockroot archive: PAX tar framing into a multi-threaded zstd
//! encoder with content checksums.
//!
//! Per entry: numeric uid/gid (PAX `uid`/`gid` when large, empty uname/gname),
//! PAX `mtime=sec.nsec`, every xattr as `SCHILY.xattr.<name>` (binary-safe),
//! POSIX ACLs also as `SCHILY.acl.access`/`SCHILY.acl.default` text for GNU
//! tar, hardlinks as type `1` members, holes as PAX sparse 1.0 members (map
//! at the start of the data, as GNU tar `--sparse --format=posix` writes),
//! sockets as empty regular files with `DOCKROOT.type=socket`, btrfs
//! subvolume roots as directories with `DOCKROOT.subvolume=rw|ro`, long and
//! non-UTF-8 names as PAX `path`/`linkpath` (raw bytes; no `hdrcharset`,
//! which GNU tar 1.34 warns about and ignores).

use std::io::{Read, Write};
use std::path::Path;

use super::error::{ArchiveError, Result};
use super::header::{self, BLOCK, Fields, flag};
use super::layout::{Section, Tree};
use super::sink::Sink;
use super::{ArchiveEntry, EntryRecord, acl, layout, show};
use crate::sys::Kind;
use crate::tree::content::{Chunk, stream_range};
use crate::tree::hasher::ContentHasher;

/// Compression settings.
#[derive(Debug, Clone)]
pub struct WriterOptions {
    /// zstd level (1..=19); 3 is zstd's default. `None`: a plain tar stream.
    pub level: Option<i32>,
    /// zstd worker threads (0 = compress on the calling thread).
    pub threads: u32,
}

impl Default for WriterOptions {
    fn default() -> Self {
        let n = std::thread::available_parallelism().map(|n| n.get() as u32).unwrap_or(1);
        WriterOptions { level: Some(3), threads: n }
    }
}

/// A streaming archive writer; see the module docs for the format.
pub struct ArchiveWriter<W: Write + Send + 'static> {
    /// With worker threads, zstd copies each write into a job buffer and
    /// compresses on its workers: the caller only blocks when every job
    /// slot is full, so reading and hashing overlap with compression.
    out: Sink<W>,
    /// How far the layout has come.
    pos: layout::Position,
    now: i64,
    /// Docker runs (phase 1 of a live backup): a file that changes while it
    /// is read is zero-padded to its header's size and marked raced.
    live: bool,
}

fn out_err(step: &'static str) -> impl FnOnce(std::io::Error) -> ArchiveError {
    move |source| ArchiveError::Output { step, source }
}

impl<W: Write + Send + 'static> ArchiveWriter<W> {
    /// Starts an archive on `out` and writes the first member, `meta.json`.
    pub fn new(out: W, opts: &WriterOptions, meta_json: &[u8]) -> Result<Self> {
        let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_secs() as i64).unwrap_or(0);
        Self::new_at(out, opts, meta_json, now)
    }

    /// [`ArchiveWriter::new`] with the time of the run given (its own
    /// members' mtime): two runs then write the same bytes.
    pub(crate) fn new_at(out: W, opts: &WriterOptions, meta_json: &[u8], now: i64) -> Result<Self> {
        let enc = match opts.level {
            Some(level) => {
                let mut enc = zstd::stream::write::Encoder::new(out, level).map_err(out_err("start zstd"))?;
                if opts.threads > 0 {
                    enc.multithread(opts.threads).map_err(out_err("start zstd workers"))?;
                }
                enc.include_checksum(true).map_err(out_err("enable zstd checksums"))?;
                Sink::Zstd(enc)
            }
            None => Sink::Plain(out),
        };
        let mut w = ArchiveWriter { out: enc, pos: layout::Position::default(), now, live: false };
        w.small_file(layout::META, meta_json, 0o600)?;
        Ok(w)
    }

    /// Adds a host configuration file as `.dockroot/config/<name>`.
    pub fn add_config(&mut self, name: &[u8], host: &Path) -> Result<()> {
        self.advance(&Section::Config(name))?;
        let src = |step, source| ArchiveError::Source { path: host.display().to_string(), step, source };
        let bytes = std::fs::read(host).map_err(|e| src("read", e))?;
        let mode = std::os::unix::fs::PermissionsExt::mode(&std::fs::metadata(host).map_err(|e| src("stat", e))?.permissions());
        let mut path = layout::CONFIG_DIR.to_vec();
        path.extend_from_slice(name);
        self.small_file(&path, &bytes, mode & 0o7777)
    }

    fn advance(&mut self, s: &Section) -> Result<()> {
        self.pos.advance(s).map_err(|what| ArchiveError::Layout { what: what.into() })
    }

    /// Adds one entry of the data-root under `data/`; returns its record.
    pub fn add_entry(&mut self, e: ArchiveEntry) -> Result<EntryRecord> {
        self.add_tree_entry(Tree::Data, e)
    }

    /// Adds one entry of `tree` under its prefix; returns its record. Trees
    /// come in [`Tree`] order, the data-root last (see [`layout`]).
    pub fn add_tree_entry(&mut self, tree: Tree, mut e: ArchiveEntry) -> Result<EntryRecord> {
        self.advance(&Section::Members(tree, b""))?;
        let path = tree.path(&e.rel_path, e.meta.kind == Kind::Dir);
        let m = &e.meta;
        let mut f =
            Fields { name: path.clone(), mode: m.perm, uid: m.uid.into(), gid: m.gid.into(), mtime: m.mtime.sec, ..Default::default() };
        let mut pax = Vec::new();
        for (k, v) in &e.xattrs {
            let mut key = b"SCHILY.xattr.".to_vec();
            key.extend_from_slice(k);
            header::pax_record(&mut pax, &key, v);
            let text = |key: &[u8], pax: &mut Vec<u8>| {
                if let Some(t) = acl::to_text(v) {
                    header::pax_record(pax, key, t.as_bytes());
                }
            };
            if k == acl::ACCESS {
                text(b"SCHILY.acl.access", &mut pax);
            } else if k == acl::DEFAULT {
                text(b"SCHILY.acl.default", &mut pax);
            }
        }
        let mut record = EntryRecord { path: e.rel_path.clone(), kind: m.kind, size: 0, hash: None, hardlink_to: None, raced: false };
        if let Some(first) = &e.hardlink_to {
            f.typeflag = flag::LINK;
            f.linkname = tree.path(first, false);
            record.hardlink_to = Some(first.clone());
            record.size = m.size;
            self.header(&mut f, pax, m.mtime)?;
            return Ok(record);
        }
        match m.kind {
            Kind::Dir => {
                f.typeflag = flag::DIR;
                if let Some(sv) = e.subvolume {
                    header::pax_record(&mut pax, SUBVOLUME_KEY, if sv.read_only { b"ro" } else { b"rw" });
                }
            }
            Kind::Symlink => {
                f.typeflag = flag::SYMLINK;
                f.linkname = e.link_target.clone().unwrap_or_default();
            }
            Kind::Char | Kind::Block => {
                f.typeflag = if m.kind == Kind::Char { flag::CHAR } else { flag::BLOCK };
                f.devmajor = libc::major(m.rdev).into();
                f.devminor = libc::minor(m.rdev).into();
            }
            Kind::Fifo => f.typeflag = flag::FIFO,
            Kind::Socket => {
                f.typeflag = flag::FILE;
                header::pax_record(&mut pax, b"DOCKROOT.type", b"socket");
            }
            Kind::File => {
                let file =
                    e.data.take().ok_or_else(|| ArchiveError::Layout { what: format!("no data for file `{}`", show(&e.rel_path)) })?;
                f.typeflag = flag::FILE;
                record.size = m.size;
                if let Some(a) = e.ahead.take() {
                    // Read and hashed by a worker: the same member as the
                    // streamed one below, byte for byte.
                    f.size = m.size;
                    self.header(&mut f, pax, m.mtime)?;
                    self.out.write_all(&a.bytes).map_err(out_err("write data"))?;
                    self.pad(m.size)?;
                    record.hash = Some(a.hash);
                    record.raced = self.live && self.raced_since(m, &file);
                    return Ok(record);
                }
                let extents = crate::tree::content::extents(&file, m.size, m.blocks).map_err(|source| ArchiveError::Source {
                    path: show(&e.rel_path),
                    step: "find holes of",
                    source,
                })?;
                let (hash, raced) = if m.size == 0 || extents == [(0, m.size)] {
                    f.size = m.size;
                    self.header(&mut f, pax, m.mtime)?;
                    let h = self.content(&file, m.size, &extents, &e.rel_path)?;
                    self.pad(m.size)?;
                    h
                } else {
                    self.sparse(&mut f, pax, &file, m.size, extents, &e.rel_path, m.mtime)?
                };
                let raced = raced || (self.live && self.raced_since(m, &file));
                record.hash = Some(hash);
                record.raced = raced;
                return Ok(record);
            }
        }
        self.header(&mut f, pax, m.mtime)?;
        Ok(record)
    }

    /// Live: a write during the read moves ctime (or size, or mtime) past
    /// the walk's stat `m`; phase 2 archives the file again.
    fn raced_since(&self, m: &crate::sys::Meta, file: &std::fs::File) -> bool {
        crate::sys::stat::fstat(std::os::fd::AsFd::as_fd(file)).is_ok_and(|a| crate::tree::scan::changed_during_read(m, &a))
    }

    /// Writes the manifest (`len` bytes, streamed from a spool file, never
    /// held in memory) as the last member and finishes the zstd frame.
    pub fn finish(mut self, manifest: std::fs::File, len: u64) -> Result<W> {
        self.end_tree(Tree::Data, manifest, len)?;
        self.out.write_all(&[0u8; 2 * BLOCK]).map_err(out_err("write end of archive"))?;
        self.out.finish().map_err(out_err("finish zstd frame"))
    }

    /// Sets live mode (see the field); phase 2 of a live backup turns it off.
    pub(crate) fn set_live(&mut self, live: bool) {
        self.live = live;
    }

    /// Ends phase 1 of a two-phase archive with the marker member
    /// ([`layout::PHASE2`], `json` describing phase 1); data members that
    /// follow replace earlier ones of the same name.
    pub fn begin_phase2(&mut self, json: &[u8]) -> Result<()> {
        self.advance(&Section::Phase2)?;
        self.small_file(layout::PHASE2, json, 0o600)
    }

    /// Writes the deletion list ([`layout::DELETED`], `len` bytes streamed
    /// from a spool file) after the phase-2 members.
    pub fn add_deleted(&mut self, list: std::fs::File, len: u64) -> Result<()> {
        self.advance(&Section::Deleted)?;
        self.spooled(layout::DELETED, list, len)
    }

    /// Writes `tree`'s manifest member after its last entry (the data-root's
    /// is written by [`ArchiveWriter::finish`]).
    pub fn end_tree(&mut self, tree: Tree, manifest: std::fs::File, len: u64) -> Result<()> {
        self.advance(&Section::Manifest(tree))?;
        self.spooled(&tree.manifest(), manifest, len)
    }

    fn spooled(&mut self, name: &[u8], file: std::fs::File, len: u64) -> Result<()> {
        let mut f = Fields { name: name.to_vec(), mode: 0o600, size: len, mtime: self.now, typeflag: flag::FILE, ..Default::default() };
        self.header(&mut f, Vec::new(), crate::sys::Timespec { sec: self.now, nsec: 0 })?;
        let mut src = std::io::BufReader::with_capacity(1 << 20, file).take(len);
        let n = std::io::copy(&mut src, &mut self.out).map_err(|source| ArchiveError::Scratch { step: "copy into the archive", source })?;
        if n != len {
            let source = std::io::Error::new(std::io::ErrorKind::UnexpectedEof, format!("{n} of {len} bytes"));
            return Err(ArchiveError::Scratch { step: "copy into the archive", source });
        }
        self.pad(len)
    }

    fn small_file(&mut self, path: &[u8], data: &[u8], mode: u32) -> Result<()> {
        let mut f =
            Fields { name: path.to_vec(), mode, size: data.len() as u64, mtime: self.now, typeflag: flag::FILE, ..Default::default() };
        self.header(&mut f, Vec::new(), crate::sys::Timespec { sec: self.now, nsec: 0 })?;
        self.out.write_all(data).map_err(out_err("write member"))?;
        self.pad(data.len() as u64)
    }

    /// Writes the PAX header (if any record is needed) and the ustar header.
    fn header(&mut self, f: &mut Fields, mut pax: Vec<u8>, mtime: crate::sys::Timespec) -> Result<()> {
        let binary = std::str::from_utf8(&f.name).is_err() || std::str::from_utf8(&f.linkname).is_err();
        if f.name.len() > 100 || binary {
            header::pax_record(&mut pax, b"path", &f.name);
        }
        if f.linkname.len() > 100 || binary {
            header::pax_record(&mut pax, b"linkpath", &f.linkname);
        }
        if f.uid > header::octal_max(8) {
            header::pax_record(&mut pax, b"uid", f.uid.to_string().as_bytes());
        }
        if f.gid > header::octal_max(8) {
            header::pax_record(&mut pax, b"gid", f.gid.to_string().as_bytes());
        }
        if f.size > header::octal_max(12) {
            header::pax_record(&mut pax, b"size", f.size.to_string().as_bytes());
        }
        if mtime.nsec != 0 || mtime.sec < 0 || mtime.sec as u64 > header::octal_max(12) {
            header::pax_record(&mut pax, b"mtime", header::pax_time(mtime.sec, mtime.nsec).as_bytes());
        }
        if !pax.is_empty() {
            let base = f.name.rsplit(|&c| c == b'/').find(|s| !s.is_empty()).unwrap_or(b"x");
            let mut name = b"PaxHeaders/".to_vec();
            name.extend_from_slice(&base[..base.len().min(80)]);
            let h = header::build(&Fields {
                name,
                mode: 0o644,
                size: pax.len() as u64,
                // The entry's own time, not the time of the run: an unchanged
                // entry then writes the same bytes every night (restic dedup).
                mtime: f.mtime,
                typeflag: flag::PAX,
                ..Default::default()
            });
            self.out.write_all(&h).map_err(out_err("write header"))?;
            self.out.write_all(&pax).map_err(out_err("write header"))?;
            self.pad(pax.len() as u64)?;
        }
        self.out.write_all(&header::build(f)).map_err(out_err("write header"))
    }

    fn pad(&mut self, len: u64) -> Result<()> {
        let p = header::padding(len) as usize;
        self.out.write_all(&[0u8; BLOCK][..p]).map_err(out_err("write padding"))
    }

    /// Writes the data extents of `file` (holes are left out, as the
    /// sparse map says) and returns the BLAKE3 of its whole content and
    /// whether it raced. The file must not shrink, unless the writer is live:
    /// then the member is zero-padded to the size its header declares.
    fn content(&mut self, file: &std::fs::File, size: u64, extents: &[(u64, u64)], rel: &[u8]) -> Result<([u8; 32], bool)> {
        let mut h = ContentHasher::new();
        let (mut written, mut failed) = (0u64, None);
        let out = &mut self.out;
        let read = stream_range(file, extents, 0..size, |_, c| {
            match c {
                Chunk::Data(d) => {
                    h.update(d);
                    if let Err(e) = out.write_all(d) {
                        // Keep the two failures apart: this one is the output's.
                        failed = Some(e);
                        return Err(std::io::Error::other("output failed"));
                    }
                    written += d.len() as u64;
                }
                Chunk::Hole(n) => h.zeros(n),
            }
            Ok(())
        });
        if let Some(e) = failed {
            return Err(ArchiveError::Output { step: "write data", source: e });
        }
        let want: u64 = extents.iter().map(|e| e.1).sum();
        let short = read.is_err() || written != want;
        if short && self.live {
            // The header already promised `want` bytes: keep the stream whole.
            let mut left = want - written;
            while left > 0 {
                let n = left.min(BLOCK as u64) as usize;
                self.out.write_all(&[0u8; BLOCK][..n]).map_err(out_err("write data"))?;
                left -= n as u64;
            }
            return Ok((h.finalize(), true));
        }
        read.map_err(|source| ArchiveError::Source { path: show(rel), step: "read", source })?;
        if written != want {
            return Err(ArchiveError::SourceChanged { path: show(rel), what: format!("read {written} of {want} bytes") });
        }
        Ok((h.finalize(), false))
    }

    /// Writes a PAX sparse 1.0 member: header named `GNUSparseFile.0/<base>`,
    /// `GNU.sparse.{major,minor,name,realsize}`, and the map in decimal lines
    /// (count, then offset/length pairs) padded to a block before the data.
    #[allow(clippy::too_many_arguments)]
    fn sparse(
        &mut self,
        f: &mut Fields,
        mut pax: Vec<u8>,
        file: &std::fs::File,
        size: u64,
        mut extents: Vec<(u64, u64)>,
        rel: &[u8],
        mtime: crate::sys::Timespec,
    ) -> Result<([u8; 32], bool)> {
        // GNU tar ends the map with a zero-length extent at the real size when the file ends in a hole.
        if extents.last().map(|&(o, l)| o + l) != Some(size) {
            extents.push((size, 0));
        }
        let mut map = format!("{}\n", extents.len());
        for (o, l) in &extents {
            map.push_str(&format!("{o}\n{l}\n"));
        }
        let mut map = map.into_bytes();
        map.resize(map.len() + header::padding(map.len() as u64) as usize, 0);
        let data: u64 = extents.iter().map(|e| e.1).sum();
        header::pax_record(&mut pax, b"GNU.sparse.major", b"1");
        header::pax_record(&mut pax, b"GNU.sparse.minor", b"0");
        header::pax_record(&mut pax, b"GNU.sparse.name", &f.name);
        header::pax_record(&mut pax, b"GNU.sparse.realsize", size.to_string().as_bytes());
        let base = f.name.rsplit(|&c| c == b'/').next().unwrap_or(b"x");
        let mut name = b"GNUSparseFile.0/".to_vec();
        name.extend_from_slice(&base[..base.len().min(80)]);
        let mut hf = Fields { name, size: map.len() as u64 + data, ..f.clone() };
        // The real name travels in GNU.sparse.name only; `path` would override it in some readers.
        let binary = std::str::from_utf8(&f.name).is_err();
        if binary {
            hf.name = b"GNUSparseFile.0/binary-name".to_vec();
        }
        self.header(&mut hf, pax, mtime)?;
        self.out.write_all(&map).map_err(out_err("write sparse map"))?;
        let data_extents: Vec<(u64, u64)> = extents.iter().copied().filter(|e| e.1 > 0).collect();
        let hash = self.content(file, size, &data_extents, rel)?;
        self.pad(hf.size)?;
        Ok(hash)
    }
}

/// The PAX record marking a directory as a btrfs subvolume's root (`rw` or
/// `ro`); GNU tar ignores it and extracts a plain directory.
pub(crate) const SUBVOLUME_KEY: &[u8] = b"DOCKROOT.subvolume";
