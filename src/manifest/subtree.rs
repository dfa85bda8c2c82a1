//! The manifest of one subtree, cut out of a whole tree's manifest as it
//! streams by (`extract --volume`, `restore --volume`): the entries below
//! a prefix, with paths made relative to it (the prefix itself becomes `.`),
//! and a new trailer. Nothing is held in memory but the current line.
//!
//! Escaping is byte by byte and leaves `/` alone, so the escaped path of
//! `PREFIX/rest` is the escaped prefix, `/`, then the escaped rest: the cut
//! works on the escaped text and needs no round trip through a [`Record`].
//! The subtree is contiguous in walk order, so the order the reader checks
//! holds for the output too.
//!
//! A hardlink below the prefix whose first name is outside it cannot be
//! described by the subtree's manifest (nor made by its extraction): an
//! error, which names the link.
//!
//! [`Record`]: super::Record

use std::io::{self, Write};

use super::escape::escape;
use super::format::{HEADER, TRAILER_PREFIX};

/// A `Write` that receives a whole manifest and writes the subtree's to `out`.
pub struct Subtree<W: Write> {
    out: W,
    /// The escaped prefix (empty: the whole tree).
    prefix: String,
    line: Vec<u8>,
    /// Entry lines read, and written.
    seen: u64,
    kept: u64,
    header: bool,
    trailer: bool,
}

fn bad(msg: String) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, msg)
}

impl<W: Write> Subtree<W> {
    /// Cuts the subtree at `prefix` (a path relative to the tree root,
    /// without leading or trailing `/`).
    pub fn new(out: W, prefix: &[u8]) -> Self {
        let mut p = String::new();
        escape(prefix, &mut p);
        Subtree { out, prefix: p, line: Vec::new(), seen: 0, kept: 0, header: false, trailer: false }
    }

    /// Entries of the subtree written so far.
    pub fn kept(&self) -> u64 {
        self.kept
    }

    /// Checks the whole manifest was read (trailer and count) and writes the
    /// subtree's trailer. Returns the subtree's entry count.
    pub fn finish(mut self) -> io::Result<u64> {
        if !self.line.is_empty() || !self.trailer {
            return Err(bad("the manifest ends without its `#end` line: truncated".into()));
        }
        writeln!(self.out, "{TRAILER_PREFIX}{}", self.kept)?;
        self.out.flush()?;
        Ok(self.kept)
    }

    /// The part of an escaped path below the prefix (`.` for the prefix itself).
    fn cut<'l>(&self, path: &'l str) -> Option<&'l str> {
        if self.prefix.is_empty() {
            return Some(path);
        }
        match path.strip_prefix(self.prefix.as_str()) {
            Some("") => Some("."),
            Some(rest) => rest.strip_prefix('/'),
            None => None,
        }
    }

    fn take_line(&mut self, line: &str) -> io::Result<()> {
        if self.trailer {
            return Err(bad("lines after the manifest's `#end` line".into()));
        }
        if !self.header {
            if line != HEADER {
                return Err(bad(format!("not a dockroot manifest (first line `{}`)", line.escape_debug())));
            }
            self.header = true;
            return writeln!(self.out, "{HEADER}");
        }
        if let Some(n) = line.strip_prefix(TRAILER_PREFIX) {
            if n.parse::<u64>().ok() != Some(self.seen) {
                return Err(bad(format!("the manifest's trailer says {n} entries, it has {}: truncated or damaged", self.seen)));
            }
            self.trailer = true;
            return Ok(());
        }
        self.seen += 1;
        let (path, fields) = line.split_once(' ').ok_or_else(|| bad(format!("manifest line without fields: `{}`", line.escape_debug())))?;
        let Some(rel) = self.cut(path) else { return Ok(()) };
        let fields = match fields.strip_prefix("type=hardlink target=") {
            Some(target) => {
                let t = self.cut(target).filter(|t| *t != ".").ok_or_else(|| {
                    bad(format!(
                        "`{path}` is a hardlink to `{target}`, outside the part asked for; extract a part that holds both (e.g. --path of a common parent)"
                    ))
                })?;
                format!("type=hardlink target={t}")
            }
            None => fields.to_string(),
        };
        self.kept += 1;
        writeln!(self.out, "{rel} {fields}")
    }
}

impl<W: Write> Write for Subtree<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        for piece in buf.split_inclusive(|&b| b == b'\n') {
            self.line.extend_from_slice(piece);
            if self.line.len() as u64 > super::reader::MAX_LINE {
                return Err(bad("a manifest line longer than 16 MiB".into()));
            }
            if self.line.ends_with(b"\n") {
                let line = std::mem::take(&mut self.line);
                let s = std::str::from_utf8(&line[..line.len() - 1]).map_err(|_| bad("a manifest line is not ASCII".into()))?;
                self.take_line(s)?;
            }
        }
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        self.out.flush()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const WHOLE: &str = "#dockroot-manifest 1
. type=dir mode=0710 uid=0 gid=0 mtime=1.000000000
volumes type=dir mode=0701 uid=0 gid=0 mtime=1.000000000
volumes/a type=dir mode=0755 uid=0 gid=0 mtime=1.000000000
volumes/a/_data type=dir mode=0755 uid=999 gid=0 mtime=2.000000000
volumes/a/_data/f type=file mode=0644 uid=0 gid=0 mtime=1.000000000 size=0 blake3=af1349b9f5f9a1a6a0404dea36dcc9499bcb25c9adc112b7cc9a93cae41f3262 ino=0 ctime=0.000000000
volumes/a/_data/g type=hardlink target=volumes/a/_data/f
volumes/a/_data\\x20x type=dir mode=0755 uid=0 gid=0 mtime=1.000000000
volumes/a/_datax type=dir mode=0755 uid=0 gid=0 mtime=1.000000000
volumes/b type=dir mode=0755 uid=0 gid=0 mtime=1.000000000
#end entries=9
";

    fn cut(whole: &str, prefix: &[u8]) -> io::Result<String> {
        let mut out = Vec::new();
        let mut s = Subtree::new(&mut out, prefix);
        // Byte by byte: lines are cut wherever the writes split them.
        for b in whole.as_bytes() {
            s.write_all(&[*b])?;
        }
        s.finish()?;
        Ok(String::from_utf8(out).unwrap())
    }

    #[test]
    fn cuts_the_subtree_with_relative_paths_and_a_new_trailer() {
        let got = cut(WHOLE, b"volumes/a/_data").unwrap();
        let want = "#dockroot-manifest 1
. type=dir mode=0755 uid=999 gid=0 mtime=2.000000000
f type=file mode=0644 uid=0 gid=0 mtime=1.000000000 size=0 blake3=af1349b9f5f9a1a6a0404dea36dcc9499bcb25c9adc112b7cc9a93cae41f3262 ino=0 ctime=0.000000000
g type=hardlink target=f
#end entries=3
";
        assert_eq!(got, want);
        // A name with an escaped byte is its own subtree.
        assert!(cut(WHOLE, b"volumes/a/_data x").unwrap().contains(". type=dir"));
        assert_eq!(cut(WHOLE, b"").unwrap(), WHOLE);
        assert!(cut(WHOLE, b"volumes/zzz").unwrap().ends_with("#end entries=0\n"));
    }

    #[test]
    fn refuses_truncation_and_links_out_of_the_subtree() {
        let e = cut(&WHOLE.replace("#end entries=9\n", ""), b"volumes/a").unwrap_err().to_string();
        assert!(e.contains("truncated"), "{e}");
        let e = cut(&WHOLE.replace("entries=9", "entries=8"), b"volumes/a").unwrap_err().to_string();
        assert!(e.contains("trailer"), "{e}");
        let out = WHOLE.replace("target=volumes/a/_data/f", "target=volumes/b");
        let e = cut(&out, b"volumes/a/_data").unwrap_err().to_string();
        assert!(e.contains("hardlink") && e.contains("volumes/b"), "{e}");
        assert!(cut("#dockroot-manifest 2\n", b"x").is_err());
    }
}
