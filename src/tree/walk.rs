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

use super::links::Groups;
use super::node::{DirNode, Item};
use super::pool::{Pool, Work};
use super::queue::{Receiver, Sender, Window, channel};
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
    /// A directory that is a btrfs subvolume's root (archives record it).
    pub subvolume: Option<crate::sys::btrfs::Subvolume>,
    /// A small file's content, read and hashed ahead by the worker.
    pub(crate) ahead: Option<super::content::Ahead>,
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
    /// Only this name directly below the root (and the root itself): a bind
    /// source that is a regular file is archived as its parent holding it alone.
    pub only: Option<std::ffi::CString>,
    /// The tree is dockroot's own, written by nothing else while it is walked
    /// (a restore's staging tree of the data-root, see `audit::verify_staged`): entries
    /// are lstat'ed and opened by name, with no `O_PATH` handle and no reopen
    /// through /proc (`sys::seen`). Granted only when the root is root's and
    /// closed to everyone else ([`closed_to_others`]), so that no container
    /// and no other user can have entered it; otherwise the walk is as usual.
    pub private: bool,
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
    /// The walk was private (`WalkOptions::private`, granted for its root).
    #[serde(skip)]
    pub private: bool,
}

type Msg = Vec<(u64, Result<Outcome>)>;

/// Items travel to workers, and outcomes back, in batches: one hand-off per
/// item costs a lock and often a wake-up.
const BATCH: usize = 64;

struct Frame {
    node: Arc<DirNode>,
    names: std::vec::IntoIter<CString>,
}

struct Walker<'a, V: Visitor> {
    opts: &'a WalkOptions,
    visitor: &'a V,
    pool: &'a Pool,
    batch: Vec<Item>,
    results: Sender<Msg>,
    window: &'a Window,
    seq: u64,
    groups: Groups,
    baseline: Option<Reader>,
    root_dev: u64,
    mounts: Vec<String>,
    /// `opts.private`, granted for this root (see [`closed_to_others`]).
    private: bool,
}

/// However the walker ends (also by a panic), no more batches come.
impl<V: Visitor> Drop for Walker<'_, V> {
    fn drop(&mut self) {
        self.pool.close();
    }
}

impl<V: Visitor> Walker<'_, V> {
    fn next_seq(&mut self) -> u64 {
        // Blocks while the window is full; the collector returns tokens. The
        // pending batch must go out first, or the window could never drain.
        if !self.window.try_take() {
            self.flush();
            self.window.take();
        }
        self.seq += 1;
        self.seq - 1
    }

    fn flush(&mut self) {
        if !self.batch.is_empty() {
            self.pool.push_batch(std::mem::take(&mut self.batch));
        }
    }

    fn dispatch(&mut self, item: Item) {
        self.batch.push(item);
        if self.batch.len() >= BATCH {
            self.flush();
        }
    }

    fn report(&mut self, seq: u64, r: Result<Outcome>) {
        self.results.send(vec![(seq, r)]);
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
        let src = match &item.handle {
            Some(h) => sys::seen::reopen_dir(h.as_fd()),
            None => sys::seen::open_dir_seen(item.parent.src.as_fd(), &item.name, &item.meta),
        };
        let src = match src {
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
        let root_item = Item {
            seq,
            rel: Vec::new(),
            name: sys::DOT.to_owned(),
            parent: root_node,
            meta: root_meta,
            handle: None,
            private: self.private,
            link: None,
            baseline,
        };
        let Some(node) = self.enter(root_item) else {
            return;
        };
        let mut stack = Vec::new();
        self.push_frame(&mut stack, node);
        while let Some(top) = stack.last_mut() {
            if sys::process::termination_requested() {
                // A signal: list no more; `walk` reports the stop.
                return;
            }
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
            Ok(mut n) if node.rel.is_empty() && self.opts.only.is_some() => {
                n.retain(|name| Some(name) == self.opts.only.as_ref());
                n
            }
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
        // The one stat of the entry: through a handle its worker reopens (see
        // `sys::seen`), or in a private tree by name.
        let stat = match self.private {
            true => sys::stat::lstat_at(parent.src.as_fd(), &name).map(|m| (None, m)),
            false => sys::seen::open_entry(parent.src.as_fd(), &name).map(|(h, m)| (Some(h), m)),
        };
        let (handle, meta) = match stat {
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
        let item = Item { seq, rel, name, parent, meta, handle, private: self.private, link, baseline };
        if meta.kind != Kind::Dir {
            self.dispatch(item);
            return None;
        }
        let mount = crossing(meta.dev != self.root_dev, sys::stat::is_mount_root(item.parent.src.as_fd(), &item.name));
        let node = self.enter(item)?;
        if mount {
            // Stay on one filesystem: record the directory, skip its contents.
            self.mounts.push(crate::error::show(&self.opts.root, &node.rel));
            return None;
        }
        Some(node)
    }
}

/// Whether only root can enter the directory `m`: root owns it, and neither
/// others nor a group other than root may search it. Below such a root, no
/// other user can reach an entry by name (see `WalkOptions::private`).
pub(crate) fn closed_to_others(m: &sys::Meta) -> bool {
    m.uid == 0 && m.perm & 0o001 == 0 && (m.gid == 0 || m.perm & 0o010 == 0)
}

/// Whether a directory is the root of another mount, where the walk stops.
/// The kernel's answer wins: a btrfs subvolume (the btrfs storage driver
/// keeps every layer in one) has its own `st_dev` but is no mount, and
/// skipping it would leave the layers out. Only a kernel that cannot say
/// falls back to the device number.
pub(crate) fn crossing(other_dev: bool, mount_root: std::io::Result<Option<bool>>) -> bool {
    match mount_root {
        Ok(Some(root)) => root,
        _ => other_dev,
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
    let private = opts.private && closed_to_others(&root_meta);
    let baseline = opts.baseline.as_deref().map(Reader::open).transpose()?;
    // The pseudo-parent of the root: the root itself, addressed as ".".
    let root_node = Arc::new(DirNode::new(Vec::new(), root_fd, dst_root, None));

    let (res_tx, res_rx) = channel::<Msg>();
    let window = Window::new(window);
    let pool = Pool::default();
    let stats = std::thread::scope(|s| {
        for _ in 0..opts.threads.max(1) {
            let (tx, pool) = (res_tx.clone(), &pool);
            s.spawn(move || worker(visitor, root, pool, tx));
        }
        let walker = Walker {
            opts,
            visitor,
            pool: &pool,
            batch: Vec::with_capacity(BATCH),
            results: res_tx,
            window: &window,
            seq: 0,
            groups: Groups::default(),
            baseline,
            root_dev: 0,
            mounts: Vec::new(),
            private,
        };
        let walked = s.spawn(move || {
            let mut w = walker;
            w.run(root_node, root_meta);
            w.flush();
            // Dropping the walker closes the pool and its result queue.
            (std::mem::take(&mut w.mounts), w.seq)
        });
        let (mut stats, collected) = collect(res_rx, &window, progress, &mut sink);
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
        stats.private = private;
        if let Some((signal, _)) = sys::process::termination_signal() {
            // However far it got, a walk that a signal cut short is not the tree.
            return Err(Error::Interrupted { path: crate::error::show(root, b""), signal });
        }
        Ok(stats)
    })?;
    for e in visitor.late_errors() {
        sink(Err(e));
    }
    Ok(stats)
}

/// Entries in flight (dispatched, not yet handed to the sink) for a soft
/// open-files limit of `nofile`. Each may hold three fds (the walker's
/// handle, the source file and its copy; queued ones hold only the handle)
/// and keep its directory's two open; a quarter of what is left
/// after a reserve for the rest of the process (stdio, archive, journal,
/// zstd, the directory chain) stays well below the limit: 192 at 1024, 960
/// at 4096, at most 8192.
fn window(nofile: u64) -> usize {
    (nofile.saturating_sub(256) / 4).clamp(64, 8192) as usize
}

/// Runs one entry on a worker; a panic becomes that entry's error.
fn run_entry<V: Visitor>(visitor: &V, root: &Path, item: &Item, pool: &Pool) -> Result<Outcome> {
    if let Some((signal, _)) = sys::process::termination_signal() {
        // Drain the queue without doing the work: the walk is ending.
        return Err(Error::Interrupted { path: crate::error::show(root, &item.rel), signal });
    }
    std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| visitor.entry(item, pool))).unwrap_or_else(|p| {
        Err(Error::Panicked { path: crate::error::show(root, &item.rel), what: crate::error::panic_message(p.as_ref()) })
    })
}

fn worker<V: Visitor>(visitor: &V, root: &Path, pool: &Pool, results: Sender<Msg>) {
    // Pieces of a large file come first (the ordered collector may be
    // waiting for it); after the last batch, workers help with the pieces of
    // the others' until every worker is done.
    while let Some(work) = pool.next() {
        let batch = match work {
            Work::Task(t) => {
                // A panicking piece fails its owner's entry (see `Pool::run_all`).
                let _ = std::panic::catch_unwind(std::panic::AssertUnwindSafe(t));
                continue;
            }
            Work::Batch(b) => b,
        };
        let _done = BatchDone(pool);
        let mut out = Vec::with_capacity(batch.len());
        for item in batch {
            let seq = item.seq;
            out.push((seq, run_entry(visitor, root, &item, pool)));
            // Dropping the item may finalise its directory; do it before the
            // outcome is reported, so directory errors are never lost.
            drop(item);
        }
        results.send(out);
    }
}

/// Tells the pool a worker's batch is done, also when the worker unwinds.
struct BatchDone<'a>(&'a Pool);

impl Drop for BatchDone<'_> {
    fn drop(&mut self) {
        self.0.batch_done();
    }
}

/// Puts outcomes back in walk order and hands them to the sink; returns the
/// stats and how many outcomes were handed on.
fn collect(
    results: Receiver<Msg>,
    window: &Window,
    progress: &dyn crate::progress::Progress,
    sink: &mut impl FnMut(Result<Outcome>),
) -> (WalkStats, u64) {
    let mut next = 0u64;
    let mut pending: BTreeMap<u64, Result<Outcome>> = BTreeMap::new();
    let mut stats = WalkStats::default();
    while let Some(msgs) = results.recv_all() {
        let before = next;
        for (seq, r) in msgs.into_iter().flatten() {
            pending.insert(seq, r);
            while let Some(r) = pending.remove(&next) {
                next += 1;
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
        window.give((next - before) as usize);
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
        let opts = WalkOptions { root: root.to_path_buf(), threads: 2, live: false, baseline: None, only: None, private: false };
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

    /// Every record of a walk of `root` with the reading visitor, and its stats.
    fn records(root: &std::path::Path, private: bool) -> (Vec<Record>, WalkStats) {
        let opts = WalkOptions { root: root.to_path_buf(), threads: 2, live: false, baseline: None, only: None, private };
        let scan = super::super::scan::Scan { root: root.to_path_buf(), live: false };
        let mut out = Vec::new();
        let stats = walk(&opts, &scan, None, &crate::progress::Silent, |o| out.push(o.unwrap().record.unwrap())).unwrap();
        (out, stats)
    }

    /// A tree with every entry type, xattrs in the user and trusted
    /// namespaces (on a symlink too), a hardlink pair, a hole and a
    /// non-UTF-8 name.
    fn every_type(root: &std::path::Path) {
        use std::os::unix::ffi::OsStrExt;
        std::fs::create_dir_all(root.join("d/e")).unwrap();
        std::fs::write(root.join("d/f"), b"content").unwrap();
        xattr::set(root.join("d/f"), "user.k", b"v").unwrap();
        xattr::set(root.join("d"), "trusted.t", b"w").unwrap();
        std::fs::hard_link(root.join("d/f"), root.join("d/e/link")).unwrap();
        std::os::unix::fs::symlink("f", root.join("d/sym")).unwrap();
        xattr::set(root.join("d/sym"), "trusted.s", b"x").unwrap();
        nix::unistd::mkfifo(&root.join("fifo"), nix::sys::stat::Mode::from_bits_truncate(0o640)).unwrap();
        std::os::unix::net::UnixListener::bind(root.join("sock")).unwrap();
        let dev = nix::sys::stat::SFlag::S_IFCHR;
        nix::sys::stat::mknod(&root.join("wh"), dev, nix::sys::stat::Mode::empty(), 0).expect("mknod (run the tests as root)");
        let f = std::fs::File::create(root.join(std::ffi::OsStr::from_bytes(b"sparse\xff"))).unwrap();
        f.set_len(1 << 20).unwrap();
        std::os::unix::fs::FileExt::write_at(&f, b"end", (1 << 20) - 3).unwrap();
    }

    #[test]
    fn a_private_walk_reads_every_type_as_the_usual_walk_does() {
        use std::os::unix::fs::PermissionsExt;
        let t = tempfile::tempdir().unwrap();
        every_type(t.path());
        std::fs::set_permissions(t.path(), std::fs::Permissions::from_mode(0o710)).unwrap();
        let (usual, s) = records(t.path(), false);
        assert!(!s.private);
        let (private, s) = records(t.path(), true);
        assert!(s.private, "a root-owned 0710 root was not walked as private");
        assert_eq!(usual, private);
        assert_eq!(usual.len(), 10);
    }

    #[test]
    fn a_root_open_to_others_is_walked_as_usual() {
        use std::os::unix::fs::PermissionsExt;
        let t = tempfile::tempdir().unwrap();
        std::fs::write(t.path().join("f"), b"x").unwrap();
        for (mode, private) in [(0o700, true), (0o750, true), (0o711, false), (0o755, false)] {
            std::fs::set_permissions(t.path(), std::fs::Permissions::from_mode(mode)).unwrap();
            assert_eq!(records(t.path(), true).1.private, private, "root mode {mode:o}");
        }
        // A group other than root's may not search it.
        nix::unistd::chown(t.path(), None, Some(nix::unistd::Gid::from_raw(4242))).unwrap();
        for (mode, private) in [(0o700, true), (0o710, false)] {
            std::fs::set_permissions(t.path(), std::fs::Permissions::from_mode(mode)).unwrap();
            assert_eq!(records(t.path(), true).1.private, private, "root mode {mode:o}, gid 4242");
        }
    }

    #[test]
    fn the_window_stays_below_the_open_files_limit() {
        assert_eq!(window(1024), 192);
        assert_eq!(window(4096), 960);
        assert_eq!(window(1 << 20), 8192);
        assert_eq!(window(0), 64);
    }
}
