//! A reader that runs another reader (the zstd decoder) on a helper thread,
//! handing over 1 MiB chunks through a bounded channel, so that decompression
//! and file creation use both cores as `zstd -d | tar -x` does.

use std::io::{self, Read};

/// The decompressed stream, produced on a helper thread so that
/// decompression overlaps with file creation (as `zstd -d | tar -x` does with
/// two processes). Decoder errors arrive in order, as read errors.
pub struct Pipe {
    rx: crossbeam_channel::Receiver<io::Result<Vec<u8>>>,
    cur: Vec<u8>,
    pos: usize,
    done: bool,
}

impl Read for Pipe {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        loop {
            if self.pos < self.cur.len() {
                let n = buf.len().min(self.cur.len() - self.pos);
                buf[..n].copy_from_slice(&self.cur[self.pos..self.pos + n]);
                self.pos += n;
                return Ok(n);
            }
            if self.done {
                return Ok(0);
            }
            match self.rx.recv() {
                Ok(Ok(v)) if v.is_empty() => self.done = true,
                Ok(Ok(v)) => {
                    self.cur = v;
                    self.pos = 0;
                }
                Ok(Err(e)) => {
                    self.done = true;
                    return Err(e);
                }
                Err(_) => return Err(io::Error::other("the decompression thread stopped")),
            }
        }
    }
}

/// Runs `r` on a helper thread; the thread ends at EOF, on an error, or when
/// the [`Pipe`] is dropped.
pub(crate) fn spawn_pipe<R: Read + Send + 'static>(mut r: R) -> Pipe {
    let (tx, rx) = crossbeam_channel::bounded(8);
    std::thread::spawn(move || {
        loop {
            let mut buf = vec![0u8; 1 << 20];
            let mut n = 0;
            let res = loop {
                match r.read(&mut buf[n..]) {
                    Ok(0) => break Ok(()),
                    Ok(k) => {
                        n += k;
                        if n == buf.len() {
                            break Ok(());
                        }
                    }
                    Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                    Err(e) => break Err(e),
                }
            };
            buf.truncate(n);
            let last = n == 0 || res.is_err();
            if n > 0 && tx.send(Ok(buf)).is_err() {
                return;
            }
            if let Err(e) = res {
                let _ = tx.send(Err(e));
                return;
            }
            if last {
                let _ = tx.send(Ok(Vec::new()));
                return;
            }
        }
    });
    Pipe { rx, cur: Vec::new(), pos: 0, done: false }
}

/// The writing side: the zstd encoder runs on a helper thread fed with 1 MiB
/// chunks through a bounded channel, so reading and hashing the source
/// overlap with compression (as `tar -c | zstd` does with two processes).
pub struct WritePipe<W> {
    tx: Option<crossbeam_channel::Sender<Vec<u8>>>,
    handle: Option<std::thread::JoinHandle<io::Result<W>>>,
    buf: Vec<u8>,
}

const CHUNK: usize = 1 << 20;

impl<W: Send + 'static> WritePipe<W> {
    /// Runs `sink` on a helper thread: it gets every chunk in order, then
    /// `finish` once the pipe is finished, and returns the output.
    pub(crate) fn spawn<S>(
        mut sink: S,
        mut write: impl FnMut(&mut S, &[u8]) -> io::Result<()> + Send + 'static,
        finish: impl FnOnce(S) -> io::Result<W> + Send + 'static,
    ) -> Self
    where
        S: Send + 'static,
    {
        let (tx, rx) = crossbeam_channel::bounded::<Vec<u8>>(8);
        let handle = std::thread::spawn(move || {
            for chunk in rx {
                write(&mut sink, &chunk)?;
            }
            finish(sink)
        });
        WritePipe { tx: Some(tx), handle: Some(handle), buf: Vec::with_capacity(CHUNK) }
    }

    fn send(&mut self) -> io::Result<()> {
        if self.buf.is_empty() {
            return Ok(());
        }
        let chunk = std::mem::replace(&mut self.buf, Vec::with_capacity(CHUNK));
        let sent = self.tx.as_ref().map(|tx| tx.send(chunk).is_ok()).unwrap_or(false);
        if sent { Ok(()) } else { Err(self.thread_error()) }
    }

    /// The helper thread stopped early: its error.
    fn thread_error(&mut self) -> io::Error {
        self.tx = None;
        match self.handle.take().map(|h| h.join()) {
            Some(Ok(Err(e))) => e,
            _ => io::Error::other("the compression thread stopped"),
        }
    }

    /// Sends what is buffered, closes the channel and waits for the output.
    pub fn finish(mut self) -> io::Result<W> {
        self.send()?;
        self.tx = None;
        match self.handle.take().map(|h| h.join()) {
            Some(Ok(r)) => r,
            _ => Err(io::Error::other("the compression thread panicked")),
        }
    }
}

impl<W: Send + 'static> io::Write for WritePipe<W> {
    fn write(&mut self, data: &[u8]) -> io::Result<usize> {
        let n = data.len().min(CHUNK - self.buf.len());
        self.buf.extend_from_slice(&data[..n]);
        if self.buf.len() == CHUNK {
            self.send()?;
        }
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}
