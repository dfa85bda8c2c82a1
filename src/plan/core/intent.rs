//! What a journaled step is about to change, recorded before it acts, and
//! the undo of each change. Undo looks at the *observed* state (which of a
//! rename's names exist, mountinfo, file contents) rather than trusting the
//! step's recorded state, so it is correct whether the process died before,
//! during or after the action (SQLite's rollback journal works the same way).

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::error::{PlanError, Result};
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
    },
    /// A directory tree (or file) dockroot creates and fills under a new
    /// name (restore's staging tree and its manifest); undo removes it.
    MakeTree { path: PathBuf },
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
    if let Some(b) = backup {
        let old = std::fs::read(path).map_err(|e| PlanError::io(step, path, e))?;
        atomic::write_atomic(b, &old, mode).map_err(PlanError::docker(step))?;
    }
    atomic::write_atomic(path, contents, mode).map_err(PlanError::docker(step))
}

/// Undoes `intent` from whatever state the filesystem and mounts are in.
pub(crate) fn undo(intent: &Intent) -> Result<()> {
    const STEP: &str = "undo";
    match intent {
        Intent::Rename { from, to, leave_empty } => {
            if !exists(to) {
                return Ok(()); // The rename never happened.
            }
            if exists(from) {
                if *leave_empty && empty_dir(from) {
                    unmount_all(from)?;
                    std::fs::remove_dir(from).map_err(|e| PlanError::io(STEP, from, e))?;
                } else if *leave_empty {
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
        Intent::MakeTree { path } => match path.symlink_metadata() {
            Ok(m) if m.is_dir() => std::fs::remove_dir_all(path).map_err(|e| PlanError::io(STEP, path, e)),
            Ok(_) => remove_if_exists(path),
            Err(_) => Ok(()),
        },
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
        Intent::EditFile { path, backup } => {
            remove_if_exists(&atomic::temp_name(path))?;
            match backup {
                Some(b) if exists(b) => {
                    let old = std::fs::read(b).map_err(|e| PlanError::io(STEP, b, e))?;
                    if std::fs::read(path).ok().as_deref() != Some(&old[..]) {
                        let mode = std::fs::metadata(b).map(|m| m.permissions().mode() & 0o7777).unwrap_or(0o644);
                        atomic::write_atomic(path, &old, mode).map_err(PlanError::docker(STEP))?;
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
    let f = std::fs::File::open(path).map_err(|e| PlanError::io(step, path, e))?;
    nix::unistd::syncfs(&f).map_err(|e| PlanError::io(step, path, std::io::Error::from(e)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rename_undo_is_right_before_between_and_after() {
        let d = tempfile::tempdir().unwrap();
        let (a, b) = (d.path().join("a"), d.path().join("b"));
        let i = Intent::Rename { from: a.clone(), to: b.clone(), leave_empty: true };
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
        let plain = Intent::Rename { from: a.clone(), to: b.clone(), leave_empty: false };
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
}
