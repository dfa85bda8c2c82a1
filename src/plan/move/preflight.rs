//! The move's preflight: checks everything and computes the [`MovePlan`]
//! (printing it is the dry run); changes nothing on the host.

use std::path::{Path, PathBuf};

use serde::Serialize;

use super::{containerd, precopy, probe, switch};
use crate::docker::daemon_json::DaemonJson;
use crate::docker::{facts, fstab::Fstab, mountinfo, unit};
use crate::plan::core::error::{PlanError, Result};
use crate::plan::core::journal::Method;
use crate::plan::env::{Env, absolute, shell_line};
use crate::service::engine::engine_facts;
use crate::service::pidfile::{DaemonCommand, PidfileService};
use crate::service::{ServiceKind, ServiceRecord};

/// Free space required beyond the data-root's size, in percent.
pub(crate) const SPACE_MARGIN_PERCENT: u64 = 10;

/// What the user asked for.
#[derive(Debug, Clone)]
pub struct MoveRequest {
    pub target: PathBuf,
    pub method: Method,
    pub precopy: bool,
    /// Where containerd's root goes (containerd image store); default: beside `target`.
    pub containerd_target: Option<PathBuf>,
    /// Move a containerd store that other namespaces than Docker's use too.
    pub shared_store: bool,
}

/// One step of the plan with what it will do, in words.
#[derive(Debug, Clone, Serialize)]
pub struct PlannedStep {
    pub name: &'static str,
    pub description: String,
}

/// The result of the preflight: everything the move will do.
#[derive(Debug, Clone, Serialize)]
pub struct MovePlan {
    pub data_root: PathBuf,
    pub target: PathBuf,
    pub method: Method,
    pub precopy: bool,
    pub service: ServiceKind,
    /// The running dockerd's command line (pidfile mode), captured now.
    #[serde(skip)]
    pub daemon_command: Option<DaemonCommand>,
    /// Pidfile mode with `--data-root` on dockerd's command line: the
    /// data-root method rewrites that flag instead of editing daemon.json.
    pub rewrite_argv: bool,
    /// With `rewrite_argv`: the command line dockerd is restarted with, which
    /// whatever starts dockerd at boot must use from now on.
    pub boot_command: Option<String>,
    pub size_bytes: u64,
    pub entries: u64,
    pub free_bytes: u64,
    pub fs_type: String,
    pub use_dropin: bool,
    /// containerd's root, moved too with the containerd image store.
    pub containerd: Option<containerd::ContainerdPlan>,
    pub warnings: Vec<String>,
    pub steps: Vec<PlannedStep>,
}

impl MovePlan {
    /// The record that restarts Docker as it runs now.
    pub(crate) fn service_record(&self) -> ServiceRecord {
        ServiceRecord {
            kind: self.service.clone(),
            command: self.daemon_command.clone(),
            containerd: self.containerd.as_ref().map(|c| c.record.clone()),
        }
    }
}

/// Whether a mount below the data-root belongs to a running Docker
/// (container layers, shm, plugins) rather than to the host.
fn docker_own_mount(data_root: &Path, m: &mountinfo::MountEntry) -> bool {
    m.fstype == "overlay"
        || m.mount_point.starts_with(data_root.join("containers"))
        || m.mount_point.starts_with(data_root.join("plugins"))
        || m.mount_point.starts_with(data_root.join("overlay2"))
        || m.mount_point == data_root
}

/// Checks everything and computes the plan; changes nothing on the host.
pub fn preflight(env: &Env, req: &MoveRequest) -> Result<MovePlan> {
    let dr = canonical_data_root(env)?;
    let target = absolute(&req.target);
    let mut warnings = Vec::new();

    check_target(&dr, &target)?;
    let service = movable_service(env)?;
    require_api(env)?;
    let mounts = mountinfo::read_self().map_err(PlanError::docker("preflight"))?;
    check_mounts(&mounts, &dr, req.method)?;
    let (size, pr) = check_space(&dr, &target)?;
    warnings.extend(boot_mount_warning(env, &mounts, &target)?);

    let cfg = DaemonJson::load(&env.daemon_json).map_err(PlanError::docker("preflight"))?;
    // With the containerd image store, containerd's root moves too.
    let info = env.api.ping().then(|| env.api.info().ok()).flatten();
    let engine = engine_facts(&service, &cfg, &dr, info.as_ref(), env.timing);
    let primary = containerd::Primary { data_root: &dr, target: &target, bytes: size.bytes, service: &service, mounts: &mounts };
    let containerd = containerd::preflight(env, req, &engine, &primary)?;
    crate::service::check_live_restore(&cfg, &env.api).map_err(PlanError::service("preflight"))?;

    let daemon_command = daemon_command(env, &service)?;
    let rewrite_argv = req.method == Method::DataRoot
        && daemon_command.as_ref().is_some_and(|c| unit::flag_value(&c.argv, unit::DATA_ROOT_FLAGS).is_some());
    refuse_unit_data_root_flag(req, &service)?;
    let boot_command = rewrite_argv.then_some(daemon_command.as_ref()).flatten().map(|c| boot_command(c, &dr, &target, &mut warnings));
    let use_dropin = req.method == Method::Bind && service == ServiceKind::Systemd;
    let mut plan = MovePlan {
        data_root: dr,
        target,
        method: req.method,
        precopy: req.precopy,
        service,
        daemon_command,
        rewrite_argv,
        boot_command,
        size_bytes: size.bytes,
        entries: size.entries,
        free_bytes: pr.free_bytes,
        fs_type: pr.fs_type,
        use_dropin,
        containerd,
        warnings,
        steps: Vec::new(),
    };
    plan.steps = describe(&plan, env);
    Ok(plan)
}

/// The data-root, which must be a directory, with symlinks resolved.
fn canonical_data_root(env: &Env) -> Result<PathBuf> {
    let dr = env.data_root()?;
    let dr_meta = std::fs::metadata(&dr).map_err(|e| PlanError::preflight(format!("data-root {}: {e}", dr.display())))?;
    if !dr_meta.is_dir() {
        return Err(PlanError::preflight(format!("data-root {} is not a directory", dr.display())));
    }
    std::fs::canonicalize(&dr).map_err(|e| PlanError::io("preflight", &dr, e))
}

/// The service manager, which must be one that can stop and start Docker.
fn movable_service(env: &Env) -> Result<ServiceKind> {
    let service = env.service.clone().resolve();
    if service == ServiceKind::None {
        return Err(PlanError::preflight(
            "--service none cannot stop and start Docker, which a move needs; choose auto, systemd, sysv, openrc or pidfile:PATH",
        ));
    }
    Ok(service)
}

fn require_api(env: &Env) -> Result<()> {
    if !env.api.ping() {
        return Err(PlanError::preflight(format!(
            "Docker does not answer on {}; start it first (the move compares its images, containers and volumes before and after), or pass --docker-socket",
            env.api.socket.display()
        )));
    }
    Ok(())
}

/// Refuses host mounts below the data-root, and (bind) a data-root that is a filesystem of its own.
fn check_mounts(mounts: &[mountinfo::MountEntry], dr: &Path, method: Method) -> Result<()> {
    let foreign: Vec<String> = mountinfo::below(mounts, dr)
        .into_iter()
        .filter(|m| !docker_own_mount(dr, m))
        .map(|m| format!("{} ({})", m.mount_point.display(), m.fstype))
        .collect();
    if !foreign.is_empty() {
        return Err(PlanError::preflight(format!(
            "mounts below {} that are not Docker's own: {}; unmount them or move them out first",
            dr.display(),
            foreign.join(", ")
        )));
    }
    if method == Method::Bind {
        check_not_own_fs(mounts, dr)?;
    }
    Ok(())
}

/// The data-root's size and the target's probe; refuses a target that fails
/// the probe or lacks the space (with [`SPACE_MARGIN_PERCENT`]).
fn check_space(dr: &Path, target: &Path) -> Result<(facts::TreeSize, probe::ProbeResult)> {
    let size = facts::tree_size(dr).map_err(PlanError::docker("preflight"))?;
    let pr = probe::probe(target);
    if !pr.ok() {
        return Err(PlanError::preflight(format!("target {} ({}): {}", target.display(), pr.fs_type, pr.problems.join("; "))));
    }
    let need = size.bytes + size.bytes * SPACE_MARGIN_PERCENT / 100;
    if pr.free_bytes < need {
        return Err(PlanError::preflight(format!(
            "target {} has {} bytes free, but {} holds {} bytes (+{SPACE_MARGIN_PERCENT}% margin = {need}); choose a larger disk or free space",
            target.display(),
            pr.free_bytes,
            dr.display(),
            size.bytes
        )));
    }
    Ok((size, pr))
}

/// A warning when the target's filesystem is not in fstab (not mounted at boot).
fn boot_mount_warning(env: &Env, mounts: &[mountinfo::MountEntry], target: &Path) -> Result<Option<String>> {
    let fst = Fstab::load(&env.fstab).map_err(PlanError::docker("preflight"))?;
    let target_mount = mountinfo::containing(mounts, target).map(|m| m.mount_point.clone());
    Ok(target_mount.filter(|mp| !fst.entries().iter().any(|e| &e.file == mp)).map(|mp| {
        format!(
            "{} is on {}, which {} does not list; make sure it is mounted at boot before Docker starts",
            target.display(),
            mp.display(),
            env.fstab.display()
        )
    }))
}

/// The pidfile daemon's command line with `--data-root` rewritten to the
/// target, and the warning that goes with it: dockroot restarts the pidfile
/// daemon with the new flag, but cannot edit what starts it at boot; that
/// starter would bring Docker up on an empty old path, and after `finalize`
/// the data would be gone (issue 8).
fn boot_command(c: &DaemonCommand, dr: &Path, target: &Path, warnings: &mut Vec<String>) -> String {
    let line = shell_line(&super::rewrite_data_root(c, target).argv);
    warnings.push(format!(
        "dockerd was started with --data-root {} by something dockroot cannot edit; dockroot restarts it as `{line}`. \
         Change whatever starts dockerd at boot (script, WSL boot command, entrypoint) to that command line, or the \
         next boot starts Docker on an empty {}",
        dr.display(),
        dr.display()
    ));
    line
}

/// The running pidfile daemon's command line (dockroot restarts it with it).
fn daemon_command(env: &Env, service: &ServiceKind) -> Result<Option<DaemonCommand>> {
    Ok(match service {
        ServiceKind::Pidfile(p) => {
            let svc = PidfileService::new(p, env.timing);
            match svc.live_pid().map_err(PlanError::service("preflight"))? {
                Some(pid) => {
                    Some(DaemonCommand::capture(Path::new("/proc"), pid, svc.log_path()).map_err(PlanError::service("preflight"))?)
                }
                None => {
                    return Err(PlanError::preflight(format!(
                        "no dockerd runs with pidfile {}; dockroot restarts a pidfile daemon with the command line it had, so start Docker first",
                        p.display()
                    )));
                }
            }
        }
        _ => None,
    })
}

/// dockerd refuses `data-root` in daemon.json when docker.service passes the flag too.
fn refuse_unit_data_root_flag(req: &MoveRequest, service: &ServiceKind) -> Result<()> {
    if req.method == Method::DataRoot && *service == ServiceKind::Systemd {
        let files = unit::load_unit(&unit::UNIT_DIRS.iter().map(PathBuf::from).collect::<Vec<_>>(), "docker.service");
        let flag = unit::exec_start(&files).and_then(|(argv, path)| unit::find_flag(&argv, unit::DATA_ROOT_FLAGS).map(|(f, _)| (f, path)));
        if let Some((flag, path)) = flag {
            return Err(PlanError::preflight(format!(
                "{} passes {flag} to dockerd; dockerd refuses data-root in daemon.json as well. Use --method bind, or remove the flag",
                path.display()
            )));
        }
    }
    Ok(())
}

pub(super) fn check_target(dr: &Path, target: &Path) -> Result<()> {
    if target.starts_with(dr) || dr.starts_with(target) {
        return Err(PlanError::preflight(format!(
            "target {} and data-root {} contain one another; choose a directory outside the data-root",
            target.display(),
            dr.display()
        )));
    }
    match std::fs::symlink_metadata(target) {
        Err(e) if e.kind() == std::io::ErrorKind::NotFound && target.parent().is_some_and(|p| !p.is_dir()) => {
            Err(PlanError::preflight(format!(
                "the directory {} that would hold target {} does not exist; create it (or mount its disk) first",
                target.parent().unwrap_or(target).display(),
                target.display()
            )))
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(PlanError::preflight(format!("target {}: {e}", target.display()))),
        Ok(m) if !m.is_dir() => Err(PlanError::preflight(format!("target {} exists and is not a directory", target.display()))),
        Ok(_) => {
            let mut rd = std::fs::read_dir(target).map_err(|e| PlanError::preflight(format!("target {}: {e}", target.display())))?;
            match rd.next() {
                None => Ok(()),
                Some(Ok(e)) if e.file_name() == "lost+found" => Err(PlanError::preflight(format!(
                    "target {} is the root of a filesystem (it holds lost+found); use a directory inside it, e.g. {}",
                    target.display(),
                    target.join("docker").display()
                ))),
                Some(_) => {
                    Err(PlanError::preflight(format!("target {} is not empty; choose an empty or absent directory", target.display())))
                }
            }
        }
    }
}

/// The bind method renames the data-root; that fails when it is a
/// filesystem of its own (another device than its parent).
pub(super) fn check_not_own_fs(mounts: &[mountinfo::MountEntry], dr: &Path) -> Result<()> {
    let Some(me) = mounts.iter().rev().find(|m| m.mount_point == dr) else {
        return Ok(());
    };
    let parent = dr.parent().and_then(|p| mountinfo::containing(mounts, p));
    if parent.is_some_and(|p| p.major_minor != me.major_minor) {
        return Err(PlanError::preflight(format!(
            "{} is a filesystem of its own ({} on {}); the bind method cannot rename it: use --method data-root",
            dr.display(),
            me.fstype,
            me.source
        )));
    }
    Ok(())
}

fn describe(p: &MovePlan, env: &Env) -> Vec<PlannedStep> {
    let (dr, t) = (p.data_root.display(), p.target.display());
    let mut s = Vec::new();
    let mut add = |name, description: String| s.push(PlannedStep { name, description });
    let c = p.containerd.as_ref();
    let both = |what: &str| match c {
        Some(c) => format!("{what}; the same for containerd's root {} into {}", c.source.display(), c.target.display()),
        None => what.to_string(),
    };
    if p.precopy {
        add(
            "precopy",
            format!(
                "copy {dr} to {t} while Docker runs ({} bytes, {} entries), read the copy back and verify it, then repeat delta passes while they shrink (at most {})",
                p.size_bytes,
                p.entries,
                precopy::MAX_DELTA_PASSES
            ),
        );
    }
    if let Some(c) = c.filter(|_| p.precopy) {
        add(
            "precopy-containerd",
            format!(
                "the same for containerd's root {} into {} ({} bytes, {} entries)",
                c.source.display(),
                c.target.display(),
                c.size_bytes,
                c.entries
            ),
        );
    }
    if let Some(c) = c {
        add(
            "stop",
            format!(
                "stop Docker ({}), then containerd, wait for Docker's shims to exit, and check nothing uses {dr} or {}",
                p.service,
                c.source.display()
            ),
        );
    } else {
        add("stop", format!("stop Docker ({}) and check nothing uses {dr}", p.service));
    }
    add("sync", both(&format!("copy what changed since the pre-copy into {t}, deleting what is gone")));
    let verify = if p.precopy {
        format!("compare the metadata of every entry of {t} with the manifest of {dr}, re-reading only the content the sync wrote")
    } else {
        format!("re-read {t} and compare it with the manifest of {dr}")
    };
    add("verify", both(&verify));
    add("flush", both(&format!("syncfs the filesystem of {t}, so the copy is on disk before Docker is pointed at it")));
    match p.method {
        Method::Bind => {
            add("rename", both(&format!("rename {dr} to {dr}{}<UTC time> and create an empty {dr}", switch::OLD_INFIX)));
            add("mount", both(&format!("mount --bind {t} {dr}")));
            let mut lines = format!("`{}`", Fstab::bind_line(&p.target, &p.data_root));
            if let Some(c) = c {
                lines.push_str(&format!(" and `{}`", Fstab::bind_line(&c.target, &c.source)));
            }
            add("fstab", format!("add {lines} to {}", env.fstab.display()));
            if p.use_dropin {
                add("dropin", format!("install {} (RequiresMountsFor={dr})", env.dropin.display()));
            }
            if let Some((c, d)) = c.and_then(|c| c.dropin.as_ref().map(|d| (c, d))) {
                add("dropin-containerd", format!("install {} (RequiresMountsFor={})", d.display(), c.source.display()));
            }
        }
        Method::DataRoot if p.rewrite_argv => {
            add("daemon-json", format!("restart dockerd with --data-root {t} (its recorded command line)"));
        }
        Method::DataRoot => {
            add("daemon-json", format!("set \"data-root\": \"{t}\" in {} (backup kept)", env.daemon_json.display()));
            if let Some(c) = c {
                add(
                    "containerd-config",
                    format!("set root = '{}' in {} (backup kept; created if missing)", c.target.display(), c.config.display()),
                );
            }
        }
        Method::Swap | Method::None => {}
    }
    add("start", "start Docker".into());
    add("health", "check the API, DockerRootDir, images, containers, volumes and that running containers run again".into());
    s
}
