//! Reads a manifest as a stream of records, checking the header, the order of
//! the paths and the trailer (a truncated manifest is an error, not a shorter
//! tree).

use std::cmp::Ordering;
use std::fs::File;
use std::io::{BufRead, BufReader, Read};
use std::path::{Path, PathBuf};

use super::format::{HEADER, Record, TRAILER_PREFIX};
use super::order;
use crate::error::{Error, Result};

/// Longest manifest line accepted: the streaming bound that replaces a limit
/// on the manifest's size. A record holds one path (escaped, up to 4 bytes a
/// byte; a path of megabytes would be thousands of levels deep) and its
/// xattrs (the archive reader caps them at 1 MiB an entry). 16 MiB bounds
/// the memory of a damaged or hostile manifest streamed from an archive,
/// whatever its size.
pub(crate) const MAX_LINE: u64 = 16 << 20;

pub struct Reader {
    input: Box<dyn BufRead + Send>,
    path: PathBuf,
    line_no: u64,
    count: u64,
    last: Option<Vec<u8>>,
    peeked: Option<Record>,
    done: bool,
}

impl Reader {
    pub fn open(path: &Path) -> Result<Reader> {
        let f = File::open(path).map_err(|e| Error::Io { step: "open manifest", path: path.display().to_string(), source: e })?;
        Reader::new(Box::new(BufReader::with_capacity(1 << 20, f)), path)
    }

    pub fn new(input: Box<dyn BufRead + Send>, path: &Path) -> Result<Reader> {
        let mut r = Reader { input, path: path.to_path_buf(), line_no: 0, count: 0, last: None, peeked: None, done: false };
        match r.raw_line()? {
            Some(h) if h == HEADER => Ok(r),
            _ => Err(r.bad(format!("the first line is not '{HEADER}'"))),
        }
    }

    fn bad(&self, msg: String) -> Error {
        Error::Manifest { path: self.path.display().to_string(), line: self.line_no, msg }
    }

    fn raw_line(&mut self) -> Result<Option<String>> {
        let mut buf = Vec::new();
        let n = (&mut self.input).take(MAX_LINE + 1).read_until(b'\n', &mut buf).map_err(|e| Error::Io {
            step: "read manifest",
            path: self.path.display().to_string(),
            source: e,
        })?;
        if n == 0 {
            return Ok(None);
        }
        self.line_no += 1;
        if n as u64 > MAX_LINE {
            return Err(self.bad(format!("a line is longer than {MAX_LINE} bytes")));
        }
        if buf.pop() != Some(b'\n') {
            return Err(self.bad("the last line is cut off".into()));
        }
        String::from_utf8(buf).map(Some).map_err(|_| self.bad("not ASCII text".into()))
    }

    /// The next record, or `None` after a valid trailer.
    pub(crate) fn next_record(&mut self) -> Result<Option<Record>> {
        if let Some(r) = self.peeked.take() {
            return Ok(Some(r));
        }
        if self.done {
            return Ok(None);
        }
        let Some(line) = self.raw_line()? else {
            return Err(self.bad("the manifest ends without its '#end' trailer: it is truncated".into()));
        };
        if let Some(n) = line.strip_prefix(TRAILER_PREFIX) {
            if n.parse::<u64>().ok() != Some(self.count) {
                return Err(self.bad(format!("trailer says {n} entries but {} were read", self.count)));
            }
            self.done = true;
            return Ok(None);
        }
        let rec = Record::parse(&line).map_err(|m| self.bad(m))?;
        if let Some(last) = &self.last
            && order::cmp(last, &rec.path) != Ordering::Less
        {
            return Err(self.bad("entries are not in walk order".into()));
        }
        self.last = Some(rec.path.clone());
        self.count += 1;
        Ok(Some(rec))
    }

    /// Reads the rest up to the trailer and checks that nothing follows it;
    /// returns the number of entries. For a manifest embedded in a longer
    /// stream (an archive member), where garbage after the trailer is damage.
    pub fn finish(mut self) -> Result<u64> {
        while self.next_record()?.is_some() {}
        let mut rest = [0u8; 1];
        let n = self.input.read(&mut rest).map_err(|e| Error::Io {
            step: "read manifest",
            path: self.path.display().to_string(),
            source: e,
        })?;
        if n != 0 {
            return Err(self.bad("data after the '#end' trailer".into()));
        }
        Ok(self.count)
    }

    pub(crate) fn peek(&mut self) -> Result<Option<&Record>> {
        if self.peeked.is_none() {
            self.peeked = self.next_record()?;
        }
        Ok(self.peeked.as_ref())
    }

    /// Skips records before `path` (in walk order) and returns the record at
    /// `path` if there is one. Used to merge a manifest with a walk.
    pub(crate) fn seek_to(&mut self, path: &[u8]) -> Result<Option<Record>> {
        while let Some(r) = self.peek()? {
            match order::cmp(&r.path, path) {
                Ordering::Less => {
                    self.peeked = None;
                }
                Ordering::Equal => return Ok(self.peeked.take()),
                Ordering::Greater => return Ok(None),
            }
        }
        Ok(None)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::manifest::format::Body;
    use crate::sys::Timespec;
    use std::io::Cursor;

    fn reader(text: &str) -> Result<Reader> {
        Reader::new(Box::new(Cursor::new(text.as_bytes().to_vec())), Path::new("m"))
    }

    fn all(text: &str) -> Result<Vec<Record>> {
        let mut r = reader(text)?;
        let mut v = Vec::new();
        while let Some(x) = r.next_record()? {
            v.push(x);
        }
        Ok(v)
    }

    const D: &str = "type=dir mode=0755 uid=0 gid=0 mtime=1.000000000";

    #[test]
    fn reads_a_valid_manifest() {
        let t = format!("{HEADER}\n. {D}\na {D}\na/b {D}\na.b {D}\n#end entries=4\n");
        let v = all(&t).unwrap();
        assert_eq!(v.len(), 4);
        assert_eq!(v[3].body, Body::Dir);
        assert_eq!(v[0].mtime, Timespec { sec: 1, nsec: 0 });
    }

    #[test]
    fn truncation_and_disorder_are_errors() {
        assert!(all(&format!("{HEADER}\n. {D}\n")).is_err());
        assert!(all(&format!("{HEADER}\n. {D}\n#end entries=2\n")).is_err());
        assert!(all(&format!("{HEADER}\n. {D}\nb {D}\na {D}\n#end entries=3\n")).is_err());
        assert!(all(&format!("{HEADER}\n. {D}")).is_err());
        assert!(all("garbage\n").is_err());
    }

    #[test]
    fn overlong_lines_and_trailing_data_are_errors() {
        let long = "x".repeat(MAX_LINE as usize + 10);
        let e = all(&format!("{HEADER}\n{long}\n#end entries=0\n")).unwrap_err();
        assert!(e.to_string().contains("longer than"), "{e}");
        let r = reader(&format!("{HEADER}\n. {D}\n#end entries=1\ngarbage\n")).unwrap();
        assert!(r.finish().unwrap_err().to_string().contains("after the '#end'"));
        assert_eq!(reader(&format!("{HEADER}\n. {D}\n#end entries=1\n")).unwrap().finish().unwrap(), 1);
    }

    #[test]
    fn seek_to_merges_with_a_walk() {
        let t = format!("{HEADER}\n. {D}\na {D}\nc {D}\n#end entries=3\n");
        let mut r = reader(&t).unwrap();
        assert!(r.seek_to(b"a").unwrap().is_some());
        assert!(r.seek_to(b"b").unwrap().is_none());
        assert!(r.seek_to(b"c").unwrap().is_some());
        assert!(r.seek_to(b"d").unwrap().is_none());
    }
}
