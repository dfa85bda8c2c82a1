//! The switch: the steps that make Docker use the new location (rename and
//! bind mount, fstab line, systemd drop-in, daemon.json edit). Each records
//! every name it creates, renames or edits before it acts, so the shared
//! undo ([`super::runner::undo_steps`]) is right from any crash point.

use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::time::SystemTime;

use nix::mount::MsFlags;

use crate::docker::daemon_json::DaemonJson;
use crate::docker::fstab::Fstab;
use crate::docker::mountinfo;
use crate::plan::core::error::{PlanError, Result};
use crate::plan::core::intent::{self, Intent};
use crate::plan::core::journal::Method;
pub use crate::plan::core::runner::Runner;
use crate::util::atomic;

/// The drop-in template shipped in `systemd/`.
pub(crate) const DROPIN_TEMPLATE: &str = include_str!("../../../systemd/docker.service.d/dockroot-mount.conf");

/// Infix of the renamed old data-root: `<data-root>.dockroot-old-<UTC time>`.
pub(crate) const OLD_INFIX: &str = ".dockroot-old-";

fn self_bind(path: &Path) -> Result<bool> {
    let mounts = mountinfo::read_self().map_err(PlanError::docker("rename"))?;
    let Some(me) = mounts.iter().rev().find(|m| m.mount_point == path) else {
        return Ok(false);
    };
    let parent = path.parent().and_then(|p| mountinfo::containing(&mounts, p));
    Ok(parent.is_some_and(|p| p.major_minor == me.major_minor))
}

/// `<data-root>.dockroot-old-<UTC time>`, a name that does not exist yet.
pub(crate) fn old_name(dr: &Path) -> PathBuf {
    let stamp = atomic::utc_timestamp(SystemTime::now());
    let mut old = atomic::with_suffix(dr, &format!("{OLD_INFIX}{stamp}"));
    let mut n = 1;
    while old.symlink_metadata().is_ok() {
        old = atomic::with_suffix(dr, &format!("{OLD_INFIX}{stamp}.{n}"));
        n += 1;
    }
    old
}

/// Applies the switch steps of `j.method`, for the data-root and, when the
/// journal records one, containerd's root.
pub(crate) fn apply(r: &mut Runner, use_dropin: bool) -> Result<()> {
    let (dr, target, id) = (r.j.data_root.clone(), r.j.target.clone(), r.j.id.clone());
    let ctd = r.j.containerd_move.clone();
    match r.j.method {
        Method::Bind => {
            let old = old_name(&dr);
            r.j.old_tree = Some(old.clone());
            bind_over(r, ["rename", "mount"], &dr, &old, &target)?;
            if let Some(c) = &ctd {
                let old = old_name(&c.source);
                if let Some(m) = r.j.containerd_move.as_mut() {
                    m.old_tree = Some(old.clone());
                }
                bind_over(r, ["rename-containerd", "mount-containerd"], &c.source, &old, &c.target)?;
            }
            // One edit for both lines: a second edit of the same file in one
            // operation would overwrite the first one's backup.
            let fstab = r.j.fstab.clone();
            let mut table = Fstab::load(&fstab).map_err(PlanError::docker("fstab"))?;
            let mut changed = table.add_bind(&target, &dr).map_err(PlanError::docker("fstab"))?;
            if let Some(c) = &ctd {
                changed |= table.add_bind(&c.target, &c.source).map_err(PlanError::docker("fstab"))?;
            }
            if changed {
                let edit = intent::edit(&fstab, &id);
                r.j.backups.fstab = backup_of(&edit);
                r.step_with("fstab", vec![edit.clone()], |_| intent::apply_edit("fstab", &edit, table.to_text().as_bytes()))?;
            }
            if use_dropin && let Some(p) = r.j.dropin.clone() {
                let edit = intent::edit(&p, &id);
                r.j.backups.dropin = backup_of(&edit);
                r.step_with("dropin", vec![edit.clone()], |_| install_dropin(&p, &dr, &edit))?;
            }
            if let Some((c, p)) = ctd.as_ref().and_then(|c| c.dropin.clone().map(|p| (c, p))) {
                let edit = intent::edit(&p, &id);
                r.step_with("dropin-containerd", vec![edit.clone()], |_| install_dropin(&p, &c.source, &edit))?;
            }
        }
        Method::DataRoot if r.j.rewrite_argv => r.step("daemon-json", |_| Ok::<_, PlanError>(()))?,
        Method::DataRoot => {
            let path = r.j.daemon_json.clone();
            let mut cfg = DaemonJson::load(&path).map_err(PlanError::docker("daemon-json"))?;
            cfg.set_data_root(&target);
            let edit = intent::edit(&path, &id);
            r.j.backups.daemon_json = backup_of(&edit);
            r.step_with("daemon-json", vec![edit.clone()], |_| intent::apply_edit("daemon-json", &edit, cfg.to_text().as_bytes()))?;
            if let Some(c) = &ctd {
                set_containerd_root(r, &c.config, &c.target)?;
            }
        }
        Method::Swap | Method::None => return Err(PlanError::Refused { msg: format!("{} is not a move's switch", r.j.method) }),
    }
    Ok(())
}

/// Renames `path` to `old`, leaving an empty directory, and bind-mounts
/// `target` on it, as two journaled steps named `names`.
fn bind_over(r: &mut Runner, names: [&'static str; 2], path: &Path, old: &Path, target: &Path) -> Result<()> {
    let rename = Intent::Rename { from: path.into(), to: old.into(), leave_empty: true };
    r.step_with(names[0], vec![rename], |_| rename_aside(path, old))?;
    r.step_with(names[1], vec![Intent::Mount { source: target.into(), target: path.into() }], |_| {
        nix::mount::mount(Some(target), path, None::<&str>, MsFlags::MS_BIND, None::<&str>)
            .map_err(|e| PlanError::io(names[1], path, std::io::Error::from(e)))
    })
}

/// Sets containerd's `root` in `config` to `root` (the file is created,
/// minimal, when missing; undo then removes it), one journaled step.
fn set_containerd_root(r: &mut Runner, config: &Path, root: &Path) -> Result<()> {
    use crate::docker::containerd_config;
    const STEP: &str = "containerd-config";
    let text = match std::fs::read_to_string(config) {
        Ok(t) => containerd_config::set_root(&t, root),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => containerd_config::minimal(root),
        Err(e) => return Err(PlanError::io(STEP, config, e)),
    };
    let edit = intent::edit(config, &r.j.id);
    r.step_with(STEP, vec![edit.clone()], |_| {
        if let Some(dir) = config.parent() {
            std::fs::create_dir_all(dir).map_err(|e| PlanError::io(STEP, dir, e))?;
        }
        intent::apply_edit(STEP, &edit, text.as_bytes())
    })
}

fn backup_of(edit: &Intent) -> Option<PathBuf> {
    match edit {
        Intent::EditFile { backup, .. } => backup.clone(),
        _ => None,
    }
}

/// Renames `dr` to `old` and makes an empty `dr` with its owner and mode.
fn rename_aside(dr: &Path, old: &Path) -> Result<()> {
    if self_bind(dr)? {
        intent::unmount_all(dr)?;
    }
    let meta = std::fs::metadata(dr).map_err(|e| PlanError::io("rename", dr, e))?;
    std::fs::rename(dr, old).map_err(|e| PlanError::io("rename", dr, e))?;
    std::fs::create_dir(dr).map_err(|e| PlanError::io("rename", dr, e))?;
    std::os::unix::fs::chown(dr, Some(meta.uid()), Some(meta.gid())).map_err(|e| PlanError::io("rename", dr, e))?;
    std::fs::set_permissions(dr, std::fs::Permissions::from_mode(meta.mode() & 0o7777)).map_err(|e| PlanError::io("rename", dr, e))
}

/// Writes the drop-in `path` that makes its unit wait for `mount_path`.
fn install_dropin(path: &Path, mount_path: &Path, edit: &Intent) -> Result<()> {
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).map_err(|e| PlanError::io("dropin", dir, e))?;
    }
    let text = DROPIN_TEMPLATE.replace("@DATA_ROOT@", &mount_path.to_string_lossy());
    intent::apply_edit("dropin", edit, text.as_bytes())?;
    daemon_reload(path);
    Ok(())
}

/// Makes systemd read a changed drop-in (only for drop-ins under systemd's
/// own directories on a host that runs systemd).
pub(crate) fn daemon_reload(dropin: &Path) {
    if Path::new("/run/systemd/system").is_dir() && dropin.starts_with("/etc/systemd") {
        let _ = std::process::Command::new("systemctl").arg("daemon-reload").status();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::plan::core::journal::{Journal, StateDir, StepState};
    use crate::plan::core::runner::undo_steps;
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
        undo_steps(&state, &mut j, &Silent).unwrap();
        assert_eq!(std::fs::read_to_string(d.path().join("daemon.json")).unwrap(), original);
        assert_eq!(state.load().unwrap().unwrap().state("daemon-json"), Some(StepState::Undone));
    }

    #[test]
    fn containerd_root_edit_is_undone_and_a_created_config_removed() {
        use crate::plan::core::journal::TreeMove;
        let d = tempfile::tempdir().unwrap();
        let state = StateDir::new(d.path().join("state"));
        state.ensure().unwrap();
        let config = d.path().join("containerd/config.toml");
        let tree =
            TreeMove { source: d.path().join("c"), target: d.path().join("ct"), old_tree: None, config: config.clone(), dropin: None };
        let mut j = Journal::for_test(d.path(), Method::DataRoot);
        j.containerd_move = Some(tree);
        let mut r = Runner { state: &state, j: j.clone(), progress: &Silent };
        apply(&mut r, false).unwrap();
        let text = std::fs::read_to_string(&config).unwrap();
        assert_eq!(crate::docker::containerd::parse_config(&text).0, Some(d.path().join("ct")), "{text}");
        undo_steps(&state, &mut r.j, &Silent).unwrap();
        assert!(!config.exists(), "the config dockroot created is removed");
        let original = "version = 3\nroot = '/var/lib/containerd'\n\n[grpc]\n  address = '/run/containerd/containerd.sock'\n";
        std::fs::write(&config, original).unwrap();
        let _ = std::fs::remove_file(d.path().join("daemon.json"));
        let mut r = Runner { state: &state, j, progress: &Silent };
        apply(&mut r, false).unwrap();
        assert!(std::fs::read_to_string(&config).unwrap().contains(&format!("root = '{}'", d.path().join("ct").display())));
        undo_steps(&state, &mut r.j, &Silent).unwrap();
        assert_eq!(std::fs::read_to_string(&config).unwrap(), original);
    }

    #[test]
    fn created_daemon_json_is_removed_on_undo() {
        let d = tempfile::tempdir().unwrap();
        let state = StateDir::new(d.path().join("state"));
        state.ensure().unwrap();
        let mut r = Runner { state: &state, j: Journal::for_test(d.path(), Method::DataRoot), progress: &Silent };
        apply(&mut r, false).unwrap();
        assert!(d.path().join("daemon.json").exists());
        undo_steps(&state, &mut r.j, &Silent).unwrap();
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
        let edit = intent::edit(&p, &j.id);
        j.begin("dropin", vec![edit.clone()]);
        install_dropin(&p, &j.data_root, &edit).unwrap();
        let text = std::fs::read_to_string(&p).unwrap();
        assert!(text.contains(&format!("[Unit]\nRequiresMountsFor={}\n", j.data_root.display())), "{text}");
        j.set("dropin", StepState::Done);
        undo_steps(&state, &mut j, &Silent).unwrap();
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
        let old = old_name(&j.data_root);
        j.old_tree = Some(old.clone());
        j.begin("rename", vec![Intent::Rename { from: j.data_root.clone(), to: old.clone(), leave_empty: true }]);
        rename_aside(&j.data_root, &old).unwrap();
        j.set("rename", StepState::Done);
        assert!(old.join("keep").exists() && std::fs::read_dir(&j.data_root).unwrap().count() == 0);
        std::fs::write(&j.fstab, "UUID=1 / ext4 defaults 0 1\n").unwrap();
        let edit = intent::edit(&j.fstab, &j.id);
        j.begin("fstab", vec![edit.clone()]);
        let mut t = Fstab::load(&j.fstab).unwrap();
        assert!(t.add_bind(&j.target, &j.data_root).unwrap());
        intent::apply_edit("fstab", &edit, t.to_text().as_bytes()).unwrap();
        // Crashed while the fstab step was running.
        undo_steps(&state, &mut j, &Silent).unwrap();
        assert_eq!(std::fs::read_to_string(&j.fstab).unwrap(), "UUID=1 / ext4 defaults 0 1\n");
        assert_eq!(std::fs::read_to_string(j.data_root.join("keep")).unwrap(), "data");
        assert!(!old.exists());
    }
}
