//! Where the archive writer's tar stream goes: a zstd frame (the default) or,
//! for `backup --compress none`, straight to the output. An uncompressed
//! stream lets a deduplicating store such as restic find the unchanged parts
//! of last night's archive; zstd output changes after the first changed byte.

use std::io::{self, Write};

/// The writer's output, compressed or not.
pub(crate) enum Sink<W: Write + Send + 'static> {
    Zstd(zstd::stream::write::Encoder<'static, W>),
    Plain(W),
}

impl<W: Write + Send + 'static> Sink<W> {
    /// Ends the zstd frame if there is one and returns the output.
    pub fn finish(self) -> io::Result<W> {
        match self {
            Sink::Zstd(z) => z.finish(),
            Sink::Plain(mut w) => w.flush().map(|_| w),
        }
    }
}

impl<W: Write + Send + 'static> Write for Sink<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        match self {
            Sink::Zstd(z) => z.write(buf),
            Sink::Plain(w) => w.write(buf),
        }
    }

    fn write_all(&mut self, buf: &[u8]) -> io::Result<()> {
        match self {
            Sink::Zstd(z) => z.write_all(buf),
            Sink::Plain(w) => w.write_all(buf),
        }
    }

    fn flush(&mut self) -> io::Result<()> {
        match self {
            Sink::Zstd(z) => z.flush(),
            Sink::Plain(w) => w.flush(),
        }
    }
}
