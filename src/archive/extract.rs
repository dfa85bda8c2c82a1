//! The hardened extractor. Archives are untrusted: tar-rs `unpack` is not
//! used because it turns devices into files, drops directory xattrs and
//! nanosecond times, and drops all xattrs when a PAX value holds a newline.
//!
//! Every member is created below the staging directory with fd-relative calls
//! only. Paths are split into components; empty, `.`, `..` and absolute paths
//! are rejected. Parent directories are opened with O_NOFOLLOW, so a symlink
//! in a path is an error and is never followed. Entries are created with
//! O_EXCL semantics, hardlinks may only point at a member this archive already
//! extracted, device nodes are created but never opened. Metadata goes on in
//! the order chown, chmod, xattrs, times; directory metadata is deferred and
//! applied deepest first. A directory marked `DOCKROOT.subvolume` is created
//! as a btrfs subvolume (refused off btrfs: the btrfs storage driver could
//! not use a plain directory), and a read-only one is sealed after its
//! metadata, last.
//!
//! Memory does not grow with the archive. Data members must come in walk
//! order ([`crate::manifest::order`], as the writer puts them), each path
//! once, so:
//! - a directory's subtree is contiguous: its deferred metadata is applied as
//!   soon as a member outside it arrives, and at most one directory per level
//!   of depth is pending;
//! - "a hardlink's target is an earlier member" needs no set of the paths
//!   seen: the target must sort before the link and exist in the staging
//!   directory as a non-directory, and everything there that is not a
//!   directory was created from an earlier member;
//! - the manifest member is streamed to the caller's writer, not kept.
//!
//! File bodies up to [`AHEAD_MAX`] are written by the engine's worker pool
//! ([`crate::tree::pool`]): the reading thread takes a file's bytes off the
//! stream and hands them, with the open parent directory, to a worker that
//! creates the file (O_EXCL, no symlink followed), writes it and sets its
//! metadata. Directories, hardlinks, symlinks and nodes stay on the reading
//! thread, in order. A directory's metadata waits until the workers are done
//! with the files created directly in it (a creation would move its mtime;
//! its default ACL would reach them); a hardlink whose target is still being
//! created waits for the workers. The bytes in the workers' hands are bounded
//! by [`WRITE_BUDGET`]. Large files, and phase 2 of a two-phase archive
//! (where a member replaces an earlier one), are written by the reading
//! thread as before.
//!
//! A two-phase (live) archive ([`super::phase2`]) has a second run of data
//! members after [`layout::PHASE2`], again in walk order: each replaces what
//! phase 1 left at its name (a whole subtree, removed through fds; a
//! directory over a directory only gets its metadata again). The deletion
//! list after them is applied by [`super::deleted`].

use std::collections::BTreeMap;
use std::ffi::CString;
use std::io::{Read, Write};
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::os::unix::fs::FileExt;
use std::sync::Arc;

use super::error::{ArchiveError, Result};
use super::header::flag;
use super::layout::{self, Section, Tree};
use super::pick::Pick;
use super::read::{ArchiveReader, Member, TarReader};
use super::records::{components, ids, mtime, rdev};
use super::writers::{BATCH, BATCH_BYTES, ClosePool, FileJob, FileMeta, WRITE_BUDGET, Writers, exists, set_xattrs, staging};
use super::{data, show};
use crate::sys::{self, Kind, Timespec, btrfs, stat};
use crate::tree::apply::preset_perm;
use crate::tree::content::AHEAD_MAX;
use crate::tree::queue::{InFlight, Permit};

/// What an extraction produced besides the trees in the staging directories
/// and the manifests it streamed out.
#[derive(Debug, Default)]
pub struct Extracted {
    /// `(name below .dockroot/config/, bytes)`.
    pub config: Vec<(Vec<u8>, Vec<u8>)>,
    /// Data members extracted (the root included).
    pub entries: u64,
    /// Bytes of the manifest member.
    pub manifest_bytes: u64,
    /// Two-phase archives: tree members of phase 2 and names deleted.
    pub phase2_entries: u64,
    pub deleted: u64,
    /// Members extracted of each other tree (containerd's root, bind sources).
    pub trees: BTreeMap<Tree, u64>,
}

impl Extracted {
    /// Members of the containerd tree extracted (0: the archive has none).
    pub fn containerd_entries(&self) -> u64 {
        self.trees.get(&Tree::Containerd).copied().unwrap_or(0)
    }
}

/// Where one tree of the archive goes: an empty staging directory (its own
/// metadata becomes that of the archived root) and a writer that receives
/// the tree's manifest member.
pub struct Target<'a> {
    pub staging: BorrowedFd<'a>,
    pub manifest: &'a mut dyn Write,
}

/// Where each tree goes. A tree without a target is an error unless
/// `skip_others`: then its members are read past (and checked as they
/// stream) without being extracted.
pub struct Targets<'a> {
    pub trees: BTreeMap<Tree, Target<'a>>,
    pub skip_others: bool,
}

impl<'a> Targets<'a> {
    /// Only the data-root goes somewhere; any other tree is an error.
    pub fn data(target: Target<'a>) -> Targets<'a> {
        Targets { trees: BTreeMap::from([(Tree::Data, target)]), skip_others: false }
    }

    fn get(&mut self, tree: Tree, m: &Member) -> Result<Option<&mut Target<'a>>> {
        match self.trees.get_mut(&tree) {
            Some(t) => Ok(Some(t)),
            None if self.skip_others => Ok(None),
            None => Err(unsafe_(m, format!("the archive carries {}, which this extraction has no place for", tree.describe()))),
        }
    }
}

struct DirMeta {
    comps: Vec<Vec<u8>>,
    uid: u32,
    gid: u32,
    mode: u32,
    mtime: Timespec,
    xattrs: Vec<(Vec<u8>, Vec<u8>)>,
    /// A read-only btrfs subvolume: sealed after its metadata, last.
    read_only: bool,
    /// Workers' jobs creating files directly in this directory.
    jobs: Arc<InFlight>,
}

/// Directories closed (nothing more enters them) whose metadata waits for
/// the workers' jobs in them; beyond this many the reader waits.
const MAX_CLOSED: usize = 256;

/// The extraction of one tree.
struct Ex<'a, 'w> {
    tree: Tree,
    staging: BorrowedFd<'a>,
    /// `staging` again, for the workers.
    staging_fd: Arc<OwnedFd>,
    /// Open parent chain below staging: (component, fd).
    stack: Vec<(Vec<u8>, Arc<OwnedFd>)>,
    /// Directories whose subtree may still get members, each an ancestor of
    /// the next (at most one per level of depth).
    dirs: Vec<DirMeta>,
    /// Closed directories waiting for their jobs (at most [`MAX_CLOSED`]).
    closed: Vec<DirMeta>,
    /// Jobs not yet handed to the workers, and their bytes.
    batch: Vec<FileJob>,
    batch_bytes: usize,
    writers: &'w Writers,
    /// The path of the last member, for the order check.
    last: Option<Vec<Vec<u8>>>,
    buf: Vec<u8>,
    /// Phase 2 of a two-phase archive: a member replaces what phase 1 put at its name.
    replace: bool,
}

fn unsafe_(m: &Member, reason: impl Into<String>) -> ArchiveError {
    m.rejected(reason)
}

fn cname(m: &Member, c: &[u8]) -> Result<CString> {
    CString::new(c).map_err(|_| unsafe_(m, "NUL byte in name"))
}

/// Extracts the data members of `a` into `staging` (an empty directory whose
/// own metadata becomes that of the archived root), streams the manifest
/// member into `manifest` and collects the config members. An archive that
/// also carries other trees is rejected: see [`extract_trees`].
pub fn extract(a: &mut ArchiveReader, staging: BorrowedFd<'_>, manifest: &mut dyn Write) -> Result<Extracted> {
    extract_trees(a, Targets::data(Target { staging, manifest }))
}

/// Extracts each tree of the archive into its target (see [`Targets`]).
pub fn extract_trees(a: &mut ArchiveReader, targets: Targets<'_>) -> Result<Extracted> {
    run(a, targets, None)
}

/// Extracts only the piece `pick` of one tree (the data-root, a bind
/// tree) into `target.staging` (whose own metadata becomes that of the
/// piece's root) and streams that tree's manifest, whole, into
/// `target.manifest` (the caller cuts it: [`crate::manifest::subtree`]).
/// The extraction sees the archive through [`Pick::view`]: members outside
/// the piece are read past.
pub fn extract_piece(a: &mut ArchiveReader, pick: &Pick, target: Target<'_>) -> Result<Extracted> {
    run(a, Targets { trees: BTreeMap::from([(pick.tree, target)]), skip_others: false }, Some(pick))
}

/// The extraction, with the engine's writer workers for small file bodies.
fn run(a: &mut ArchiveReader, targets: Targets<'_>, pick: Option<&Pick>) -> Result<Extracted> {
    let writers = Writers::new();
    std::thread::scope(|s| {
        for _ in 0..crate::tree::default_threads() {
            s.spawn(|| writers.pool.run_tasks());
        }
        // However the extraction ends, the workers finish their jobs and leave.
        let _close = ClosePool(&writers.pool);
        let out = extract_members(a, targets, pick, &writers)?;
        writers.drain()?;
        Ok(out)
    })
}

fn extract_members(a: &mut ArchiveReader, mut targets: Targets<'_>, pick: Option<&Pick>, writers: &Writers) -> Result<Extracted> {
    let mut out = Extracted::default();
    let mut pos = layout::Position::default();
    // The tree being extracted (None: its members are skipped).
    let mut cur: Option<(Tree, Option<Ex>)> = None;
    if let Some(p) = pick {
        // The piece's run of members starts here: it may have none before
        // the phase-2 marker (a live backup's phase 1 leaves some entries to phase 2).
        let start = Section::Members(p.tree, b"");
        pos.advance(&start).map_err(|r| ArchiveError::Layout { what: r.into() })?;
        let staging = targets.trees.get(&p.tree).map(|t| t.staging).expect("a piece has a target");
        cur = Some((p.tree, Some(Ex::new(p.tree, staging, false, writers)?)));
    }
    let mut buf = vec![0u8; 64 << 10];
    while let Some(m) = a.tar.next_member()? {
        let m = match pick {
            Some(p) => match p.view(m)? {
                Some(m) => m,
                None => continue,
            },
            None => m,
        };
        let Some(section) = Section::of(&m.path) else {
            return Err(unsafe_(&m, "member outside data/, containerd/, binds/ and .dockroot/"));
        };
        pos.advance(&section).map_err(|r| unsafe_(&m, r))?;
        match section {
            Section::Config(name) => {
                if !matches!(m.fields.typeflag, flag::FILE | flag::OLD_FILE) {
                    return Err(unsafe_(&m, "config member is not a regular file"));
                }
                out.config.push((name.to_vec(), a.tar.read_small(&m)?));
            }
            Section::Phase2 | Section::Deleted => {
                if !matches!(m.fields.typeflag, flag::FILE | flag::OLD_FILE) {
                    return Err(unsafe_(&m, "phase-2 marker or deletion list is not a regular file"));
                }
                // The phase before is complete: its directories get their metadata now.
                if let Some((_, Some(ex))) = cur.take() {
                    ex.close()?;
                }
                if section == Section::Phase2 {
                    a.tar.read_small(&m)?;
                } else if let Some(p) = pick {
                    let staging = targets.trees.get(&p.tree).map(|t| t.staging).expect("a piece has a target");
                    out.deleted = p.apply_deleted(&m, &mut a.tar, staging, &mut buf)?;
                } else {
                    let mut staging = |t: Tree| Ok(targets.get(t, &m)?.map(|t| t.staging));
                    out.deleted = super::deleted::apply(&m, &mut a.tar, &mut staging, &mut buf)?;
                }
            }
            Section::Members(tree, rel) => {
                if cur.as_ref().map(|c| c.0) != Some(tree) {
                    if let Some((_, Some(prev))) = cur.take() {
                        prev.close()?;
                    }
                    let ex = match targets.get(tree, &m)? {
                        Some(t) => Some(Ex::new(tree, t.staging, pos.in_phase2(), writers)?),
                        None => None,
                    };
                    cur = Some((tree, ex));
                }
                let Some((_, Some(ex))) = cur.as_mut() else { continue };
                if rel.is_empty() {
                    if ex.last.is_some() {
                        return Err(m.malformed("members are out of walk order or repeat a path"));
                    }
                    if m.fields.typeflag != flag::DIR {
                        return Err(unsafe_(&m, "a tree's root must be a directory"));
                    }
                    ex.last = Some(Vec::new());
                    ex.defer_dir(&m, Vec::new())?;
                } else {
                    let comps = components(&m, rel)?;
                    ex.in_order(&m, &comps)?;
                    ex.member(&m, comps, &mut a.tar)?;
                }
                out.phase2_entries += u64::from(ex.replace);
                match tree {
                    Tree::Data => out.entries += 1,
                    t => *out.trees.entry(t).or_default() += 1,
                }
            }
            Section::Manifest(tree) => {
                if let Some((_, Some(prev))) = cur.take() {
                    prev.close()?;
                }
                let bytes = a.tar.data_left();
                if let Some(t) = targets.get(tree, &m)? {
                    let w = &mut *t.manifest;
                    loop {
                        let n = a.tar.read_data(&mut buf)?;
                        if n == 0 {
                            break;
                        }
                        w.write_all(&buf[..n]).map_err(self::staging(&tree.manifest(), "write a copy of"))?;
                    }
                }
                if tree == Tree::Data {
                    out.manifest_bytes = bytes;
                }
            }
        }
    }
    // A piece of another tree than the data-root ends with its tree's
    // manifest; the data-root's, last in the archive, is read past.
    if !pos.done() && !pick.is_some_and(|p| p.tree != Tree::Data && pos.closed(p.tree)) {
        return Err(ArchiveError::Malformed {
            index: 0,
            member: "(end)".into(),
            reason: "no .dockroot/manifest member: the backup did not finish".into(),
        });
    }
    Ok(out)
}

impl<'a, 'w> Ex<'a, 'w> {
    fn new(tree: Tree, staging: BorrowedFd<'a>, replace: bool, writers: &'w Writers) -> Result<Ex<'a, 'w>> {
        let staging_fd = Arc::new(staging.try_clone_to_owned().map_err(self::staging(&tree.prefix(), "open"))?);
        Ok(Ex {
            tree,
            staging,
            staging_fd,
            stack: Vec::new(),
            dirs: Vec::new(),
            closed: Vec::new(),
            batch: Vec::new(),
            batch_bytes: 0,
            writers,
            last: None,
            buf: vec![0; 1 << 20],
            replace,
        })
    }

    /// Applies the metadata of every pending directory: the tree is complete.
    fn close(mut self) -> Result<()> {
        self.stack.clear();
        self.close_dirs(&[])?;
        self.settle()
    }

    /// Waits for the workers, then applies every closed directory's metadata.
    fn settle(&mut self) -> Result<()> {
        self.drain()?;
        for d in std::mem::take(&mut self.closed) {
            self.apply_dir(d)?;
        }
        Ok(())
    }

    /// Hands the pending batch of jobs to the workers.
    fn flush(&mut self) {
        if self.batch.is_empty() {
            return;
        }
        let jobs = std::mem::take(&mut self.batch);
        self.batch_bytes = 0;
        let failed = self.writers.failed.clone();
        self.writers.pool.push_task(Box::new(move || jobs.into_iter().for_each(|j| j.run_reporting(&failed))));
    }

    /// Hands on the batch and waits for every job; reports the first error.
    fn drain(&mut self) -> Result<()> {
        self.flush();
        self.writers.drain()
    }

    fn top(&self) -> BorrowedFd<'_> {
        self.stack.last().map(|(_, fd)| fd.as_fd()).unwrap_or(self.staging)
    }

    fn top_fd(&self) -> Arc<OwnedFd> {
        self.stack.last().map(|(_, fd)| fd.clone()).unwrap_or_else(|| self.staging_fd.clone())
    }

    /// Makes the open chain equal to `parents`, creating missing directories.
    fn enter(&mut self, m: &Member, parents: &[Vec<u8>]) -> Result<()> {
        let common = self.stack.iter().zip(parents).take_while(|((a, _), b)| a == *b).count();
        self.stack.truncate(common);
        for c in &parents[common..] {
            let n = cname(m, c)?;
            match sys::mkdir_at(self.top(), &n, 0o700) {
                Ok(()) => {}
                Err(e) if e.raw_os_error() == Some(libc::EEXIST) => {}
                Err(e) => return Err(staging(&m.path, "create parent directory of")(e)),
            }
            let fd = sys::open_dir_at(self.top(), &n).map_err(|e| match e.raw_os_error() {
                Some(libc::ELOOP) | Some(libc::ENOTDIR) => unsafe_(m, format!("path goes through `{}`, which is not a directory", show(c))),
                _ => staging(&m.path, "open parent directory of")(e),
            })?;
            self.stack.push((c.clone(), Arc::new(fd)));
        }
        Ok(())
    }

    /// Requires data members in walk order, each path once (component-wise
    /// comparison of the paths is that order), and applies the metadata of
    /// the directories this member is not inside: nothing can enter them now.
    fn in_order(&mut self, m: &Member, comps: &[Vec<u8>]) -> Result<()> {
        if self.last.as_deref().is_some_and(|l| l >= comps) {
            return Err(m.malformed("data members are out of walk order or repeat a path"));
        }
        self.last = Some(comps.to_vec());
        self.close_dirs(comps)
    }

    /// Applies the deferred metadata of pending directories that are not
    /// ancestors of `comps`, deepest first (all of them for `&[]`, the end).
    fn close_dirs(&mut self, comps: &[Vec<u8>]) -> Result<()> {
        let mut closing = false;
        while let Some(d) = self.dirs.last() {
            let ancestor = !comps.is_empty() && d.comps.len() < comps.len() && comps.starts_with(&d.comps);
            if ancestor {
                break;
            }
            let d = self.dirs.pop().expect("checked above");
            self.closed.push(d);
            closing = true;
        }
        // Swept when a directory closes, not for every member.
        if closing { self.apply_closed() } else { Ok(()) }
    }

    /// Applies the metadata of closed directories whose jobs are done;
    /// waits for the oldest while too many are closed.
    fn apply_closed(&mut self) -> Result<()> {
        if self.closed.is_empty() {
            return Ok(());
        }
        if self.closed.len() > MAX_CLOSED {
            self.flush();
            self.closed[0].jobs.wait_idle();
        }
        let (ready, waiting): (Vec<_>, Vec<_>) = std::mem::take(&mut self.closed).into_iter().partition(|d| d.jobs.idle());
        self.closed = waiting;
        for d in ready {
            self.apply_dir(d)?;
        }
        Ok(())
    }

    fn defer_dir(&mut self, m: &Member, comps: Vec<Vec<u8>>) -> Result<()> {
        let (uid, gid) = ids(m)?;
        let mtime = mtime(m);
        let read_only = m.subvolume.is_some_and(|s| s.read_only);
        self.dirs.push(DirMeta { comps, uid, gid, mode: m.fields.mode, mtime, xattrs: m.xattrs.clone(), read_only, jobs: Arc::default() });
        Ok(())
    }

    fn member<R: Read>(&mut self, m: &Member, comps: Vec<Vec<u8>>, tar: &mut TarReader<R>) -> Result<()> {
        let (last, parents) = comps.split_last().expect("components are never empty");
        self.enter(m, parents)?;
        let name = cname(m, last)?;
        // Checked for every member type, hardlinks included.
        let owner = ids(m)?;
        let t = m.fields.typeflag;
        if self.replace {
            let dir = self.stack.last().map(|(_, fd)| fd.as_fd()).unwrap_or(self.staging);
            self.make_room(m, dir, &name, t == flag::DIR)?;
        }
        if t == flag::DIR {
            return self.directory(m, &name, comps);
        }
        if m.subvolume.is_some() {
            return Err(m.malformed("a btrfs subvolume record on a member that is not a directory"));
        }
        if t == flag::LINK {
            return self.hardlink(m, &comps, &name);
        }
        // Jobs creating files directly in the pending directory hold it open.
        let jobs = self.dirs.last().filter(|d| d.comps == parents).map(|d| d.jobs.clone());
        self.leaf(m, &name, owner, tar, jobs)
    }

    /// A directory: created now (0700; a btrfs subvolume if the member says
    /// so), its metadata applied once its children exist.
    fn directory(&mut self, m: &Member, name: &CString, comps: Vec<Vec<u8>>) -> Result<()> {
        let dir = self.stack.last().map(|(_, fd)| fd.as_fd()).unwrap_or(self.staging);
        let made = match m.subvolume {
            Some(_) => btrfs::create(dir, name).and_then(|()| {
                let fd = sys::open_dir_at(dir, name)?;
                sys::fchmod(fd.as_fd(), 0o700)
            }),
            None => sys::mkdir_at(dir, name, 0o700),
        };
        match made {
            Ok(()) => {}
            Err(e) if e.raw_os_error() == Some(libc::EEXIST) => {
                let st = stat::lstat_at(dir, name).ok().filter(|s| s.kind == Kind::Dir);
                let Some(st) = st else { return Err(unsafe_(m, "directory declared over an existing non-directory")) };
                // Phase 2 may write below a subvolume that phase 1 sealed.
                let fd = sys::open_dir_at(dir, name).map_err(staging(&m.path, "open"))?;
                if btrfs::subvolume(fd.as_fd(), st.ino).map_err(staging(&m.path, "inspect subvolume"))?.is_some_and(|s| s.read_only) {
                    btrfs::set_read_only(fd.as_fd(), false).map_err(staging(&m.path, "make writable"))?;
                }
            }
            Err(_) if m.subvolume.is_some() && btrfs::is_btrfs(dir).ok() == Some(false) => {
                return Err(ArchiveError::NotBtrfs { member: show(&m.path) });
            }
            Err(e) => return Err(staging(&m.path, if m.subvolume.is_some() { "create btrfs subvolume" } else { "create" })(e)),
        }
        self.defer_dir(m, comps)
    }

    /// A hardlink to an earlier, non-directory member of the same tree.
    fn hardlink(&mut self, m: &Member, comps: &[Vec<u8>], name: &CString) -> Result<()> {
        let dir_fd = self.top_fd();
        let dir = dir_fd.as_fd();
        let prefix = self.tree.prefix();
        let target =
            m.fields.linkname.strip_prefix(&*prefix).ok_or_else(|| unsafe_(m, format!("hardlink target outside {}", show(&prefix))))?;
        let tc = components(m, target)?;
        let not_earlier = || unsafe_(m, format!("hardlink to `{}`, which is not an earlier member of this archive", show(target)));
        // Earlier in walk order and present: see the module docs.
        if tc.as_slice() >= comps {
            return Err(not_earlier());
        }
        let (tlast, tparents) = tc.split_last().expect("non-empty");
        let mut fd: Option<OwnedFd> = None;
        let top = self.staging;
        for c in tparents {
            let base = fd.as_ref().map(|f| f.as_fd()).unwrap_or(top);
            fd = Some(sys::open_dir_at(base, &cname(m, c)?).map_err(|e| match e.raw_os_error() {
                Some(libc::ENOENT) | Some(libc::ENOTDIR) | Some(libc::ELOOP) => not_earlier(),
                _ => staging(&m.path, "open hardlink target parent of")(e),
            })?);
        }
        let tdir = fd.as_ref().map(|f| f.as_fd()).unwrap_or(top);
        let tname = cname(m, tlast)?;
        let mut found = stat::lstat_at(tdir, &tname);
        if found.as_ref().is_err_and(|e| e.raw_os_error() == Some(libc::ENOENT)) {
            // Perhaps still being created by a worker.
            self.drain()?;
            found = stat::lstat_at(tdir, &tname);
        }
        match found {
            Ok(st) if st.kind != Kind::Dir => {}
            Ok(_) => return Err(unsafe_(m, "hardlink to a directory")),
            Err(e) if e.raw_os_error() == Some(libc::ENOENT) => return Err(not_earlier()),
            Err(e) => return Err(staging(&m.path, "stat hardlink target of")(e)),
        }
        sys::link_at(tdir, &tname, dir, name).map_err(exists(&m.path))
    }

    /// A file, symlink, device node, fifo or socket, with its metadata in
    /// order: owner, mode, xattrs, times.
    fn leaf<R: Read>(
        &mut self,
        m: &Member,
        name: &CString,
        (uid, gid): (u32, u32),
        tar: &mut TarReader<R>,
        jobs: Option<Arc<InFlight>>,
    ) -> Result<()> {
        let mtime = mtime(m);
        let exists = exists(&m.path);
        let set_x = |dir: BorrowedFd<'_>| set_xattrs(dir, name, &m.path, &m.xattrs);
        match m.fields.typeflag {
            flag::FILE | flag::OLD_FILE if !m.socket => {
                // Phase 2 writes into directories that already have their
                // final mode, owner and default ACL: no preset there.
                let preset = if self.replace { None } else { preset_perm(uid, gid, m.fields.mode) };
                let meta = FileMeta { path: m.path.clone(), uid, gid, mode: m.fields.mode, mtime, xattrs: m.xattrs.clone(), preset };
                if !self.replace && m.sparse_size.is_none() && tar.data_left() <= AHEAD_MAX {
                    return self.hand_off(m, name, meta, tar, jobs);
                }
                let dir_fd = self.top_fd();
                let dir = dir_fd.as_fd();
                let f = meta.create(dir, name)?;
                let write = |off: u64, d: &[u8]| f.write_all_at(d, off).map_err(staging(&m.path, "write"));
                let (size, _) = data::content(tar, m, &mut self.buf, false, write)?;
                if m.sparse_size.is_some() {
                    // A trailing hole: holes stay holes.
                    f.set_len(size).map_err(staging(&m.path, "set size of"))?;
                }
                meta.apply(&f, dir, name)?;
            }
            flag::SYMLINK => {
                let dir = self.top();
                if m.fields.linkname.is_empty() || m.fields.linkname.contains(&0) {
                    return Err(m.malformed("empty or NUL-containing symlink target"));
                }
                sys::symlink_at(&m.fields.linkname, dir, name).map_err(exists)?;
                // Ours already, unless phase 2 writes into a setgid directory.
                if self.replace || preset_perm(uid, gid, 0).is_none() {
                    sys::chown_at(dir, name, uid, gid).map_err(staging(&m.path, "chown"))?;
                }
                set_x(dir)?;
                sys::set_times_at(dir, name, mtime, mtime).map_err(staging(&m.path, "set times of"))?;
            }
            flag::CHAR | flag::BLOCK | flag::FIFO | flag::FILE | flag::OLD_FILE => {
                let kind = match m.fields.typeflag {
                    flag::CHAR => Kind::Char,
                    flag::BLOCK => Kind::Block,
                    flag::FIFO => Kind::Fifo,
                    _ => Kind::Socket,
                };
                let rdev = rdev(m)?;
                let dir = self.top();
                sys::mknod_at(dir, name, kind, rdev).map_err(exists)?;
                sys::chown_at(dir, name, uid, gid).map_err(staging(&m.path, "chown"))?;
                sys::chmod_at(dir, name, m.fields.mode).map_err(staging(&m.path, "chmod"))?;
                set_x(dir)?;
                sys::set_times_at(dir, name, mtime, mtime).map_err(staging(&m.path, "set times of"))?;
            }
            other => {
                return Err(m.malformed(format!("unsupported member type `{}`", other.escape_ascii())));
            }
        }
        Ok(())
    }

    /// Takes a small file's bytes off the stream and hands the file to a worker.
    fn hand_off<R: Read>(
        &mut self,
        m: &Member,
        name: &CString,
        meta: FileMeta,
        tar: &mut TarReader<R>,
        jobs: Option<Arc<InFlight>>,
    ) -> Result<()> {
        let w = self.writers;
        let n = tar.data_left() as usize;
        let charge = n.max(WRITE_BUDGET / 256);
        let held = match Permit::try_take(&w.budget, charge) {
            Some(p) => p,
            None => {
                // The batch's own permits must reach the workers to come back.
                self.flush();
                Permit::take(&w.budget, charge)
            }
        };
        let mut bytes = Vec::with_capacity(n);
        data::content(tar, m, &mut self.buf, false, |_, d| {
            bytes.extend_from_slice(d);
            Ok(())
        })?;
        w.check()?;
        let job = FileJob { dir: self.top_fd(), name: name.clone(), meta, bytes, _held: (held, w.all.enter(), jobs.map(|j| j.enter())) };
        self.batch.push(job);
        self.batch_bytes += n;
        if self.batch.len() >= BATCH || self.batch_bytes >= BATCH_BYTES {
            self.flush();
        }
        Ok(())
    }

    /// Phase 2: removes what phase 1 put at `name` (a whole subtree, through
    /// fds, never following a symlink), except a directory that stays one.
    fn make_room(&self, m: &Member, dir: BorrowedFd<'_>, name: &CString, is_dir: bool) -> Result<()> {
        match stat::lstat_at(dir, name) {
            Ok(st) if is_dir && st.kind == Kind::Dir => Ok(()),
            Ok(_) => sys::remove_tree_at(dir, name).map_err(staging(&m.path, "remove the phase-1 entry replaced by")),
            Err(e) if e.raw_os_error() == Some(libc::ENOENT) => Ok(()),
            Err(e) => Err(staging(&m.path, "stat")(e)),
        }
    }

    /// Applies a directory's metadata, once all its children exist.
    fn apply_dir(&self, d: DirMeta) -> Result<()> {
        let path = d.comps.join(&b'/');
        let mut fd: Option<OwnedFd> = None;
        for c in &d.comps {
            let base = fd.as_ref().map(|f| f.as_fd()).unwrap_or(self.staging);
            let n = CString::new(c.as_slice()).expect("checked when extracted");
            fd = Some(sys::open_dir_at(base, &n).map_err(staging(&path, "open directory"))?);
        }
        let fd = fd.as_ref().map(|f| f.as_fd()).unwrap_or(self.staging);
        sys::fchown(fd, d.uid, d.gid).map_err(staging(&path, "chown directory"))?;
        sys::fchmod(fd, d.mode).map_err(staging(&path, "chmod directory"))?;
        sys::xattr::write_at(fd, sys::DOT, &d.xattrs, false).map_err(|(k, source)| ArchiveError::Staging {
            path: format!("{} (xattr {})", show(&path), show(&k)),
            step: "set xattr on directory",
            source,
        })?;
        sys::futimens(fd, d.mtime, d.mtime).map_err(staging(&path, "set times of directory"))?;
        // Read-only last: the flag refuses every later change, times included.
        if d.read_only {
            btrfs::set_read_only(fd, true).map_err(staging(&path, "make read-only the btrfs subvolume"))?;
        }
        Ok(())
    }
}
