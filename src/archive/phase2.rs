//! The two phases of a live backup of one tree (issue 10).
//!
//! Phase 1 ([`phase1`]) archives the tree while Docker runs; entries that
//! change while they are read are counted, and their records are spooled to
//! a named temporary manifest (never held in memory). Phase 2 ([`phase2`])
//! runs with Docker stopped: it walks the tree again with that manifest
//! merged as the walk's baseline and appends only what differs from it.
//!
//! What counts as unchanged: a regular file with the same inode, ctime, size
//! and mtime (ctime cannot be set from user space, so any write, chmod,
//! chown, xattr change, link or unlink since phase 1 read it moves it); any
//! other entry whose record (type, mode, owner, mtime, xattrs, link target,
//! device) is equal. A file that raced in phase 1 is spooled with inode 0,
//! so it never counts as unchanged.
//!
//! The members phase 2 appends must leave the same tree under GNU tar (later
//! members replace earlier ones) as under dockroot's extractor:
//! - A replaced file is unlinked and created again, so it leaves its old
//!   hardlink group: when a group's head is appended, every other name of the
//!   group is appended too (as a link to the new head).
//! - Replacing a name changes its directory's mtime: the directories above
//!   every appended member are appended before it, so their metadata is set
//!   again once their new children are in (they are not otherwise changed).
//! - The deletion list names each removed subtree once (its top). Below a
//!   directory that became a non-directory it names the phase-1 children:
//!   GNU tar cannot replace a non-empty directory (without
//!   `--recursive-unlink`, which would also empty every directory phase 2
//!   appends again), so a restore by hand empties it with the list and then
//!   extracts that one name again (docs/archive.md). dockroot's extractor replaces
//!   the whole subtree and skips those names (their parent is no longer a
//!   directory; it never follows a symlink there).

use std::collections::HashSet;
use std::io::{BufWriter, Seek, SeekFrom, Write};
use std::os::fd::BorrowedFd;
use std::path::Path;

use serde::{Deserialize, Serialize};

use super::error::{ArchiveError, Result};
use super::layout::Tree;
use super::records::Spool;
use super::walk::{Source, TreeSource, entry, walk_live, walk_outcomes};
use super::{ArchiveWriter, EntryRecord};
use crate::manifest::{Body, Reader, Record, order};
use crate::sys::btrfs::Subvolume;
use crate::sys::{Kind, Meta};
use crate::tree::links::LinkRole;
use crate::tree::pool::Pool;
use crate::tree::scan::{Opened, record_with, unchanged_since};
use crate::tree::{Entered, Item, Outcome, Visitor};

/// What one phase archived.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct PhaseStats {
    /// Data members written (phase 2: new or changed entries, with the
    /// directories above them).
    pub entries: u64,
    /// File content bytes written.
    pub bytes: u64,
    /// Phase 1: entries that changed or vanished while they were read.
    #[serde(default)]
    pub raced: u64,
    /// Phase 2: names in the deletion list.
    #[serde(default)]
    pub deleted: u64,
}

impl PhaseStats {
    /// Adds another tree's stats of the same phase.
    pub fn add(&mut self, o: &PhaseStats) {
        self.entries += o.entries;
        self.bytes += o.bytes;
        self.raced += o.raced;
        self.deleted += o.deleted;
    }
}

/// Completes a walked entry's record with what the writer read (a regular
/// file's size and BLAKE3).
pub fn complete(mut rec: Record, written: &EntryRecord) -> Record {
    if let Body::File { size, blake3, ino, .. } = &mut rec.body {
        *size = written.size;
        *blake3 = written.hash.unwrap_or_default();
        if written.raced {
            // Never "unchanged" for phase 2: its member may hold a mix.
            *ino = 0;
        }
    }
    rec
}

fn content_bytes(rec: &EntryRecord) -> u64 {
    if rec.hardlink_to.is_none() && rec.kind == Kind::File { rec.size } else { 0 }
}

/// Phase 1: archives the tree `src` while it may change. Returns the
/// stats and the spooled records (the baseline of [`phase2`]).
pub fn phase1<W: Write + Send + 'static>(
    w: &mut ArchiveWriter<W>,
    src: &TreeSource,
    advance: &mut dyn FnMut(u64),
) -> Result<(PhaseStats, tempfile::TempPath)> {
    let mut spool = Spool::named()?;
    let mut stats = PhaseStats::default();
    w.set_live(true);
    let walked = walk_live(src, true, &mut |walked, e| {
        let rec = w.add_tree_entry(src.tree, e)?;
        stats.raced += u64::from(rec.raced);
        spool.push(&complete(walked, &rec))?;
        stats.entries += 1;
        stats.bytes += content_bytes(&rec);
        advance(content_bytes(&rec));
        Ok(())
    });
    w.set_live(false);
    stats.raced += walked?.raced;
    Ok((stats, spool.into_path()?))
}

/// Phase 2's visitor: an entry's record and whether it differs from the
/// baseline (in `Outcome::rewritten`). Unchanged files are not opened.
struct Changes {
    source: Source,
}

impl Visitor for Changes {
    fn enter_dir(&self, item: &Item, src: BorrowedFd<'_>) -> crate::error::Result<Entered> {
        let rec = record_with(item, &item.meta, Body::Dir, &self.source.root, Opened::Io(src))?;
        let changed = item.baseline.as_ref() != Some(&rec);
        let subvolume = self.source.subvolume(item, src)?;
        let outcome = Outcome { record: Some(rec), source: Some((item.meta, None)), rewritten: changed, subvolume, ..Outcome::default() };
        Ok(Entered { outcome, ..Entered::default() })
    }

    fn entry(&self, item: &Item, pool: &Pool) -> crate::error::Result<Outcome> {
        let base = item.baseline.as_ref();
        let plain_file = item.meta.kind == Kind::File && !matches!(item.link, Some(LinkRole::Member { .. }));
        if plain_file && let Some(b) = base.filter(|b| unchanged_since(b, &item.meta).is_some()) {
            return Ok(Outcome { record: Some(b.clone()), source: Some((item.meta, None)), ..Outcome::default() });
        }
        let mut o = self.source.entry(item, pool)?;
        o.rewritten = plain_file || base != o.record.as_ref();
        Ok(o)
    }
}

/// The deletion list of a two-phase archive, spooled while phase 2 walks
/// each tree ([`phase2`]), then written by [`DeletionList::finish`].
pub struct DeletionList {
    /// Names ended by NUL, each with its tree's prefix.
    list: BufWriter<std::fs::File>,
    count: u64,
}

impl DeletionList {
    pub fn new() -> Result<DeletionList> {
        let list = tempfile::tempfile().map_err(scratch("create the deletion list"))?;
        Ok(DeletionList { list: BufWriter::new(list), count: 0 })
    }

    /// Appends the list after every tree's phase-2 members; returns its count of names.
    pub fn finish<W: Write + Send + 'static>(self, w: &mut ArchiveWriter<W>) -> Result<u64> {
        let mut list = self.list.into_inner().map_err(|e| scratch("write the deletion list")(e.into_error()))?;
        let len = list.seek(SeekFrom::End(0)).map_err(scratch("measure the deletion list"))?;
        list.seek(SeekFrom::Start(0)).map_err(scratch("rewind the deletion list"))?;
        w.add_deleted(list, len)?;
        Ok(self.count)
    }
}

/// The records phase 1 archived, read alongside phase 2's walk: those the
/// walk passes without seeing are deleted.
struct Deletions<'l> {
    tree: Tree,
    old: Reader,
    list: &'l mut DeletionList,
    /// The last deleted directory: phase-1 names below it go with it and
    /// are not listed.
    covered: Option<Vec<u8>>,
}

fn below(path: &[u8], top: &[u8]) -> bool {
    path.len() > top.len() && path.starts_with(top) && path[top.len()] == b'/'
}

fn scratch(step: &'static str) -> impl FnOnce(std::io::Error) -> ArchiveError {
    move |source| ArchiveError::Scratch { step, source }
}

impl Deletions<'_> {
    /// Lists the phase-1 names before `path` in walk order (all for `None`)
    /// and consumes the one at `path`.
    fn up_to(&mut self, path: Option<&[u8]>) -> Result<()> {
        while let Some(r) = self.old.peek()? {
            let ord = path.map(|p| order::cmp(&r.path, p)).unwrap_or(std::cmp::Ordering::Less);
            if ord == std::cmp::Ordering::Greater {
                break;
            }
            let r = self.old.next_record()?.expect("peeked");
            if ord == std::cmp::Ordering::Equal || self.covered.as_deref().is_some_and(|c| below(&r.path, c)) {
                continue;
            }
            let mut name = self.tree.path(&r.path, false);
            name.push(0);
            self.list.list.write_all(&name).map_err(scratch("write the deletion list"))?;
            self.list.count += 1;
            if r.body == Body::Dir {
                self.covered = Some(r.path);
            }
        }
        Ok(())
    }
}

/// Directories of the walk not yet appended in phase 2, each the parent of
/// the next: appended (outermost first) when something below them is.
struct Pending {
    dirs: Vec<(Record, Meta, Option<Subvolume>)>,
}

impl Pending {
    /// Drops the directories that are not ancestors of `path`.
    fn leave(&mut self, path: &[u8]) {
        let ancestor = |dir: &[u8]| (dir.is_empty() && !path.is_empty()) || below(path, dir);
        while self.dirs.last().is_some_and(|(d, _, _)| !ancestor(&d.path)) {
            self.dirs.pop();
        }
    }
}

/// Phase 2 of one tree: with it stopped, appends to `w` what differs from
/// the `baseline` (phase 1's records) and adds the names it no longer has
/// to `deleted`. Pushes the record of every entry of the stopped tree, in
/// walk order, to `manifest`. Returns the phase's stats (`deleted`: this
/// tree's names) and the stopped tree's entries and file bytes.
pub fn phase2<W: Write + Send + 'static>(
    w: &mut ArchiveWriter<W>,
    src: &TreeSource,
    baseline: &Path,
    manifest: &mut Spool,
    deleted: &mut DeletionList,
    advance: &mut dyn FnMut(u64),
) -> Result<(PhaseStats, u64, u64)> {
    let tree = src.tree;
    let opts = src.walk_options(false, Some(baseline));
    let visitor = Changes { source: Source::new(&src.root, false) };
    let before = deleted.count;
    let mut del = Deletions { tree, old: Reader::open(baseline)?, list: deleted, covered: None };
    let mut pending = Pending { dirs: Vec::new() };
    // Heads of hardlink groups appended again: their other names follow them.
    let mut new_heads: HashSet<Vec<u8>> = HashSet::new();
    let mut stats = PhaseStats::default();
    let (mut tree_entries, mut tree_bytes) = (0u64, 0u64);
    let mut append = |w: &mut ArchiveWriter<W>, rec: &Record, source: (Meta, Option<std::fs::File>), sv, ahead| -> Result<EntryRecord> {
        let written = w.add_tree_entry(tree, entry(rec, source, sv, ahead))?;
        stats.entries += 1;
        stats.bytes += content_bytes(&written);
        advance(content_bytes(&written));
        Ok(written)
    };
    walk_outcomes(&opts, &visitor, &mut |o| {
        let (Some(rec), Some(source)) = (o.record, o.source) else { return Ok(()) };
        del.up_to(Some(&rec.path))?;
        pending.leave(&rec.path);
        let relinked = matches!(&rec.body, Body::Hardlink { target } if new_heads.contains(target));
        let rec = if o.rewritten || relinked {
            for (d, m, sv) in std::mem::take(&mut pending.dirs) {
                append(w, &d, (m, None), sv, None)?;
            }
            let nlink = source.0.nlink;
            let written = append(w, &rec, source, o.subvolume, o.ahead)?;
            if written.kind == Kind::File && written.hardlink_to.is_none() && nlink > 1 {
                new_heads.insert(rec.path.clone());
            }
            complete(rec, &written)
        } else {
            if rec.body == Body::Dir {
                pending.dirs.push((rec.clone(), source.0, o.subvolume));
            }
            rec
        };
        tree_entries += 1;
        if let Body::File { size, .. } = rec.body {
            tree_bytes += size;
        }
        manifest.push(&rec)
    })?;
    del.up_to(None)?;
    stats.deleted = del.list.count - before;
    Ok((stats, tree_entries, tree_bytes))
}
