//! Streams records into a manifest file. The file is written under a temporary
//! name and renamed into place only when complete, so a crash never leaves a
//! truncated manifest that looks valid (the trailer also guards against that).

use std::fs::File;
use std::io::{self, BufWriter, Write};
use std::path::{Path, PathBuf};

use super::format::{HEADER, Record, TRAILER_PREFIX};
use crate::error::{Error, Result};

pub struct Writer {
    out: BufWriter<Box<dyn Write + Send>>,
    /// (temporary path, final path) when writing a file.
    rename: Option<(PathBuf, PathBuf)>,
    /// What error messages call the output.
    name: PathBuf,
    entries: u64,
}

fn err(path: &Path, source: io::Error) -> Error {
    Error::Io { step: "write manifest", path: path.display().to_string(), source }
}

impl Writer {
    /// Writes to `path` (`-` for stdout).
    pub(crate) fn create(path: &Path) -> Result<Writer> {
        if path == Path::new("-") {
            return Writer::new(Box::new(io::stdout()), path);
        }
        crate::sys::check_replaceable(path).map_err(|e| err(path, e))?;
        let mut tmp = path.as_os_str().to_owned();
        tmp.push(".tmp");
        let tmp = PathBuf::from(tmp);
        let file = File::create(&tmp).map_err(|e| err(&tmp, e))?;
        let mut w = Writer::new(Box::new(file), path)?;
        w.rename = Some((tmp, path.to_path_buf()));
        Ok(w)
    }

    /// Writes to `out` (flushed by [`Writer::finish`], never renamed);
    /// `name` is what error messages call it.
    pub fn new(out: Box<dyn Write + Send>, name: &Path) -> Result<Writer> {
        let mut w = Writer { out: BufWriter::with_capacity(1 << 20, out), rename: None, name: name.to_path_buf(), entries: 0 };
        w.line(HEADER)?;
        Ok(w)
    }

    fn target(&self) -> PathBuf {
        self.name.clone()
    }

    fn line(&mut self, s: &str) -> Result<()> {
        let r = self.out.write_all(s.as_bytes()).and_then(|_| self.out.write_all(b"\n"));
        r.map_err(|e| err(&self.target(), e))
    }

    pub fn push(&mut self, r: &Record) -> Result<()> {
        self.entries += 1;
        self.line(&r.to_line())
    }

    /// Writes the trailer, flushes, fsyncs and renames into place.
    pub fn finish(mut self) -> Result<u64> {
        let n = self.entries;
        self.line(&format!("{TRAILER_PREFIX}{n}"))?;
        let target = self.target();
        self.out.flush().map_err(|e| err(&target, e))?;
        if let Some((tmp, path)) = self.rename.take() {
            File::open(&tmp).and_then(|f| f.sync_all()).map_err(|e| err(&tmp, e))?;
            std::fs::rename(&tmp, &path).map_err(|e| err(&path, e))?;
        }
        Ok(n)
    }
}

impl Drop for Writer {
    /// A manifest that was not finished is removed, never left half-written.
    fn drop(&mut self) {
        if let Some((tmp, _)) = &self.rename {
            let _ = std::fs::remove_file(tmp);
        }
    }
}
