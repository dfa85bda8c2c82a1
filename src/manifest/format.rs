//! One manifest entry and its line encoding.
//!
//! ```text
//! #dockroot-manifest 1
//! . type=dir mode=0755 uid=0 gid=0 mtime=1700000000.000000001
//! bin/ls type=file mode=0755 uid=0 gid=0 mtime=… size=138208 blake3=… ino=… ctime=… xattr.security.capability=\x01…
//! bin/link type=hardlink target=bin/ls
//! #end entries=3
//! ```

use super::escape::{escape, unescape};
use crate::sys::Timespec;
use crate::sys::xattr::Xattrs;

pub const HEADER: &str = "#dockroot-manifest 1";
pub const TRAILER_PREFIX: &str = "#end entries=";

/// What an entry is, with the fields that only some types have.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Body {
    /// `ino` and `ctime` are the source's, recorded so that a later delta pass
    /// can tell a rewrite that kept size and mtime.
    File {
        size: u64,
        blake3: [u8; 32],
        ino: u64,
        ctime: Timespec,
    },
    Dir,
    Symlink {
        target: Vec<u8>,
    },
    Char {
        rdev: u64,
    },
    Block {
        rdev: u64,
    },
    Fifo,
    Socket,
    /// Another name of the file recorded earlier at `target`.
    Hardlink {
        target: Vec<u8>,
    },
}

impl Body {
    pub(crate) fn type_name(&self) -> &'static str {
        match self {
            Body::File { .. } => "file",
            Body::Dir => "dir",
            Body::Symlink { .. } => "symlink",
            Body::Char { .. } => "char",
            Body::Block { .. } => "block",
            Body::Fifo => "fifo",
            Body::Socket => "socket",
            Body::Hardlink { .. } => "hardlink",
        }
    }
}

/// One entry. `path` is relative to the tree root; the root itself is `""`
/// (written as `.`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Record {
    pub path: Vec<u8>,
    pub body: Body,
    pub perm: u32,
    pub uid: u32,
    pub gid: u32,
    pub mtime: Timespec,
    pub xattrs: Xattrs,
}

fn rdev_str(rdev: u64) -> String {
    format!("{}:{}", libc::major(rdev), libc::minor(rdev))
}

fn parse_rdev(s: &str) -> Option<u64> {
    let (a, b) = s.split_once(':')?;
    Some(libc::makedev(a.parse().ok()?, b.parse().ok()?))
}

pub(crate) fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn unhex32(s: &str) -> Option<[u8; 32]> {
    if s.len() != 64 {
        return None;
    }
    let mut out = [0u8; 32];
    for (i, o) in out.iter_mut().enumerate() {
        *o = u8::from_str_radix(s.get(2 * i..2 * i + 2)?, 16).ok()?;
    }
    Some(out)
}

impl Record {
    /// A later name of a hardlinked file: only the target (its group's first
    /// name) is recorded; the inode's metadata is on the target's record.
    pub fn hardlink(path: Vec<u8>, target: Vec<u8>) -> Record {
        Record { path, body: Body::Hardlink { target }, perm: 0, uid: 0, gid: 0, mtime: Default::default(), xattrs: vec![] }
    }

    /// Encodes the record as one line, without the newline.
    pub fn to_line(&self) -> String {
        let mut s = String::with_capacity(128);
        if self.path.is_empty() {
            s.push('.');
        } else {
            escape(&self.path, &mut s);
        }
        s.push_str(" type=");
        s.push_str(self.body.type_name());
        if let Body::Hardlink { target } = &self.body {
            s.push_str(" target=");
            escape(target, &mut s);
            return s;
        }
        s.push_str(&format!(" mode={:04o} uid={} gid={} mtime={}", self.perm, self.uid, self.gid, self.mtime));
        match &self.body {
            Body::File { size, blake3, ino, ctime } => {
                s.push_str(&format!(" size={size} blake3={} ino={ino} ctime={ctime}", hex(blake3)));
            }
            Body::Symlink { target } => {
                s.push_str(" target=");
                escape(target, &mut s);
            }
            Body::Char { rdev } | Body::Block { rdev } => s.push_str(&format!(" rdev={}", rdev_str(*rdev))),
            _ => {}
        }
        for (k, v) in &self.xattrs {
            s.push_str(" xattr.");
            escape(k, &mut s);
            s.push('=');
            escape(v, &mut s);
        }
        s
    }

    /// Parses one line; the error says what is wrong with it.
    pub fn parse(line: &str) -> Result<Record, String> {
        let mut parts = line.split(' ');
        let p = parts.next().ok_or("empty line")?;
        let path = if p == "." { Vec::new() } else { unescape(p).ok_or("bad escape in path")? };
        let mut f = Fields::default();
        for kv in parts {
            let (k, v) = kv.split_once('=').ok_or_else(|| format!("field without '=': {kv}"))?;
            f.set(k, v)?;
        }
        let body = f.body()?;
        let hardlink = matches!(body, Body::Hardlink { .. });
        let need = |o: Option<u32>, n: &str| o.ok_or_else(|| format!("missing {n}"));
        Ok(Record {
            path,
            perm: if hardlink { 0 } else { need(f.mode, "mode")? },
            uid: if hardlink { 0 } else { need(f.uid, "uid")? },
            gid: if hardlink { 0 } else { need(f.gid, "gid")? },
            mtime: if hardlink { Timespec::default() } else { f.mtime.ok_or("missing mtime")? },
            xattrs: f.xattrs,
            body,
        })
    }
}

/// The fields of a line as they are parsed, before they make a record.
#[derive(Default)]
struct Fields {
    ty: Option<String>,
    mode: Option<u32>,
    uid: Option<u32>,
    gid: Option<u32>,
    mtime: Option<Timespec>,
    ctime: Option<Timespec>,
    size: Option<u64>,
    ino: Option<u64>,
    blake3: Option<[u8; 32]>,
    target: Option<Vec<u8>>,
    rdev: Option<u64>,
    xattrs: Xattrs,
}

impl Fields {
    fn set(&mut self, k: &str, v: &str) -> Result<(), String> {
        let bad = || format!("bad value for {k}: {v}");
        match k {
            "type" => self.ty = Some(v.to_string()),
            "mode" => self.mode = Some(u32::from_str_radix(v, 8).map_err(|_| bad())?),
            "uid" => self.uid = Some(v.parse().map_err(|_| bad())?),
            "gid" => self.gid = Some(v.parse().map_err(|_| bad())?),
            "mtime" => self.mtime = Some(v.parse().map_err(|_| bad())?),
            "ctime" => self.ctime = Some(v.parse().map_err(|_| bad())?),
            "size" => self.size = Some(v.parse().map_err(|_| bad())?),
            "ino" => self.ino = Some(v.parse().map_err(|_| bad())?),
            "blake3" => self.blake3 = Some(unhex32(v).ok_or_else(bad)?),
            "target" => self.target = Some(unescape(v).ok_or_else(bad)?),
            "rdev" => self.rdev = Some(parse_rdev(v).ok_or_else(bad)?),
            _ => {
                let name = k.strip_prefix("xattr.").ok_or_else(|| format!("unknown field {k}"))?;
                let name = unescape(name).ok_or_else(bad)?;
                self.xattrs.push((name, unescape(v).ok_or_else(bad)?));
            }
        }
        Ok(())
    }

    fn body(&mut self) -> Result<Body, String> {
        let ty = self.ty.take().ok_or("missing type")?;
        let target = |t: Option<Vec<u8>>| t.ok_or_else(|| format!("missing target for {ty}"));
        Ok(match ty.as_str() {
            "file" => Body::File {
                size: self.size.ok_or("missing size")?,
                blake3: self.blake3.ok_or("missing blake3")?,
                ino: self.ino.unwrap_or(0),
                ctime: self.ctime.unwrap_or_default(),
            },
            "dir" => Body::Dir,
            "symlink" => Body::Symlink { target: target(self.target.take())? },
            "hardlink" => Body::Hardlink { target: target(self.target.take())? },
            "char" => Body::Char { rdev: self.rdev.ok_or("missing rdev")? },
            "block" => Body::Block { rdev: self.rdev.ok_or("missing rdev")? },
            "fifo" => Body::Fifo,
            "socket" => Body::Socket,
            other => return Err(format!("unknown type {other}")),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rec(path: &[u8], body: Body) -> Record {
        Record {
            path: path.to_vec(),
            body,
            perm: 0o4755,
            uid: 231072,
            gid: 65534,
            mtime: Timespec { sec: -5, nsec: 7 },
            xattrs: vec![(b"user.x y".to_vec(), b"a\nb\0=c".to_vec())],
        }
    }

    #[test]
    fn every_body_round_trips() {
        let bodies = [
            Body::File { size: 9, blake3: [7; 32], ino: 42, ctime: Timespec { sec: 1, nsec: 2 } },
            Body::Dir,
            Body::Symlink { target: b"../x y\n".to_vec() },
            Body::Char { rdev: 0 },
            Body::Block { rdev: libc::makedev(7, 3) },
            Body::Fifo,
            Body::Socket,
        ];
        for b in bodies {
            let r = rec(b"d\xff/na me\n", b);
            assert_eq!(Record::parse(&r.to_line()).unwrap(), r);
        }
        let root = rec(b"", Body::Dir);
        assert!(root.to_line().starts_with(". "));
        assert_eq!(Record::parse(&root.to_line()).unwrap(), root);
    }

    #[test]
    fn hardlink_lines_carry_only_the_target() {
        let r = Record {
            perm: 0,
            uid: 0,
            gid: 0,
            mtime: Timespec::default(),
            xattrs: vec![],
            ..rec(b"b", Body::Hardlink { target: b"a".to_vec() })
        };
        assert_eq!(r.to_line(), "b type=hardlink target=a");
        assert_eq!(Record::parse(&r.to_line()).unwrap(), r);
    }

    #[test]
    fn malformed_lines_are_rejected() {
        for l in [
            "x",
            "x type=file",
            "x type=dir mode=9z uid=0 gid=0 mtime=1.000000000",
            "x type=nope mode=0 uid=0 gid=0 mtime=1.000000000",
            "x type=dir mode=0 uid=0 gid=0 mtime=1.000000000 bogus=1",
        ] {
            assert!(Record::parse(l).is_err(), "{l}");
        }
    }
}
