//! What a journaled step is about to change, recorded before it acts, and
//! the undo of each change. Undo looks at the *observed* state (where a
//! rename's object is by its identity, mountinfo, file contents) rather than
//! trusting the step's recorded state, so it is correct whether the process
//! died before, during or after the action (SQLite's rollback journal works
//! the same way), and whatever others did to the names since
//! ([`super::identity`]): it never deletes a tree it cannot identify.

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::error::{PlanError, Result};
use super::identity::{self, FileId};
use crate::docker::api::DockerApi;
use crate::docker::mountinfo;
use crate::util::atomic;

/// One change a step will make; every name it creates or renames is here.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "kebab-case")]
pub enum Intent {
    /// `from` is renamed to `to` (which does not exist when this is
    /// recorded). With `leave_empty`, an empty directory with `from`'s owner
    /// and mode is then made at `from` (bind move: the mount point).
    Rename {
        from: PathBuf,
        to: PathBuf,
        #[serde(default)]
        leave_empty: bool,
        /// What is renamed, taken before the rename (absent in journals of
        /// dockroot before issue 17: undo then goes by the names).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        id: Option<FileId>,
    },
    /// A directory tree (or file) dockroot creates and fills under a new
    /// name (restore's staging tree and its manifest); undo removes it if it
    /// is still the tree dockroot made.
    MakeTree {
        path: PathBuf,
        /// The tree's identity, recorded once the step made it; a directory
        /// with another identity there is moved aside, never deleted.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        id: Option<FileId>,
    },
    /// A btrfs subvolume (backup's read-only snapshot) dockroot creates;
    /// undo deletes it with the subvolume ioctl (`rm -r` cannot).
    Subvolume { path: PathBuf },
    /// `source` is bind-mounted on `target`.
    Mount { source: PathBuf, target: PathBuf },
    /// An empty directory is made at `path` (restore onto a whole
    /// filesystem: where the old entries go); undo removes it once empty.
    MakeDir { path: PathBuf },
    /// The bind mount on `target` is replaced by a bind of `source` (which
    /// then holds the restored tree). The tree it showed before is at `old`
    /// after the swap, or at `source` when that rename never happened or was
    /// undone; undo binds that tree on `target` again.
    Rebind { target: PathBuf, source: PathBuf, old: PathBuf },
    /// `path` is replaced; its previous content is first saved as `backup`
    /// (`None`: the file did not exist, undo removes it).
    EditFile { path: PathBuf, backup: Option<PathBuf> },
    /// Volume `name` is created through the engine at `socket` (`restore
    /// --volume` of a missing one); `dir` (`dev:ino` of its directory,
    /// which the engine's creation time is only the mtime of) is filled in
    /// once it exists. Undo removes it if it is still that volume (any, when
    /// the kill came before it was known) and no container uses it.
    CreateVolume {
        socket: PathBuf,
        name: String,
        #[serde(default)]
        dir: Option<String>,
    },
    /// Entries are made and renamed in directory `path` (a volume's, beside
    /// its `_data`), whose modification time was `sec.nsec`; undo sets it
    /// back, after the steps that follow are undone.
    DirTimes { path: PathBuf, sec: i64, nsec: u32 },
    /// The containers `ids` (using a volume being restored) are stopped
    /// through the engine at `socket`; undo starts those that do not run.
    StopContainers { socket: PathBuf, ids: Vec<String> },
}

impl Intent {
    /// A rename of `from` to `to`, with the identity of what is at `from` now.
    pub(crate) fn rename(from: &Path, to: &Path, leave_empty: bool) -> Intent {
        Intent::Rename { from: from.into(), to: to.into(), leave_empty, id: FileId::of(from) }
    }

    /// A tree dockroot will make at `path` (its identity is filled in once made: [`Intent::identify`]).
    pub(crate) fn make_tree(path: &Path) -> Intent {
        Intent::MakeTree { path: path.into(), id: None }
    }

    /// Records the identity of a tree the step has just made.
    pub(crate) fn identify(&mut self) {
        if let Intent::MakeTree { path, id: id @ None } = self {
            *id = FileId::of(path);
        }
    }
}

fn exists(p: &Path) -> bool {
    p.symlink_metadata().is_ok()
}

fn empty_dir(p: &Path) -> bool {
    std::fs::read_dir(p).map(|mut d| d.next().is_none()).unwrap_or(false)
}

/// The intent of an edit of `path` by operation `id`: the backup name is
/// fixed by the operation, so retries never pile up backups.
pub(crate) fn edit(path: &Path, id: &str) -> Intent {
    let backup = exists(path).then(|| atomic::with_suffix(path, &format!("{}{id}", atomic::BACKUP_INFIX)));
    Intent::EditFile { path: path.into(), backup }
}

/// Carries out an [`Intent::EditFile`]: backup (itself written atomically,
/// so it exists only when complete), then the atomic replacement.
pub(crate) fn apply_edit(step: &'static str, intent: &Intent, contents: &[u8]) -> Result<()> {
    let Intent::EditFile { path, backup } = intent else {
        return Err(PlanError::Refused { msg: format!("step {step}: not a file edit: {intent:?}") });
    };
    let mode = std::fs::metadata(path).map(|m| m.permissions().mode() & 0o7777).unwrap_or(0o644);
    let owner = owner_for(path);
    if let Some(b) = backup {
        let old = std::fs::read(path).map_err(|e| PlanError::io(step, path, e))?;
        atomic::write_atomic_owned(b, &old, mode, owner).map_err(PlanError::docker(step))?;
    }
    atomic::write_atomic_owned(path, contents, mode, owner).map_err(PlanError::docker(step))
}

/// The owner an edited file keeps: its own, or for a new file its
/// directory's (a drop-in in a rootless user's unit directory is the
/// user's; one in /etc is root's).
pub(crate) fn owner_for(path: &Path) -> Option<(u32, u32)> {
    use std::os::unix::fs::MetadataExt;
    let m = std::fs::metadata(path).ok().or_else(|| std::fs::metadata(path.parent()?).ok())?;
    Some((m.uid(), m.gid()))
}

/// Undoes `intent` from whatever state the filesystem and mounts are in.
/// Returns a tree it found where it did not expect one and kept aside.
pub(crate) fn undo(intent: &Intent) -> Result<Option<PathBuf>> {
    match intent {
        Intent::Rename { from, to, leave_empty, id: Some(id) } => undo_rename(from, to, *leave_empty, *id),
        Intent::Rename { from, to, leave_empty, id: None } => undo_rename_by_name(from, to, *leave_empty).map(|()| None),
        Intent::MakeTree { path, id } => remove_made(path, *id),
        _ => undo_in_place(intent).map(|()| None),
    }
}

/// A rename undone by the identity of what it moved: found at `to`, it goes
/// back to `from` (a tree someone made at `from` meanwhile is kept aside);
/// found at `from`, the rename never happened; found at neither, the undo
/// stops, since putting anything else back would be a guess.
fn undo_rename(from: &Path, to: &Path, leave_empty: bool, id: FileId) -> Result<Option<PathBuf>> {
    const STEP: &str = "undo";
    if FileId::of(to) != Some(id) {
        if FileId::of(from) == Some(id) {
            return Ok(None); // Never renamed, or already put back.
        }
        return Err(lost(from, to, id));
    }
    let mut kept = None;
    if exists(from) {
        if leave_empty {
            // dockerd's bind of its root onto itself, if it left one.
            unmount_all(from)?;
        }
        if leave_empty && empty_dir(from) {
            std::fs::remove_dir(from).map_err(|e| PlanError::io(STEP, from, e))?;
        } else {
            kept = Some(set_aside(from)?);
        }
    }
    std::fs::rename(to, from).map_err(|e| PlanError::io(STEP, to, e))?;
    sync_parent(from)?;
    Ok(kept)
}

/// The error of a rename whose object is at neither of its names.
pub(crate) fn lost(from: &Path, to: &Path, id: FileId) -> PlanError {
    PlanError::WorldChanged {
        msg: format!(
            "the tree dockroot moved from {} to {} (identity {id}) is at neither path: it was deleted or moved since. \
             Check whether {} was deleted or renamed, and what {} holds now",
            from.display(),
            to.display(),
            to.display(),
            from.display()
        ),
    }
}

/// Moves the unexpected tree at `path` to a new name next to it and returns that name.
fn set_aside(path: &Path) -> Result<PathBuf> {
    if self_bind(path)? {
        unmount_all(path)?;
    }
    let aside = identity::aside_name(path);
    std::fs::rename(path, &aside).map_err(|e| {
        PlanError::io(
            "undo",
            path,
            std::io::Error::other(format!(
                "{e}; it is not what dockroot left there, so it is kept: move it away by hand and run `dockroot rollback` again"
            )),
        )
    })?;
    sync_parent(path)?;
    Ok(aside)
}

/// Whether `path` is a bind mount of a directory of its own filesystem
/// (dockerd binds its root onto itself).
pub(crate) fn self_bind(path: &Path) -> Result<bool> {
    let mounts = mountinfo::read_self().map_err(PlanError::docker("undo"))?;
    let Some(me) = mounts.iter().rev().find(|m| m.mount_point == path) else {
        return Ok(false);
    };
    let parent = path.parent().and_then(|p| mountinfo::containing(&mounts, p));
    Ok(parent.is_some_and(|p| p.major_minor == me.major_minor))
}

/// Removes the tree dockroot made at `path` when it is that tree (or an
/// empty directory, which holds nothing); another tree is kept aside.
fn remove_made(path: &Path, id: Option<FileId>) -> Result<Option<PathBuf>> {
    const STEP: &str = "undo";
    match path.symlink_metadata() {
        Err(_) => Ok(None),
        Ok(m) if !m.is_dir() => remove_if_exists(path).map(|()| None),
        Ok(_) if empty_dir(path) => std::fs::remove_dir(path).map(|()| None).map_err(|e| PlanError::io(STEP, path, e)),
        // A journal of dockroot before issue 17 records no identity.
        Ok(_) if id.is_none() || FileId::of(path) == id => {
            crate::sys::remove::remove_tree(path).map(|()| None).map_err(|e| PlanError::io(STEP, path, e))
        }
        Ok(_) => set_aside(path).map(Some),
    }
}

/// The undo of a rename recorded without identity (a journal of dockroot
/// before issue 17), by which names exist.
fn undo_rename_by_name(from: &Path, to: &Path, leave_empty: bool) -> Result<()> {
    const STEP: &str = "undo";
    if !exists(to) {
        return Ok(()); // The rename never happened.
    }
    if exists(from) {
        if leave_empty && empty_dir(from) {
            unmount_all(from)?;
            std::fs::remove_dir(from).map_err(|e| PlanError::io(STEP, from, e))?;
        } else if leave_empty {
            return Err(PlanError::io(
                STEP,
                from,
                std::io::Error::other(format!(
                    "it should be the empty directory dockroot made, and the old data is in {}; move its content away and run `dockroot rollback` again",
                    to.display()
                )),
            ));
        } else {
            // `to` did not exist when recorded and `from` is still
            // there: the rename has not happened.
            return Ok(());
        }
    }
    std::fs::rename(to, from).map_err(|e| PlanError::io(STEP, to, e))?;
    sync_parent(from)
}

/// The undo of the intents that act in place (mounts, directories, edits).
fn undo_in_place(intent: &Intent) -> Result<()> {
    const STEP: &str = "undo";
    match intent {
        Intent::Rename { .. } | Intent::MakeTree { .. } => Ok(()),
        Intent::Subvolume { path } => remove_subvolume(path),
        Intent::Mount { target, .. } => unmount_all(target),
        Intent::MakeDir { path } => match std::fs::remove_dir(path) {
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(PlanError::io(
                STEP,
                path,
                std::io::Error::other(format!(
                    "{e}; it should be empty after the undo: move what is in it back and run `dockroot rollback` again"
                )),
            )),
            Ok(()) => Ok(()),
        },
        Intent::Rebind { target, source, old } => {
            let tree = if exists(old) { old } else { source };
            let mounts = mountinfo::read_self().map_err(PlanError::docker(STEP))?;
            if mountinfo::is_mount_point(&mounts, target) && crate::sys::mount::same_dir(target, tree).unwrap_or(false) {
                return Ok(());
            }
            unmount_all(target)?;
            crate::sys::mount::bind(tree, target).map_err(|e| PlanError::io(STEP, target, e))
        }
        Intent::CreateVolume { socket, name, dir } => remove_volume(&DockerApi::new(socket), name, dir.as_deref()),
        Intent::DirTimes { path, sec, nsec } => {
            let t = crate::sys::Timespec { sec: *sec, nsec: *nsec };
            match crate::sys::open_dir_path(path) {
                Ok(fd) => crate::sys::fs::futimens(std::os::fd::AsFd::as_fd(&fd), t, t).map_err(|e| PlanError::io(STEP, path, e)),
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
                Err(e) => Err(PlanError::io(STEP, path, e)),
            }
        }
        Intent::StopContainers { socket, ids } => {
            let api = DockerApi::new(socket);
            for id in ids {
                match api.container_state(id).map_err(PlanError::docker(STEP))? {
                    Some((state, _)) if state != "running" => api.start_container(id).map_err(PlanError::docker(STEP))?,
                    _ => {} // Running, or removed since.
                }
            }
            Ok(())
        }
        Intent::EditFile { path, backup } => {
            remove_if_exists(&atomic::temp_name(path))?;
            match backup {
                Some(b) if exists(b) => {
                    let old = std::fs::read(b).map_err(|e| PlanError::io(STEP, b, e))?;
                    if std::fs::read(path).ok().as_deref() != Some(&old[..]) {
                        let mode = std::fs::metadata(b).map(|m| m.permissions().mode() & 0o7777).unwrap_or(0o644);
                        atomic::write_atomic_owned(path, &old, mode, owner_for(b)).map_err(PlanError::docker(STEP))?;
                    }
                    remove_if_exists(&atomic::temp_name(b))?;
                    remove_if_exists(b)
                }
                // The backup precedes the edit: without it the file is untouched.
                Some(b) => remove_if_exists(&atomic::temp_name(b)),
                None => remove_if_exists(path),
            }
        }
    }
}

/// `dev:ino` of the directory that holds a volume's `_data`.
pub(crate) fn volume_dir_id(mountpoint: &Path) -> Option<String> {
    use std::os::unix::fs::MetadataExt;
    let m = std::fs::symlink_metadata(mountpoint.parent()?).ok()?;
    Some(format!("{}:{}", m.dev(), m.ino()))
}

/// Removes the volume `name` a restore created, identified by its
/// directory; one that a container uses now is refused, named.
fn remove_volume(api: &DockerApi, name: &str, dir: Option<&str>) -> Result<()> {
    let step = "undo create-volume";
    let Some(v) = api.volume(name).map_err(PlanError::docker(step))? else { return Ok(()) };
    if dir.is_some() && volume_dir_id(&v.mountpoint).as_deref() != dir {
        return Ok(()); // Another volume of that name since: not ours.
    }
    let users = api.volume_users(name).map_err(PlanError::docker(step))?;
    if !users.is_empty() {
        let names: Vec<String> = users.into_iter().map(|u| u.name).collect();
        return Err(PlanError::Refused {
            msg: format!(
                "volume `{name}`, created by the restore, is used by the containers {}; remove them (or keep the volume and delete the journal) and run `dockroot rollback` again",
                names.join(", ")
            ),
        });
    }
    api.remove_volume(name).map_err(PlanError::docker(step))
}

/// Deletes the subvolume at `path` if it exists (its creation is atomic:
/// the name exists only as a whole snapshot).
pub(crate) fn remove_subvolume(path: &Path) -> Result<()> {
    if !exists(path) {
        return Ok(());
    }
    let err = |e| PlanError::io("delete the snapshot", path, e);
    let (Some(parent), Some(name)) = (path.parent(), path.file_name()) else {
        return Err(PlanError::Refused { msg: format!("refusing to delete {}", path.display()) });
    };
    let dir = crate::sys::open_dir_path(parent).map_err(err)?;
    let name = crate::sys::path_cstr(Path::new(name)).map_err(err)?;
    crate::sys::btrfs::destroy(std::os::fd::AsFd::as_fd(&dir), &name).map_err(err)
}

fn remove_if_exists(p: &Path) -> Result<()> {
    match std::fs::remove_file(p) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(PlanError::io("undo", p, e)),
        _ => Ok(()),
    }
}

fn sync_parent(p: &Path) -> Result<()> {
    let dir = p.parent().unwrap_or(Path::new("/"));
    std::fs::File::open(dir).and_then(|d| d.sync_all()).map_err(|e| PlanError::io("undo", dir, e))
}

/// Unmounts whatever is mounted on `path` (dockerd with live-restore leaves
/// the data-root bind-mounted on itself after it exits).
pub(crate) fn unmount_all(path: &Path) -> Result<()> {
    for _ in 0..8 {
        let mounts = mountinfo::read_self().map_err(PlanError::docker("unmount"))?;
        if !mountinfo::is_mount_point(&mounts, path) {
            return Ok(());
        }
        crate::sys::mount::unmount(path).map_err(|e| PlanError::io("unmount", path, e))?;
    }
    Ok(())
}

/// Flushes the filesystem holding `path` (syncfs), so a switch never points
/// at data that a power loss could still take back.
pub(crate) fn flush(step: &'static str, path: &Path) -> Result<()> {
    Flusher::open(step, path)?.flush()
}

/// A filesystem to flush, opened before the writes it must answer for:
/// syncfs reports a writeback error only to descriptors opened before it
/// happened, so one opened before an extraction also hears of the pages the
/// kernel wrote back, and failed, while it ran.
pub(crate) struct Flusher {
    step: &'static str,
    path: PathBuf,
    fd: std::fs::File,
}

impl Flusher {
    pub(crate) fn open(step: &'static str, path: &Path) -> Result<Flusher> {
        let fd = std::fs::File::open(path).map_err(|e| PlanError::io(step, path, e))?;
        Ok(Flusher { step, path: path.to_path_buf(), fd })
    }

    pub(crate) fn flush(&self) -> Result<()> {
        nix::unistd::syncfs(&self.fd).map_err(|e| PlanError::io(self.step, &self.path, std::io::Error::from(e)))
    }
}

/// Runs `work` (a verify, which only reads) while another thread flushes
/// `fs`, so the disk writes what was extracted while Docker still runs and
/// the flush after the stop has little left to do. A flush error fails the
/// step as `work`'s would.
pub(crate) fn flushing_while<T>(fs: &[Flusher], work: impl FnOnce() -> Result<T>) -> Result<T> {
    std::thread::scope(|s| {
        let flushed = s.spawn(|| fs.iter().try_for_each(Flusher::flush));
        let out = work();
        let flushed = flushed.join().unwrap_or_else(|panic| std::panic::resume_unwind(panic));
        let out = out?;
        flushed.map(|()| out)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rename_undo_goes_by_identity_keeps_unknown_trees_and_stops_when_the_tree_is_gone() {
        let d = tempfile::tempdir().unwrap();
        let (a, b) = (d.path().join("a"), d.path().join("b"));
        std::fs::create_dir(&a).unwrap();
        std::fs::write(a.join("keep"), "x").unwrap();
        let i = Intent::rename(&a, &b, true);
        assert!(matches!(i, Intent::Rename { id: Some(_), .. }));
        assert_eq!(undo(&i).unwrap(), None); // before
        std::fs::rename(&a, &b).unwrap();
        assert_eq!(undo(&i).unwrap(), None); // between the rename and the mkdir
        assert!(a.join("keep").exists() && !b.exists());
        std::fs::rename(&a, &b).unwrap();
        std::fs::create_dir(&a).unwrap();
        assert_eq!(undo(&i).unwrap(), None); // after: the empty directory goes
        assert!(a.join("keep").exists() && !b.exists());
        // A dockerd started meanwhile filled the empty data-root: kept aside, never deleted.
        std::fs::rename(&a, &b).unwrap();
        std::fs::create_dir(&a).unwrap();
        std::fs::write(a.join("engine-id"), "new").unwrap();
        let kept = undo(&i).unwrap().expect("the unknown tree is kept");
        assert!(a.join("keep").exists() && kept.join("engine-id").exists() && !b.exists());
        // Both names taken by other trees: `b` is not what was renamed, so nothing happened.
        std::fs::create_dir(&b).unwrap();
        assert_eq!(undo(&i).unwrap(), None);
        assert!(a.join("keep").exists() && b.exists());
        // The renamed tree deleted by the user: the undo stops, naming both paths.
        std::fs::rename(&a, d.path().join("elsewhere")).unwrap();
        std::fs::create_dir(&a).unwrap();
        let e = undo(&i).unwrap_err();
        assert!(matches!(e, PlanError::WorldChanged { .. }), "{e}");
        let e = e.to_string();
        assert!(e.contains(&a.display().to_string()) && e.contains(&b.display().to_string()), "{e}");
    }

    #[test]
    fn a_made_tree_is_deleted_only_when_it_is_the_one_dockroot_made() {
        let d = tempfile::tempdir().unwrap();
        let (t, moved) = (d.path().join("staging"), d.path().join("moved"));
        let mut i = Intent::make_tree(&t);
        std::fs::create_dir(&t).unwrap();
        i.identify();
        std::fs::write(t.join("f"), "x").unwrap();
        // Another tree by that name (the identity differs): kept aside.
        std::fs::rename(&t, &moved).unwrap();
        std::fs::create_dir(&t).unwrap();
        std::fs::write(t.join("theirs"), "x").unwrap();
        let kept = undo(&i).unwrap().expect("kept");
        assert!(kept.join("theirs").exists() && !t.exists());
        // An empty directory holds nothing: removed whoever made it.
        std::fs::create_dir(&t).unwrap();
        assert_eq!(undo(&i).unwrap(), None);
        assert!(!t.exists());
        // The tree dockroot made: deleted.
        std::fs::rename(&moved, &t).unwrap();
        assert_eq!(undo(&i).unwrap(), None);
        assert!(!t.exists() && kept.join("theirs").exists());
    }

    #[test]
    fn a_journal_without_identities_is_undone_by_name() {
        let d = tempfile::tempdir().unwrap();
        let (a, b) = (d.path().join("a"), d.path().join("b"));
        let i = Intent::Rename { from: a.clone(), to: b.clone(), leave_empty: true, id: None };
        let old: Intent =
            serde_json::from_str(&format!(r#"{{"kind":"rename","from":"{}","to":"{}","leave_empty":true}}"#, a.display(), b.display()))
                .unwrap();
        assert_eq!(old, i, "a version-2 intent parses without identity");
        std::fs::create_dir(&a).unwrap();
        std::fs::write(a.join("keep"), "x").unwrap();
        undo(&i).unwrap(); // before
        assert!(a.join("keep").exists() && !b.exists());
        std::fs::rename(&a, &b).unwrap();
        undo(&i).unwrap(); // between the rename and the mkdir
        assert!(a.join("keep").exists() && !b.exists());
        std::fs::rename(&a, &b).unwrap();
        std::fs::create_dir(&a).unwrap();
        undo(&i).unwrap(); // after
        assert!(a.join("keep").exists() && !b.exists());
        let plain = Intent::Rename { from: a.clone(), to: b.clone(), leave_empty: false, id: None };
        std::fs::create_dir(&b).unwrap();
        undo(&plain).unwrap(); // both exist: not renamed yet
        assert!(a.join("keep").exists() && b.exists());
    }

    #[test]
    fn edit_undo_restores_bytes_and_removes_its_files() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("fstab");
        std::fs::write(&p, "one\n").unwrap();
        let i = edit(&p, "move-1");
        undo(&i).unwrap(); // before: nothing to do
        assert_eq!(std::fs::read_to_string(&p).unwrap(), "one\n");
        apply_edit("fstab", &i, b"two\n").unwrap();
        assert_eq!(std::fs::read_to_string(&p).unwrap(), "two\n");
        undo(&i).unwrap();
        assert_eq!(std::fs::read_to_string(&p).unwrap(), "one\n");
        assert_eq!(std::fs::read_dir(d.path()).unwrap().count(), 1, "backup and temp files are gone");
        let n = d.path().join("new.json");
        let i = edit(&n, "move-1");
        apply_edit("daemon-json", &i, b"{}").unwrap();
        undo(&i).unwrap();
        assert!(!n.exists());
    }

    #[test]
    fn flushing_while_returns_the_work_and_its_error_first() {
        let d = tempfile::tempdir().unwrap();
        let fs = [Flusher::open("verify", d.path()).unwrap(), Flusher::open("verify", d.path()).unwrap()];
        assert_eq!(flushing_while(&fs, || Ok(7)).unwrap(), 7);
        let e = flushing_while(&fs, || -> Result<()> { Err(PlanError::Interrupted { step: "verify" }) }).unwrap_err();
        assert!(matches!(e, PlanError::Interrupted { step: "verify" }), "{e}");
        let e = Flusher::open("verify", &d.path().join("gone")).err().unwrap();
        assert!(e.to_string().contains("gone"), "{e}");
    }
}
