//! Opening and reading archives: input detection (zstd only), a member
//! iterator over the tar stream that applies PAX records with hard limits.

use std::fs::File;
use std::io::{self, BufReader, Read};
use std::path::Path;

use super::error::{ArchiveError, Result};
use super::header::{self, BLOCK, Block, Fields, MAX_PAX, flag};
use super::pipe::{Pipe, spawn_pipe};
use super::{layout, show};

/// Largest `meta.json` or config member kept in memory. The manifest, which
/// grows with the entry count, is never read whole: it is streamed (its
/// bound is the manifest reader's longest line).
pub(crate) const MAX_SMALL: u64 = 16 << 20;
/// Largest total of xattr values on one entry.
pub(crate) const MAX_XATTRS: usize = 1 << 20;

/// One member with its PAX records applied.
#[derive(Debug, Default)]
pub(crate) struct Member {
    /// Position in the archive (counting PAX headers as part of their member).
    pub index: u64,
    pub path: Vec<u8>,
    pub fields: Fields,
    pub mtime_nsec: u32,
    pub xattrs: Vec<(Vec<u8>, Vec<u8>)>,
    /// `GNU.sparse.realsize` of a PAX sparse 1.0 member.
    pub sparse_size: Option<u64>,
    /// `DOCKROOT.type=socket`.
    pub socket: bool,
    /// `DOCKROOT.subvolume=rw|ro` on a directory: a btrfs subvolume's root.
    /// Archives from before it have none: plain directories, as they were restored then.
    pub subvolume: Option<crate::sys::btrfs::Subvolume>,
}

impl Member {
    pub(crate) fn malformed(&self, reason: impl Into<String>) -> ArchiveError {
        ArchiveError::Malformed { index: self.index, member: show(&self.path), reason: reason.into() }
    }

    /// The member is unsafe to restore (escapes, out of place).
    pub(crate) fn rejected(&self, reason: impl Into<String>) -> ArchiveError {
        ArchiveError::Unsafe { member: show(&self.path), reason: reason.into() }
    }
}

/// Iterates the members of a tar stream.
pub struct TarReader<R: Read> {
    r: R,
    /// Unread data bytes of the current member, then its padding.
    left: u64,
    pad: u64,
    index: u64,
    ended: bool,
}

fn input(step: &'static str) -> impl FnOnce(io::Error) -> ArchiveError {
    move |source| ArchiveError::Input { step, source }
}

impl<R: Read> TarReader<R> {
    pub fn new(r: R) -> Self {
        TarReader { r, left: 0, pad: 0, index: 0, ended: false }
    }

    /// Reads data of the current member (0 at its end).
    pub(crate) fn read_data(&mut self, buf: &mut [u8]) -> Result<usize> {
        if self.left == 0 {
            return Ok(0);
        }
        stop_check()?;
        let k = (buf.len() as u64).min(self.left) as usize;
        let n = self.r.read(&mut buf[..k]).map_err(input("read member data"))?;
        if n == 0 {
            return Err(ArchiveError::Input { step: "read member data", source: io::ErrorKind::UnexpectedEof.into() });
        }
        self.left -= n as u64;
        Ok(n)
    }

    /// Reads exactly `buf.len()` bytes of data of the current member.
    pub(crate) fn read_data_exact(&mut self, mut buf: &mut [u8]) -> Result<()> {
        while !buf.is_empty() {
            let n = self.read_data(buf)?;
            if n == 0 {
                return Err(ArchiveError::Input { step: "read member data", source: io::ErrorKind::UnexpectedEof.into() });
            }
            buf = &mut buf[n..];
        }
        Ok(())
    }

    /// Remaining data bytes of the current member.
    pub(crate) fn data_left(&self) -> u64 {
        self.left
    }

    fn skip_rest(&mut self) -> Result<()> {
        let n = self.left + self.pad;
        let got = io::copy(&mut (&mut self.r).take(n), &mut io::sink()).map_err(input("skip member data"))?;
        if got != n {
            return Err(ArchiveError::Input { step: "skip member data", source: io::ErrorKind::UnexpectedEof.into() });
        }
        self.left = 0;
        self.pad = 0;
        Ok(())
    }

    fn block(&mut self) -> Result<[u8; BLOCK]> {
        let mut b = [0u8; BLOCK];
        self.r.read_exact(&mut b).map_err(input("read header"))?;
        Ok(b)
    }

    /// The next member, or None after the end-of-archive marker.
    pub(crate) fn next_member(&mut self) -> Result<Option<Member>> {
        if self.ended {
            return Ok(None);
        }
        stop_check()?;
        self.skip_rest()?;
        self.index += 1;
        let mut m = Member { index: self.index, ..Default::default() };
        let mut pax: Option<Vec<(Vec<u8>, Vec<u8>)>> = None;
        loop {
            let f = match header::parse(&self.block()?).map_err(|r| m.malformed(r))? {
                Block::Zero => {
                    if pax.is_some() {
                        return Err(m.malformed("PAX header without a member"));
                    }
                    match header::parse(&self.block()?).map_err(|r| m.malformed(r))? {
                        Block::Zero => {
                            self.ended = true;
                            return Ok(None);
                        }
                        Block::Header(_) => {
                            return Err(m.malformed("lone zero block inside the archive"));
                        }
                    }
                }
                Block::Header(f) => f,
            };
            m.path = f.name.clone();
            match f.typeflag {
                flag::PAX => {
                    if pax.is_some() {
                        return Err(m.malformed("two PAX headers in a row"));
                    }
                    if f.size > MAX_PAX {
                        return Err(m.malformed(format!("PAX header of {} bytes exceeds the {MAX_PAX}-byte limit", f.size)));
                    }
                    let mut data = vec![0u8; f.size as usize];
                    self.r.read_exact(&mut data).map_err(input("read PAX header"))?;
                    let mut p = vec![0u8; header::padding(f.size) as usize];
                    self.r.read_exact(&mut p).map_err(input("read PAX header"))?;
                    pax = Some(header::parse_pax(&data).map_err(|r| m.malformed(r))?);
                }
                flag::GLOBAL | b'L' | b'K' => {
                    return Err(m.malformed(format!("unsupported header type `{}` (not written by dockroot)", f.typeflag as char)));
                }
                _ => {
                    m.fields = f;
                    break;
                }
            }
        }
        for (k, v) in pax.unwrap_or_default() {
            self.apply_pax(&mut m, k, v)?;
        }
        let size = m.fields.size;
        let t = m.fields.typeflag;
        if size > 0 && !matches!(t, flag::FILE | flag::OLD_FILE) {
            return Err(m.malformed(format!("type `{}` member carries {size} data bytes", t as char)));
        }
        self.left = size;
        self.pad = header::padding(size);
        Ok(Some(m))
    }

    fn apply_pax(&self, m: &mut Member, k: Vec<u8>, v: Vec<u8>) -> Result<()> {
        let num = |v: &[u8]| header::parse_pax_num(v).map_err(|r| m.malformed(r));
        match k.as_slice() {
            b"path" => m.path = v,
            b"linkpath" => m.fields.linkname = v,
            b"size" => m.fields.size = num(&v)?,
            b"uid" => m.fields.uid = num(&v)?,
            b"gid" => m.fields.gid = num(&v)?,
            b"mtime" => {
                let (s, ns) = header::parse_pax_time(&v).map_err(|r| m.malformed(r))?;
                m.fields.mtime = s;
                m.mtime_nsec = ns;
            }
            b"GNU.sparse.name" => m.path = v,
            b"GNU.sparse.realsize" => m.sparse_size = Some(num(&v)?),
            // PAX sparse 1.0 only: major 1, minor 0.
            b"GNU.sparse.major" | b"GNU.sparse.minor" if v != b"1" && v != b"0" => {
                return Err(m.malformed("unsupported GNU sparse format version"));
            }
            b"GNU.sparse.major" | b"GNU.sparse.minor" => {}
            b"DOCKROOT.type" => {
                if v != b"socket" {
                    return Err(m.malformed(format!("unknown DOCKROOT.type `{}`", show(&v))));
                }
                m.socket = true;
            }
            b"DOCKROOT.subvolume" => {
                let read_only = match v.as_slice() {
                    b"rw" => false,
                    b"ro" => true,
                    _ => return Err(m.malformed(format!("unknown DOCKROOT.subvolume `{}`", show(&v)))),
                };
                m.subvolume = Some(crate::sys::btrfs::Subvolume { read_only });
            }
            _ if k.starts_with(b"SCHILY.xattr.") => {
                let name = k[13..].to_vec();
                if name.is_empty() || name.len() > 255 || name.contains(&0) || v.len() > 65536 {
                    return Err(m.malformed(format!("xattr `{}` has an invalid name or a value over 64 KiB", show(&name))));
                }
                let total: usize = m.xattrs.iter().map(|(a, b)| a.len() + b.len()).sum::<usize>() + name.len() + v.len();
                if total > MAX_XATTRS {
                    return Err(m.malformed("xattrs exceed 1 MiB on one entry"));
                }
                m.xattrs.push((name, v));
            }
            _ if k.starts_with(b"GNU.sparse.") => {
                return Err(m.malformed(format!("unsupported sparse record `{}` (only PAX sparse 1.0)", show(&k))));
            }
            // atime, ctime, hdrcharset, SCHILY.acl.* (the binary xattr is authoritative), comments.
            _ => {}
        }
        Ok(())
    }

    /// Reads the whole data of a small member.
    pub(crate) fn read_small(&mut self, m: &Member) -> Result<Vec<u8>> {
        if self.left > MAX_SMALL {
            return Err(m.malformed(format!("member of {} bytes; meta.json and config members are at most {MAX_SMALL}", self.left)));
        }
        let mut v = vec![0u8; self.left as usize];
        self.read_data_exact(&mut v)?;
        Ok(v)
    }

    /// After the end marker: everything left must decompress cleanly (this is
    /// where zstd checks the frame checksum) and be zero padding.
    pub fn finish(mut self) -> Result<u64> {
        let mut buf = vec![0u8; 64 << 10];
        let mut total = 0u64;
        loop {
            let n = self.r.read(&mut buf).map_err(input("read end of archive"))?;
            if n == 0 {
                return Ok(total);
            }
            if buf[..n].iter().any(|&b| b != 0) {
                return Err(ArchiveError::Malformed {
                    index: self.index,
                    member: "(after end of archive)".into(),
                    reason: "data after the end-of-archive marker".into(),
                });
            }
            total += n as u64;
        }
    }
}

/// An opened archive: the decompressed member stream and the `meta.json` bytes.
pub struct ArchiveReader {
    pub tar: TarReader<Pipe>,
    pub meta: Vec<u8>,
}

/// A reader that first returns some already-read bytes.
pub(crate) struct Peeked<R> {
    head: io::Cursor<Vec<u8>>,
    rest: R,
}

impl<R: Read> Read for Peeked<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.head.read(buf)?;
        if n > 0 { Ok(n) } else { self.rest.read(buf) }
    }
}

const UNCOMPRESSED: &str = "uncompressed tar";

fn sniff(head: &[u8]) -> Option<&'static str> {
    Some(match head {
        [] => "empty input",
        [0x28, 0xb5, 0x2f, 0xfd, ..] => return None,
        [0x1f, 0x8b, ..] => "gzip data",
        [0xfd, b'7', b'z', b'X', b'Z', ..] => "xz data",
        [b'B', b'Z', b'h', ..] => "bzip2 data",
        _ if head.len() >= 262 && &head[257..262] == b"ustar" => UNCOMPRESSED,
        _ => "unrecognized data, not zstd",
    })
}

/// Opens an archive from any reader: checks for zstd, then requires the first
/// member to be `.dockroot/meta.json`.
pub fn open_reader<R: Read + Send + 'static>(mut r: R) -> Result<ArchiveReader> {
    let mut head = Vec::with_capacity(512);
    (&mut r).take(512).read_to_end(&mut head).map_err(input("read the start"))?;
    let plain = sniff(&head) == Some(UNCOMPRESSED);
    if let Some(what) = sniff(&head).filter(|_| !plain) {
        return Err(ArchiveError::NotArchive { what: what.into() });
    }
    let p = Peeked { head: io::Cursor::new(head), rest: r };
    // An uncompressed archive (`backup --compress none`) is the same tar stream.
    let mut tar = if plain {
        TarReader::new(spawn_pipe(BufReader::with_capacity(1 << 20, p)))
    } else {
        let dec = zstd::stream::read::Decoder::with_buffer(BufReader::with_capacity(1 << 20, p)).map_err(input("start zstd"))?;
        TarReader::new(spawn_pipe(dec))
    };
    let first = match tar.next_member() {
        Ok(Some(m)) => m,
        Ok(None) => {
            return Err(ArchiveError::NotArchive { what: "empty tar stream".into() });
        }
        Err(ArchiveError::Malformed { .. }) => {
            return Err(ArchiveError::NotArchive { what: "zstd data that is not a tar stream".into() });
        }
        Err(e) => return Err(e),
    };
    if first.path != layout::META || !matches!(first.fields.typeflag, flag::FILE | flag::OLD_FILE) {
        return Err(ArchiveError::NotArchive { what: format!("first member is `{}`, not .dockroot/meta.json", show(&first.path)) });
    }
    let meta = tar.read_small(&first)?;
    Ok(ArchiveReader { tar, meta })
}

/// Opens an archive file, stdin for `-`, or a restic snapshot for
/// `restic:REPO[:SNAPSHOT|latest]` (`latest`: this host's newest).
pub fn open(path: &Path) -> Result<ArchiveReader> {
    if let Some(src) = path.to_str().and_then(super::restic::ResticSource::parse) {
        let restic = super::restic::Restic::new(src.repo);
        let host = (src.snapshot == "latest").then(crate::util::hostname);
        let snap = restic.resolve(&src.snapshot, host.as_deref())?;
        return open_reader(restic.dump(&snap)?);
    }
    let r: Box<dyn Read + Send> =
        if path == Path::new("-") { Box::new(io::stdin()) } else { Box::new(File::open(path).map_err(input("open the archive file"))?) };
    open_reader(r)
}

/// Ends a read of the archive (extract, verify) at the next member or data
/// chunk once a terminating signal arrived.
fn stop_check() -> Result<()> {
    match crate::sys::process::termination_signal() {
        Some((signal, _)) => Err(ArchiveError::Interrupted(signal)),
        None => Ok(()),
    }
}
