//! The parallel, ordered walk.
//!
//! One walker thread lists directories in sorted order, stats every entry and
//! handles directories itself (so a directory always exists before its
//! children are written). Other entries go to a pool of workers through a FIFO
//! queue. Results come back to the calling thread, which puts them back in
//! walk order before handing them to the sink (a manifest writer or a
//! comparer). A window of tokens bounds the entries in flight, which bounds
//! memory and open file descriptors however large the tree is.

use std::collections::BTreeMap;
use std::ffi::CString;
use std::os::fd::AsFd;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use crossbeam_channel::{Receiver, Sender, bounded, select, unbounded};

use super::links::Groups;
use super::node::{DirNode, Item};
use super::pool::Pool;
use crate::error::{Error, Result};
use crate::manifest::order::join;
use crate::manifest::{Reader, Record};
use crate::sys::{self, Kind};

/// What processing one entry produced.
#[derive(Default)]
pub struct Outcome {
    pub record: Option<Record>,
    /// Content bytes read or written.
    pub bytes: u64,
    /// The entry vanished or changed during a live walk.
    pub raced: bool,
    /// Zero bytes turned into holes by --sparsify.
    pub sparsified: u64,
    /// Content rewritten (delta mode counts what it had to copy).
    pub rewritten: bool,
    /// For sinks that need more than the record (archives): the entry's stat
    /// and, for a regular file, the open file, read by the sink in walk order.
    pub source: Option<(crate::sys::Meta, Option<std::fs::File>)>,
}

/// What entering a directory produced.
#[derive(Default)]
pub struct Entered {
    /// The destination directory, when copying.
    pub dst: Option<std::os::fd::OwnedFd>,
    /// Runs when everything below the directory is done.
    pub finaliser: Option<super::node::Finaliser>,
    pub outcome: Outcome,
}

/// The operation run on every entry: a copy, a scan for a manifest, a verify.
pub trait Visitor: Sync {
    /// On the walker thread, for each directory (the root included) before its
    /// children, with the directory opened and checked to be the one the
    /// walker stat'ed (`src`). Returns the destination directory fd, if any,
    /// and sets the node's finaliser.
    fn enter_dir(&self, item: &Item, src: std::os::fd::BorrowedFd<'_>) -> Result<Entered>;
    /// On the walker thread, after `enter_dir`, with the sorted source names:
    /// delta copies remove what the source no longer has.
    fn prune(&self, _node: &DirNode, _src_names: &[CString]) -> Result<()> {
        Ok(())
    }
    /// On a worker thread, for every non-directory entry. Large files may be
    /// split into tasks on `pool`.
    fn entry(&self, item: &Item, pool: &Pool) -> Result<Outcome>;
    /// Errors raised after an entry's outcome was reported (directory
    /// finalisers); drained at the end of the walk.
    fn late_errors(&self) -> Vec<Error> {
        Vec::new()
    }
}

pub struct WalkOptions {
    pub root: PathBuf,
    pub threads: usize,
    /// Vanished entries are counted, not errors.
    pub live: bool,
    /// A baseline manifest merged into the walk (delta copies).
    pub baseline: Option<PathBuf>,
}

#[derive(Debug, Default, Clone, serde::Serialize)]
pub struct WalkStats {
    pub entries: u64,
    pub bytes: u64,
    pub raced: u64,
    pub sparsified: u64,
    pub rewritten: u64,
    /// Mount points found below the root; they were not descended into.
    pub mount_points: Vec<String>,
}

type Msg = Vec<(u64, Result<Outcome>)>;

/// Items travel to workers, and outcomes back, in batches: one channel
/// operation per item made the threads spin on each other (sched_yield) on a
/// two-core machine.
const BATCH: usize = 64;

struct Frame {
    node: Arc<DirNode>,
    names: std::vec::IntoIter<CString>,
}

struct Walker<'a, V: Visitor> {
    opts: &'a WalkOptions,
    visitor: &'a V,
    jobs: Sender<Vec<Item>>,
    batch: Vec<Item>,
    results: Sender<Msg>,
    tokens: Sender<()>,
    seq: u64,
    groups: Groups,
    baseline: Option<Reader>,
    root_dev: u64,
    mounts: Vec<String>,
}

impl<V: Visitor> Walker<'_, V> {
    fn next_seq(&mut self) -> u64 {
        // Blocks while the window is full; the collector returns tokens. The
        // pending batch must go out first, or the window could never drain.
        if self.tokens.try_send(()).is_err() {
            self.flush();
            let _ = self.tokens.send(());
        }
        self.seq += 1;
        self.seq - 1
    }

    fn flush(&mut self) {
        if !self.batch.is_empty() {
            let _ = self.jobs.send(std::mem::take(&mut self.batch));
        }
    }

    fn dispatch(&mut self, item: Item) {
        self.batch.push(item);
        if self.batch.len() >= BATCH {
            self.flush();
        }
    }

    fn report(&mut self, seq: u64, r: Result<Outcome>) {
        let _ = self.results.send(vec![(seq, r)]);
    }

    fn baseline_for(&mut self, rel: &[u8]) -> Result<Option<Record>> {
        match &mut self.baseline {
            Some(b) => b.seek_to(rel),
            None => Ok(None),
        }
    }

    /// Enters a directory: reports its outcome and returns its node, or `None`
    /// when it could not be entered (the error is reported at its seq).
    fn enter(&mut self, item: Item) -> Option<Arc<DirNode>> {
        let seq = item.seq;
        let root = &self.opts.root;
        // The directory the walker stat'ed, not whatever took its name since
        // (a symlink to `/`, say): a swap is a race.
        let src = match sys::seen::open_dir_seen(item.parent.src.as_fd(), &item.name, &item.meta) {
            Ok(fd) => fd,
            Err(e) if self.opts.live && sys::seen::is_race(&e) => {
                self.report(seq, Ok(Outcome { raced: true, ..Outcome::default() }));
                return None;
            }
            Err(e) => {
                let err = Error::source("open directory", root, &item.rel, e);
                self.report(seq, Err(err));
                return None;
            }
        };
        match self.visitor.enter_dir(&item, src.as_fd()) {
            Ok(entered) => {
                let parent = if item.rel.is_empty() { None } else { Some(item.parent.clone()) };
                let node = Arc::new(DirNode::new(item.rel.clone(), src, entered.dst, parent));
                if let Some(f) = entered.finaliser {
                    node.set_finaliser(f);
                }
                self.report(seq, Ok(entered.outcome));
                Some(node)
            }
            Err(e) if self.opts.live && e.is_race() => {
                self.report(seq, Ok(Outcome { raced: true, ..Outcome::default() }));
                None
            }
            Err(e) => {
                self.report(seq, Err(e));
                None
            }
        }
    }

    fn run(&mut self, root_node: Arc<DirNode>, root_meta: sys::Meta) {
        self.root_dev = root_meta.dev;
        let seq = self.next_seq();
        let baseline = self.baseline_for(b"").unwrap_or(None);
        let root_item = Item { seq, rel: Vec::new(), name: sys::DOT.to_owned(), parent: root_node, meta: root_meta, link: None, baseline };
        let Some(node) = self.enter(root_item) else {
            return;
        };
        let mut stack = Vec::new();
        self.push_frame(&mut stack, node);
        while let Some(top) = stack.last_mut() {
            let Some(name) = top.names.next() else {
                stack.pop();
                continue;
            };
            let node = top.node.clone();
            if let Some(child) = self.visit_child(node, name) {
                self.push_frame(&mut stack, child);
            }
        }
    }

    fn push_frame(&mut self, stack: &mut Vec<Frame>, node: Arc<DirNode>) {
        let names = match sys::list_dir(node.src.as_fd()) {
            Ok(n) => n,
            Err(e) => {
                let seq = self.next_seq();
                self.report(seq, Err(Error::io("list directory", &self.opts.root, &node.rel, e)));
                return;
            }
        };
        if let Err(e) = self.visitor.prune(&node, &names) {
            let seq = self.next_seq();
            self.report(seq, Err(e));
        }
        stack.push(Frame { node, names: names.into_iter() });
    }

    /// Stats one child and dispatches it; returns the node of a directory to
    /// descend into.
    fn visit_child(&mut self, parent: Arc<DirNode>, name: CString) -> Option<Arc<DirNode>> {
        let rel = join(&parent.rel, name.as_bytes());
        let seq = self.next_seq();
        let meta = match sys::stat::lstat_at(parent.src.as_fd(), &name) {
            Ok(m) => m,
            Err(e) => {
                let vanished = e.raw_os_error() == Some(libc::ENOENT);
                let r = if vanished && self.opts.live {
                    Ok(Outcome { raced: true, ..Outcome::default() })
                } else if vanished {
                    Err(Error::Changed { path: crate::error::show(&self.opts.root, &rel), what: "vanished" })
                } else {
                    Err(Error::io("stat", &self.opts.root, &rel, e))
                };
                self.report(seq, r);
                return None;
            }
        };
        let baseline = match self.baseline_for(&rel) {
            Ok(b) => b,
            Err(e) => {
                self.report(seq, Err(e));
                None
            }
        };
        let link = if meta.kind == Kind::File { self.groups.role(meta.dev, meta.ino, meta.nlink, &rel) } else { None };
        let item = Item { seq, rel, name, parent, meta, link, baseline };
        if meta.kind != Kind::Dir {
            self.dispatch(item);
            return None;
        }
        let mount = meta.dev != self.root_dev || sys::stat::is_mount_root(item.parent.src.as_fd(), &item.name).unwrap_or(false);
        let node = self.enter(item)?;
        if mount {
            // Stay on one filesystem: record the directory, skip its contents.
            self.mounts.push(crate::error::show(&self.opts.root, &node.rel));
            return None;
        }
        Some(node)
    }
}

/// Walks `opts.root` with `visitor`, handing each outcome to `sink` in walk
/// order. `dst_root` is the destination root directory for copies.
pub fn walk<V: Visitor>(
    opts: &WalkOptions,
    visitor: &V,
    dst_root: Option<std::os::fd::OwnedFd>,
    progress: &dyn crate::progress::Progress,
    mut sink: impl FnMut(Result<Outcome>),
) -> Result<WalkStats> {
    let window = window(sys::raise_nofile_limit());
    let root = &opts.root;
    let root_fd = sys::open_dir_path(root).map_err(|e| Error::io("open", root, b"", e))?;
    let root_meta = sys::stat::fstat(root_fd.as_fd()).map_err(|e| Error::io("stat", root, b"", e))?;
    let baseline = opts.baseline.as_deref().map(Reader::open).transpose()?;
    // The pseudo-parent of the root: the root itself, addressed as ".".
    let root_node = Arc::new(DirNode::new(Vec::new(), root_fd, dst_root, None));

    let (job_tx, job_rx) = unbounded::<Vec<Item>>();
    let (res_tx, res_rx) = unbounded::<Msg>();
    let (tok_tx, tok_rx) = bounded::<()>(window);
    let pool = Pool::default();
    let working = AtomicUsize::new(opts.threads.max(1));
    let stats = std::thread::scope(|s| {
        for _ in 0..opts.threads.max(1) {
            let (rx, tx, pool, working) = (job_rx.clone(), res_tx.clone(), &pool, &working);
            s.spawn(move || worker(visitor, root, pool, rx, tx, working));
        }
        drop(job_rx);
        let walker = Walker {
            opts,
            visitor,
            jobs: job_tx,
            batch: Vec::with_capacity(BATCH),
            results: res_tx,
            tokens: tok_tx,
            seq: 0,
            groups: Groups::default(),
            baseline,
            root_dev: 0,
            mounts: Vec::new(),
        };
        let walked = s.spawn(move || {
            let mut w = walker;
            w.run(root_node, root_meta);
            w.flush();
            // Dropping the walker closes the job and result channels.
            (std::mem::take(&mut w.mounts), w.seq)
        });
        let (mut stats, collected) = collect(res_rx, tok_rx, progress, &mut sink);
        // A walker that panicked stopped listing: what was collected is not the tree.
        let (mounts, dispatched) = walked.join().map_err(|p| Error::Panicked {
            path: crate::error::show(root, b""),
            what: format!("the walker thread: {}", crate::error::panic_message(p.as_ref())),
        })?;
        if collected != dispatched {
            let what = format!("{} of {dispatched} entries came back from the workers", collected);
            return Err(Error::Panicked { path: crate::error::show(root, b""), what });
        }
        stats.mount_points = mounts;
        Ok(stats)
    })?;
    for e in visitor.late_errors() {
        sink(Err(e));
    }
    Ok(stats)
}

/// Entries in flight (dispatched, not yet handed to the sink) for a soft
/// open-files limit of `nofile`. Each may hold two fds (a source file and
/// its copy) and keep its directory's two open; a quarter of what is left
/// after a reserve for the rest of the process (stdio, archive, journal,
/// zstd, the directory chain) stays well below the limit: 192 at 1024, 960
/// at 4096, at most 8192.
fn window(nofile: u64) -> usize {
    (nofile.saturating_sub(256) / 4).clamp(64, 8192) as usize
}

/// Runs one entry on a worker; a panic becomes that entry's error.
fn run_entry<V: Visitor>(visitor: &V, root: &Path, item: &Item, pool: &Pool) -> Result<Outcome> {
    std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| visitor.entry(item, pool))).unwrap_or_else(|p| {
        Err(Error::Panicked { path: crate::error::show(root, &item.rel), what: crate::error::panic_message(p.as_ref()) })
    })
}

fn worker<V: Visitor>(visitor: &V, root: &Path, pool: &Pool, jobs: Receiver<Vec<Item>>, results: Sender<Msg>, working: &AtomicUsize) {
    loop {
        // Pieces of a large file first: the ordered collector may be waiting for it.
        let batch = select! {
            recv(pool.tasks()) -> t => {
                if let Ok(t) = t {
                    // A panicking piece drops its result sender: its owner
                    // sees that and fails its entry (see `run_entry`).
                    let _ = std::panic::catch_unwind(std::panic::AssertUnwindSafe(t));
                }
                continue;
            }
            recv(jobs) -> b => match b {
                Ok(b) => b,
                Err(_) => break,
            },
        };
        let mut out = Vec::with_capacity(batch.len());
        for item in batch {
            let seq = item.seq;
            out.push((seq, run_entry(visitor, root, &item, pool)));
            // Dropping the item may finalise its directory; do it before the
            // outcome is reported, so directory errors are never lost.
            drop(item);
        }
        if results.send(out).is_err() {
            break;
        }
    }
    // No more entries, but a worker still on its last batch may split a
    // large file: help with its pieces until every worker is done.
    working.fetch_sub(1, Ordering::SeqCst);
    while working.load(Ordering::SeqCst) > 0 {
        if let Ok(t) = pool.tasks().recv_timeout(std::time::Duration::from_millis(5)) {
            let _ = std::panic::catch_unwind(std::panic::AssertUnwindSafe(t));
        }
    }
}

/// Puts outcomes back in walk order and hands them to the sink; returns the
/// stats and how many outcomes were handed on.
fn collect(
    results: Receiver<Msg>,
    tokens: Receiver<()>,
    progress: &dyn crate::progress::Progress,
    sink: &mut impl FnMut(Result<Outcome>),
) -> (WalkStats, u64) {
    let mut next = 0u64;
    let mut pending: BTreeMap<u64, Result<Outcome>> = BTreeMap::new();
    let mut stats = WalkStats::default();
    for (seq, r) in results.into_iter().flatten() {
        pending.insert(seq, r);
        while let Some(r) = pending.remove(&next) {
            next += 1;
            let _ = tokens.try_recv();
            if let Ok(o) = &r {
                stats.entries += u64::from(o.record.is_some());
                stats.bytes += o.bytes;
                stats.raced += u64::from(o.raced);
                stats.sparsified += o.sparsified;
                stats.rewritten += u64::from(o.rewritten);
                progress.advance(1, o.bytes);
            }
            sink(r);
        }
    }
    (stats, next)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Panics in `entry` for a file named `boom`, in `enter_dir` for a
    /// directory named `boom.d`.
    struct Bomb;

    impl Visitor for Bomb {
        fn enter_dir(&self, item: &Item, _src: std::os::fd::BorrowedFd<'_>) -> Result<Entered> {
            assert!(item.rel != b"boom.d", "walker bomb");
            Ok(Entered::default())
        }
        fn entry(&self, item: &Item, pool: &Pool) -> Result<Outcome> {
            assert!(item.rel != b"boom", "worker bomb");
            if item.rel == b"split" {
                // Pieces on the pool, one of which panics on whichever thread runs it.
                let jobs: Vec<super::super::pool::Job<u32>> = (0..4u32)
                    .map(|i| {
                        Box::new(move || {
                            assert!(i != 3, "piece bomb");
                            i
                        }) as super::super::pool::Job<u32>
                    })
                    .collect();
                pool.run_all(jobs);
            }
            Ok(Outcome::default())
        }
    }

    fn run(root: &std::path::Path) -> (Result<WalkStats>, Vec<String>) {
        let opts = WalkOptions { root: root.to_path_buf(), threads: 2, live: false, baseline: None };
        let mut errors = Vec::new();
        let r = walk(&opts, &Bomb, None, &crate::progress::Silent, |o| {
            if let Err(e) = o {
                errors.push(e.to_string());
            }
        });
        (r, errors)
    }

    #[test]
    fn a_panicking_worker_fails_its_entry() {
        let t = tempfile::tempdir().unwrap();
        for n in ["a", "boom", "c"] {
            std::fs::write(t.path().join(n), n).unwrap();
        }
        let (r, errors) = run(t.path());
        assert!(r.is_ok());
        assert_eq!(errors.len(), 1, "{errors:?}");
        assert!(errors[0].contains("boom") && errors[0].contains("worker bomb"), "{errors:?}");
    }

    #[test]
    fn a_panicking_piece_of_a_split_entry_fails_that_entry() {
        let t = tempfile::tempdir().unwrap();
        for n in ["a", "split", "z"] {
            std::fs::write(t.path().join(n), n).unwrap();
        }
        let (r, errors) = run(t.path());
        assert!(r.is_ok());
        assert_eq!(errors.len(), 1, "{errors:?}");
        assert!(errors[0].contains("split") && errors[0].contains("panicked"), "{errors:?}");
    }

    #[test]
    fn a_panicking_walker_fails_the_walk() {
        let t = tempfile::tempdir().unwrap();
        std::fs::create_dir(t.path().join("boom.d")).unwrap();
        std::fs::write(t.path().join("boom.d/x"), "x").unwrap();
        std::fs::write(t.path().join("z"), "z").unwrap();
        let (r, _) = run(t.path());
        let e = r.expect_err("a walk whose walker panicked returned Ok");
        assert!(e.to_string().contains("walker bomb"), "{e}");
    }

    #[test]
    fn the_window_stays_below_the_open_files_limit() {
        assert_eq!(window(1024), 192);
        assert_eq!(window(4096), 960);
        assert_eq!(window(1 << 20), 8192);
        assert_eq!(window(0), 64);
    }
}
