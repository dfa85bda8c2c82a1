//! A reader that runs another reader (the zstd decoder) on a helper thread,
//! handing over 1 MiB chunks through a bounded channel, so that decompression
//! and file creation use both cores as `zstd -d | tar -x` does.

use std::io::{self, Read};

use crate::tree::queue::{BoundedReceiver, bounded};

/// The decompressed stream, produced on a helper thread so that
/// decompression overlaps with file creation (as `zstd -d | tar -x` does with
/// two processes). Decoder errors arrive in order, as read errors.
pub struct Pipe {
    rx: BoundedReceiver<io::Result<Vec<u8>>>,
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
                Some(Ok(v)) if v.is_empty() => self.done = true,
                Some(Ok(v)) => {
                    self.cur = v;
                    self.pos = 0;
                }
                Some(Err(e)) => {
                    self.done = true;
                    return Err(e);
                }
                None => return Err(io::Error::other("the decompression thread stopped")),
            }
        }
    }
}

/// Runs `r` on a helper thread; the thread ends at EOF, on an error, or when
/// the [`Pipe`] is dropped.
pub(crate) fn spawn_pipe<R: Read + Send + 'static>(mut r: R) -> Pipe {
    // A sleeping queue: crossbeam's channel spun in sched_yield (439 calls
    // in a 40k-file restore, issue 11).
    let (tx, rx) = bounded(8);
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
