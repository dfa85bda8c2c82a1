//! The switch: the steps that make Docker use the new location (rename and
//! bind mount, fstab line, systemd drop-in, daemon.json edit), each journaled
//! before and after it runs, and their undo in reverse order. Undo is shared
//! by a failed move and by `dockroot rollback` in a later process.

use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::time::SystemTime;

use nix::mount::{MntFlags, MsFlags};

use super::error::{PlanError, Result};
use super::journal::{Journal, Method, StateDir, StepState};
use super::signal;
use crate::docker::daemon_json::DaemonJson;
use crate::docker::fstab::Fstab;
use crate::docker::{atomic, mountinfo};
use crate::progress::Progress;

/// Infix of the renamed old data-root: `<data-root>.dockroot-old-<UTC time>`.
pub const OLD_INFIX: &str = ".dockroot-old-";

/// Runs journaled steps: `started` is saved before, `done` after.
pub struct Runner<'a> {
    pub state: &'a StateDir,
    pub j: Journal,
    pub progress: &'a dyn Progress,
}

impl Runner<'_> {
    pub fn save(&self) -> Result<()> {
        self.state.save(&self.j)
    }

    /// Runs step `name`, refusing to begin it after a signal.
    pub fn step<T>(&mut self, name: &'static str, f: impl FnOnce(&mut Journal) -> Result<T>) -> Result<T> {
        if signal::caught() {
            return Err(PlanError::Interrupted { step: name });
        }
        self.progress.phase(name, None);
        self.j.set(name, StepState::Started);
        self.save()?;
        super::crash_hook(name);
        let r = f(&mut self.j)?;
        self.j.set(name, StepState::Done);
        self.save()?;
        self.progress.finish();
        Ok(r)
    }
}

/// Unmounts whatever is mounted on `path` (dockerd with live-restore leaves
/// the data-root bind-mounted on itself after it exits).
pub fn unmount_all(path: &Path) -> Result<()> {
    for _ in 0..8 {
        let mounts = mountinfo::read_self().map_err(PlanError::docker("unmount"))?;
        if !mountinfo::is_mount_point(&mounts, path) {
            return Ok(());
        }
        nix::mount::umount2(path, MntFlags::empty()).map_err(|e| PlanError::io("unmount", path, std::io::Error::from(e)))?;
    }
    Ok(())
}

fn self_bind(path: &Path) -> Result<bool> {
    let mounts = mountinfo::read_self().map_err(PlanError::docker("rename"))?;
    let Some(me) = mounts.iter().rev().find(|m| m.mount_point == path) else {
        return Ok(false);
    };
    let parent = path.parent().and_then(|p| mountinfo::containing(&mounts, p));
    Ok(parent.is_some_and(|p| p.major_minor == me.major_minor))
}

/// Applies the switch steps of `j.method`.
pub fn apply(r: &mut Runner, use_dropin: bool) -> Result<()> {
    match r.j.method {
        Method::Bind => {
            r.step("rename", rename_old)?;
            r.step("mount", |j| {
                nix::mount::mount(Some(&j.target), &j.data_root, None::<&str>, MsFlags::MS_BIND, None::<&str>)
                    .map_err(|e| PlanError::io("mount", &j.data_root, std::io::Error::from(e)))
            })?;
            r.step("fstab", |j| {
                if let crate::docker::fstab::Edit::Written { backup } =
                    Fstab::ensure_bind(&j.fstab, &j.target, &j.data_root).map_err(PlanError::docker("fstab"))?
                {
                    j.backups.fstab = backup;
                }
                Ok(())
            })?;
            if use_dropin {
                if let Some(p) = r.j.dropin.clone() {
                    r.j.backups.dropin = backup_if_exists("dropin", &p)?;
                }
                r.step("dropin", install_dropin)?;
            }
        }
        Method::DataRoot if r.j.rewrite_argv => r.step("daemon-json", |_| Ok(()))?,
        Method::DataRoot => {
            // The backup is journaled (with the step's `started`) before the file changes.
            r.j.backups.daemon_json = backup_if_exists("daemon-json", &r.j.daemon_json.clone())?;
            r.step("daemon-json", |j| {
                let mut cfg = DaemonJson::load(&j.daemon_json).map_err(PlanError::docker("daemon-json"))?;
                cfg.set_data_root(&j.target);
                cfg.save().map_err(PlanError::docker("daemon-json"))?;
                Ok(())
            })?
        }
    }
    Ok(())
}

fn rename_old(j: &mut Journal) -> Result<()> {
    let dr = j.data_root.clone();
    if self_bind(&dr)? {
        unmount_all(&dr)?;
    }
    let meta = std::fs::metadata(&dr).map_err(|e| PlanError::io("rename", &dr, e))?;
    let mut old = dr.clone().into_os_string();
    old.push(format!("{OLD_INFIX}{}", atomic::utc_timestamp(SystemTime::now())));
    let old = PathBuf::from(old);
    // Journal the new name before renaming, so a crash in between is undone.
    j.old_tree = Some(old.clone());
    std::fs::rename(&dr, &old).map_err(|e| PlanError::io("rename", &dr, e))?;
    std::fs::create_dir(&dr).map_err(|e| PlanError::io("rename", &dr, e))?;
    std::os::unix::fs::chown(&dr, Some(meta.uid()), Some(meta.gid())).map_err(|e| PlanError::io("rename", &dr, e))?;
    std::fs::set_permissions(&dr, std::fs::Permissions::from_mode(meta.mode() & 0o7777)).map_err(|e| PlanError::io("rename", &dr, e))
}

fn install_dropin(j: &mut Journal) -> Result<()> {
    let path = j.dropin.clone().ok_or_else(|| PlanError::Refused { msg: "no drop-in path recorded".into() })?;
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).map_err(|e| PlanError::io("dropin", dir, e))?;
    }
    let text = super::DROPIN_TEMPLATE.replace("@DATA_ROOT@", &j.data_root.to_string_lossy());
    atomic::replace_with_backup(&path, text.as_bytes()).map_err(PlanError::docker("dropin"))?;
    daemon_reload(&path);
    Ok(())
}

/// A backup copy of `path`, or `None` when it does not exist.
fn backup_if_exists(step: &'static str, path: &Path) -> Result<Option<PathBuf>> {
    if !path.exists() {
        return Ok(None);
    }
    atomic::make_backup(path).map(Some).map_err(PlanError::docker(step))
}

/// Makes systemd read a changed drop-in (only for drop-ins under systemd's
/// own directories on a host that runs systemd).
fn daemon_reload(dropin: &Path) {
    if Path::new("/run/systemd/system").is_dir() && dropin.starts_with("/etc/systemd") {
        let _ = std::process::Command::new("systemctl").arg("daemon-reload").status();
    }
}

/// Puts a configuration file back: the backup's contents, or no file at all
/// when there was none before.
fn restore(step: &'static str, path: &Path, backup: Option<&PathBuf>) -> Result<()> {
    match backup {
        Some(b) => {
            let data = std::fs::read(b).map_err(|e| PlanError::io(step, b, e))?;
            atomic::replace_with_backup(path, &data).map_err(PlanError::docker(step))?;
        }
        None => match std::fs::remove_file(path) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
                return Err(PlanError::io(step, path, e));
            }
            _ => {}
        },
    }
    Ok(())
}

/// Undoes every switch step the journal shows as started or done, in
/// reverse order, saving the journal after each. Docker must be stopped.
pub fn undo(state: &StateDir, j: &mut Journal, progress: &dyn Progress) -> Result<()> {
    let mark = |j: &mut Journal, name: &str| {
        j.set(name, StepState::Undone);
        state.save(j)
    };
    if j.touched("dropin") {
        progress.phase("undo dropin", None);
        if let Some(p) = j.dropin.clone() {
            restore("undo dropin", &p, j.backups.dropin.as_ref())?;
            daemon_reload(&p);
        }
        mark(j, "dropin")?;
    }
    if j.touched("daemon-json") {
        progress.phase("undo daemon-json", None);
        if !j.rewrite_argv {
            restore("undo daemon-json", &j.daemon_json.clone(), j.backups.daemon_json.as_ref())?;
        }
        mark(j, "daemon-json")?;
    }
    if j.touched("fstab") {
        progress.phase("undo fstab", None);
        Fstab::drop_bind(&j.fstab, &j.target, &j.data_root).map_err(PlanError::docker("undo fstab"))?;
        mark(j, "fstab")?;
    }
    if j.touched("mount") {
        progress.phase("undo mount", None);
        unmount_all(&j.data_root)?;
        mark(j, "mount")?;
    }
    if j.touched("rename") {
        progress.phase("undo rename", None);
        undo_rename(j)?;
        mark(j, "rename")?;
    }
    Ok(())
}

fn undo_rename(j: &Journal) -> Result<()> {
    let Some(old) = &j.old_tree else {
        return Ok(());
    };
    if !old.exists() {
        // The rename never happened (crash before it).
        return Ok(());
    }
    let dr = &j.data_root;
    unmount_all(dr)?;
    match std::fs::remove_dir(dr) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
            return Err(PlanError::io(
                "undo rename",
                dr,
                std::io::Error::new(
                    e.kind(),
                    format!("{e}; it should be the empty directory dockroot created, the old data is in {}", old.display()),
                ),
            ));
        }
        _ => {}
    }
    std::fs::rename(old, dr).map_err(|e| PlanError::io("undo rename", old, e))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::progress::Silent;

    #[test]
    fn daemon_json_edit_is_undone_byte_for_byte() {
        let d = tempfile::tempdir().unwrap();
        let state = StateDir::new(d.path().join("state"));
        state.ensure().unwrap();
        let original = "{\n  \"debug\": true,\n  \"data-root\": \"/old\"\n}\n";
        std::fs::write(d.path().join("daemon.json"), original).unwrap();
        let mut r = Runner { state: &state, j: Journal::for_test(d.path(), Method::DataRoot), progress: &Silent };
        apply(&mut r, false).unwrap();
        let cfg = DaemonJson::load(&d.path().join("daemon.json")).unwrap();
        assert_eq!(cfg.data_root().unwrap().0, d.path().join("target"));
        assert_eq!(cfg.map()["debug"], true);
        let mut j = state.load().unwrap().unwrap();
        assert_eq!(j.state("daemon-json"), Some(StepState::Done));
        undo(&state, &mut j, &Silent).unwrap();
        assert_eq!(std::fs::read_to_string(d.path().join("daemon.json")).unwrap(), original);
        assert_eq!(state.load().unwrap().unwrap().state("daemon-json"), Some(StepState::Undone));
    }

    #[test]
    fn created_daemon_json_is_removed_on_undo() {
        let d = tempfile::tempdir().unwrap();
        let state = StateDir::new(d.path().join("state"));
        state.ensure().unwrap();
        let mut r = Runner { state: &state, j: Journal::for_test(d.path(), Method::DataRoot), progress: &Silent };
        apply(&mut r, false).unwrap();
        assert!(d.path().join("daemon.json").exists());
        undo(&state, &mut r.j, &Silent).unwrap();
        assert!(!d.path().join("daemon.json").exists());
    }

    #[test]
    fn dropin_is_installed_from_the_template_and_removed() {
        let d = tempfile::tempdir().unwrap();
        let state = StateDir::new(d.path().join("state"));
        state.ensure().unwrap();
        let mut j = Journal::for_test(d.path(), Method::Bind);
        let p = d.path().join("docker.service.d/dockroot-mount.conf");
        j.dropin = Some(p.clone());
        install_dropin(&mut j).unwrap();
        let text = std::fs::read_to_string(&p).unwrap();
        assert!(text.contains(&format!("[Unit]\nRequiresMountsFor={}\n", j.data_root.display())), "{text}");
        j.set("dropin", StepState::Done);
        undo(&state, &mut j, &Silent).unwrap();
        assert!(!p.exists());
    }

    #[test]
    fn rename_and_fstab_are_undone_after_a_crash() {
        let d = tempfile::tempdir().unwrap();
        let state = StateDir::new(d.path().join("state"));
        state.ensure().unwrap();
        let mut j = Journal::for_test(d.path(), Method::Bind);
        std::fs::create_dir(&j.data_root).unwrap();
        std::fs::write(j.data_root.join("keep"), "data").unwrap();
        rename_old(&mut j).unwrap();
        j.set("rename", StepState::Done);
        let old = j.old_tree.clone().unwrap();
        assert!(old.join("keep").exists() && std::fs::read_dir(&j.data_root).unwrap().count() == 0);
        std::fs::write(&j.fstab, "UUID=1 / ext4 defaults 0 1\n").unwrap();
        Fstab::ensure_bind(&j.fstab, &j.target, &j.data_root).unwrap();
        // Crashed while the fstab step was running.
        j.set("fstab", StepState::Started);
        undo(&state, &mut j, &Silent).unwrap();
        assert_eq!(std::fs::read_to_string(&j.fstab).unwrap(), "UUID=1 / ext4 defaults 0 1\n");
        assert_eq!(std::fs::read_to_string(j.data_root.join("keep")).unwrap(), "data");
        assert!(!old.exists());
    }
}
