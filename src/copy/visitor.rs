//! The copy visitor: creates each entry in the destination, copies content,
//! applies metadata and returns the source's manifest record.

use std::os::fd::{AsFd, BorrowedFd};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use super::CopyOptions;
use super::delta::{self, Decision};
use super::file::{Copied, copy_content};
use crate::error::{Error, Result, show};
use crate::manifest::{Body, Record};
use crate::sys::btrfs::{self, Subvolume};
use crate::sys::{self, Kind, Meta};
use crate::tree::apply::{Attrs, FileTarget, apply_at, apply_dir, apply_file, preset_mode};
use crate::tree::links::{HeadPlace, LinkRole, LinkSlot};
use crate::tree::pool::Pool;
use crate::tree::scan::{Opened, changed_during_read, changed_or, open_file, open_seen, record_with, special_record};
use crate::tree::{Entered, Item, Outcome, Visitor};

pub struct CopyVisitor {
    src: PathBuf,
    dst: PathBuf,
    opts: CopyOptions,
    late: Arc<Mutex<Vec<Error>>>,
    /// Subvolumes of the source made plain directories: the destination is not btrfs.
    flattened: std::sync::atomic::AtomicU64,
}

/// Publishes "head failed" to waiting members unless the head succeeded.
struct HeadGuard<'a>(Option<&'a LinkSlot>);

impl HeadGuard<'_> {
    fn done(mut self, place: HeadPlace) {
        if let Some(s) = self.0.take() {
            s.publish(Some(place));
        }
    }
}

impl Drop for HeadGuard<'_> {
    fn drop(&mut self) {
        if let Some(s) = self.0.take() {
            s.publish(None);
        }
    }
}

fn dst_dir(item: &Item) -> BorrowedFd<'_> {
    item.parent.dst.as_ref().expect("copy nodes have a destination").as_fd()
}

impl CopyVisitor {
    pub fn new(src: &Path, dst: &Path, opts: &CopyOptions) -> CopyVisitor {
        CopyVisitor { src: src.into(), dst: dst.into(), opts: opts.clone(), late: Default::default(), flattened: Default::default() }
    }

    /// How many source subvolumes became plain directories (off btrfs).
    pub fn flattened(&self) -> u64 {
        self.flattened.load(std::sync::atomic::Ordering::Relaxed)
    }

    fn e(&self, step: &'static str, rel: &[u8], e: std::io::Error) -> Error {
        Error::io(step, &self.dst, rel, e)
    }

    fn es(&self, step: &'static str, rel: &[u8], e: std::io::Error) -> Error {
        Error::source(step, &self.src, rel, e)
    }

    /// In delta mode, clears a destination entry that cannot be reused.
    fn clear_existing(&self, item: &Item) -> Result<()> {
        if !self.opts.delete {
            return Ok(());
        }
        let d = dst_dir(item);
        if let Some(m) = delta::dst_meta(d, &item.name).map_err(|e| self.e("stat", &item.rel, e))? {
            delta::clear(d, &item.name, &m).map_err(|e| self.e("remove", &item.rel, e))?;
        }
        Ok(())
    }

    fn link_member(&self, item: &Item, head_rel: &[u8], slot: &LinkSlot) -> Result<Outcome> {
        let d = dst_dir(item);
        slot.with_head(|head| {
            let Some(head) = head else {
                // In a live tree the first name may have raced (a container
                // swapped it): this name is then a race too, settled by the
                // next --delete pass, or one container could fail every copy.
                if self.opts.live {
                    return Err(Error::Changed { path: show(&self.src, &item.rel), what: "changed" });
                }
                return Err(Error::Refused {
                    path: show(&self.dst, &item.rel),
                    msg: format!("not linked: its hardlink group's first name {} failed (see that error)", show(&self.dst, head_rel)),
                });
            };
            let hd = head.dir.dst.as_ref().expect("destination").as_fd();
            if self.opts.delete
                && let Some(m) = delta::dst_meta(d, &item.name).map_err(|e| self.e("stat", &item.rel, e))?
            {
                let hm = sys::stat::lstat_at(hd, &head.name).map_err(|e| self.e("stat", head_rel, e))?;
                if (m.dev, m.ino) == (hm.dev, hm.ino) {
                    return Ok(());
                }
                delta::clear(d, &item.name, &m).map_err(|e| self.e("remove", &item.rel, e))?;
            }
            sys::link_at(hd, &head.name, d, &item.name).map_err(|e| self.e("link", &item.rel, e))
        })?;
        let record = Record::hardlink(item.rel.clone(), head_rel.to_vec());
        Ok(Outcome { record: Some(record), ..Outcome::default() })
    }

    /// Delta mode: keeps the destination file when it provably holds the content.
    fn try_keep(&self, item: &Item, pool: &Pool) -> Result<Option<Outcome>> {
        let d = dst_dir(item);
        let Some(dm) = delta::dst_meta(d, &item.name).map_err(|e| self.e("stat", &item.rel, e))? else {
            return Ok(None);
        };
        let sole = matches!(item.link, Some(LinkRole::Head(_))) || dm.nlink == 1;
        if dm.kind != Kind::File || !sole {
            return Ok(None);
        }
        let decision = delta::decide(pool, item, self.opts.checksum, d, &dm).map_err(|e| self.es("compare", &item.rel, e))?;
        let Decision::Keep(hash) = decision else {
            return Ok(None);
        };
        let body = Body::File { size: item.meta.size, blake3: hash, ino: item.meta.ino, ctime: item.meta.ctime };
        let record = record_with(item, &item.meta, body, &self.src, Opened::Path(open_seen(item, &self.src)?.as_fd()))?;
        if !delta::same_attrs(d, &item.name, &dm, &item.meta, &record.xattrs) {
            apply_at(d, &item.name, &Attrs { meta: &item.meta, xattrs: &record.xattrs }, true, &self.dst, &item.rel)?;
        }
        Ok(Some(Outcome { record: Some(record), ..Outcome::default() }))
    }

    fn copy_file(&self, item: &Item, pool: &Pool) -> Result<Outcome> {
        let slot = match &item.link {
            Some(LinkRole::Member { head_rel, slot }) => {
                return self.link_member(item, head_rel, slot);
            }
            Some(LinkRole::Head(slot)) => Some(slot.as_ref()),
            None => None,
        };
        let guard = HeadGuard(slot);
        let place = || HeadPlace { dir: item.parent.clone(), name: item.name.clone() };
        if self.opts.delete {
            if let Some(o) = self.try_keep(item, pool)? {
                guard.done(place());
                return Ok(o);
            }
            self.clear_existing(item)?;
        }
        let (rel, d) = (&item.rel, dst_dir(item));
        let src = Arc::new(open_file(item, &self.src)?.0);
        // The walker's stat was taken before this read: a write during the
        // read moves ctime past it, and the stat after the read shows that.
        let before = item.meta;
        let preset = preset_mode(&before);
        let dst = Arc::new(sys::create_file_mode_at(d, &item.name, preset.unwrap_or(0o600)).map_err(|e| self.e("create", rel, e))?);
        // A file whose source changed while it was read holds a mix of old and
        // new: without --live it must not stay in DST looking complete.
        let discard = |e: Error| {
            if !self.opts.live {
                let _ = sys::unlink_at(d, &item.name);
            }
            e
        };
        let copied = if self.opts.clone {
            // Shared extents: holes stay holes and nothing is read, so there is no hash.
            sys::reflink::clone_file(dst.as_fd(), src.as_fd()).map_err(|e| discard(self.e("clone data to", rel, e)))?;
            Copied { blake3: [0; 32], sparsified: 0 }
        } else {
            copy_content(pool, src.clone(), dst.clone(), before.size, before.blocks, self.opts.sparsify)
                .map_err(|e| discard(changed_or(src.as_fd(), &before, &self.src, rel, self.e("copy data to", rel, e))))?
        };
        let after = sys::stat::fstat(src.as_fd()).map_err(|e| self.es("stat", rel, e))?;
        let raced = changed_during_read(&before, &after);
        if raced && !self.opts.live {
            return Err(discard(Error::Changed { path: show(&self.src, rel), what: "changed" }));
        }
        let body = Body::File { size: before.size, blake3: copied.blake3, ino: before.ino, ctime: before.ctime };
        let record = record_with(item, &before, body, &self.src, Opened::Io(src.as_fd()))?;
        let target = FileTarget { fd: dst.as_fd(), dir: d, name: &item.name, preset: preset.is_some() };
        apply_file(&target, &Attrs { meta: &before, xattrs: &record.xattrs }, self.opts.delete, &self.dst, rel)?;
        guard.done(place());
        Ok(Outcome {
            record: Some(record),
            bytes: before.size,
            raced,
            sparsified: copied.sparsified,
            rewritten: true,
            ..Outcome::default()
        })
    }

    fn copy_special(&self, item: &Item) -> Result<Outcome> {
        let (rel, d, m) = (&item.rel, dst_dir(item), &item.meta);
        let record = special_record(item, &self.src)?;
        if self.opts.delete && delta::same_special(d, &item.name, m, &record.body, &record.xattrs) {
            return Ok(Outcome { record: Some(record), ..Outcome::default() });
        }
        self.clear_existing(item)?;
        match &record.body {
            Body::Symlink { target } => sys::symlink_at(target, d, &item.name).map_err(|e| self.e("create symlink", rel, e))?,
            _ => sys::mknod_at(d, &item.name, m.kind, m.rdev).map_err(|e| self.e("create node", rel, e))?,
        }
        apply_at(d, &item.name, &Attrs { meta: m, xattrs: &record.xattrs }, self.opts.delete, &self.dst, rel)?;
        Ok(Outcome { record: Some(record), rewritten: true, ..Outcome::default() })
    }

    /// The source's subvolume as the destination can hold it: off btrfs it
    /// can only be a directory, and the caller is told (a move or restore of
    /// the btrfs driver refuses such a target first).
    fn on_destination(&self, item: &Item, found: Option<Subvolume>) -> Option<Subvolume> {
        found.filter(|_| {
            let on_btrfs = btrfs::is_btrfs(dst_dir(item)).unwrap_or(true);
            if !on_btrfs {
                self.flattened.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            }
            on_btrfs
        })
    }

    /// Opens (delta) or creates the destination directory for `item`: a
    /// subvolume when the source is one (`subvol`). A delta reuses a
    /// directory only when it is the same kind (subvolume or not), and makes
    /// a read-only one writable until its finaliser.
    fn make_dir(&self, item: &Item, subvol: Option<Subvolume>) -> Result<std::os::fd::OwnedFd> {
        let (rel, d) = (&item.rel, dst_dir(item));
        if item.rel.is_empty() {
            return sys::open_dir_at(d, sys::DOT).map_err(|e| self.e("open", rel, e));
        }
        if self.opts.delete {
            match delta::dst_meta(d, &item.name).map_err(|e| self.e("stat", rel, e))? {
                Some(m) if m.kind == Kind::Dir => {
                    let fd = sys::open_dir_at(d, &item.name).map_err(|e| self.e("open", rel, e))?;
                    let have = btrfs::subvolume(fd.as_fd(), m.ino).map_err(|e| self.e("inspect subvolume", rel, e))?;
                    if have.is_some() == subvol.is_some() {
                        if have.is_some_and(|s| s.read_only) {
                            btrfs::set_read_only(fd.as_fd(), false).map_err(|e| self.e("make writable", rel, e))?;
                        }
                        return Ok(fd);
                    }
                    drop(fd);
                    delta::clear(d, &item.name, &m).map_err(|e| self.e("remove", rel, e))?;
                }
                Some(m) => delta::clear(d, &item.name, &m).map_err(|e| self.e("remove", rel, e))?,
                None => {}
            }
        }
        // Private until finalised: mode and owner are applied after the children.
        match subvol {
            Some(_) => {
                btrfs::create(d, &item.name).map_err(|e| self.e("create btrfs subvolume", rel, e))?;
                let fd = sys::open_dir_at(d, &item.name).map_err(|e| self.e("open", rel, e))?;
                sys::fchmod(fd.as_fd(), 0o700).map_err(|e| self.e("chmod", rel, e))?;
                Ok(fd)
            }
            None => {
                sys::mkdir_at(d, &item.name, 0o700).map_err(|e| self.e("create directory", rel, e))?;
                sys::open_dir_at(d, &item.name).map_err(|e| self.e("open", rel, e))
            }
        }
    }
}

impl Visitor for CopyVisitor {
    fn enter_dir(&self, item: &Item, src: BorrowedFd<'_>) -> Result<Entered> {
        let record = record_with(item, &item.meta, Body::Dir, &self.src, Opened::Io(src))?;
        // The tree's root is the destination the caller gave: never a new subvolume.
        let subvol = match item.rel.is_empty() {
            true => None,
            false => {
                self.on_destination(item, btrfs::subvolume(src, item.meta.ino).map_err(|e| self.es("inspect subvolume", &item.rel, e))?)
            }
        };
        let dst = self.make_dir(item, subvol)?;
        let (meta, xattrs, exact): (Meta, _, _) = (item.meta, record.xattrs.clone(), self.opts.delete);
        let (root, rel, late) = (self.dst.clone(), item.rel.clone(), self.late.clone());
        let finaliser = Box::new(move |node: &crate::tree::DirNode| {
            let fd = node.dst.as_ref().expect("destination").as_fd();
            // A delta leaves a directory that already matches untouched.
            let same = exact && delta::same_dir_attrs(fd, &meta, &xattrs);
            let applied = if same { Ok(()) } else { apply_dir(fd, &Attrs { meta: &meta, xattrs: &xattrs }, exact, &root, &rel) };
            // Read-only last: the flag refuses every later change, times included.
            let sealed = applied.and_then(|()| match subvol {
                Some(Subvolume { read_only: true }) => {
                    btrfs::set_read_only(fd, true).map_err(|e| Error::io("make read-only", &root, &rel, e))
                }
                _ => Ok(()),
            });
            if let Err(e) = sealed {
                late.lock().unwrap().push(e);
            }
        });
        let outcome = Outcome { record: Some(record), subvolume: subvol, ..Outcome::default() };
        Ok(Entered { dst: Some(dst), finaliser: Some(finaliser), outcome })
    }

    fn prune(&self, node: &crate::tree::DirNode, src_names: &[std::ffi::CString]) -> Result<()> {
        if !self.opts.delete {
            return Ok(());
        }
        let d = node.dst.as_ref().expect("destination").as_fd();
        delta::prune(d, src_names).map_err(|(n, e)| self.e("remove", &crate::manifest::order::join(&node.rel, n.as_bytes()), e))
    }

    fn entry(&self, item: &Item, pool: &Pool) -> Result<Outcome> {
        let r = if item.meta.kind == Kind::File { self.copy_file(item, pool) } else { self.copy_special(item) };
        match r {
            Err(e) if self.opts.live && e.is_race() => Ok(Outcome { raced: true, ..Outcome::default() }),
            r => r,
        }
    }

    fn late_errors(&self) -> Vec<Error> {
        std::mem::take(&mut self.late.lock().unwrap())
    }
}
