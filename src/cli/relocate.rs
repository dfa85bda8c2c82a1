//! Command glue for relocation: `status`, `move`, `rollback`, `finalize`.
//! Builds the plan's [`Env`] from the global options, asks for confirmation,
//! prints the plan and the outcome (human lines or `--json`).

use std::io::{BufRead, IsTerminal, Write};
use std::path::PathBuf;

use anyhow::Result;
use serde_json::json;

use dockroot::docker::api::DockerApi;
use dockroot::plan::{self, Env, Method, MoveRequest, PlanError, StateDir};
use dockroot::progress::Progress;
use dockroot::service::ServiceKind;

use super::exit;
use super::output::{Output, bytes};
use super::{ConfirmArgs, Global, MethodArg, MoveArgs, StatusArgs};

fn env(g: &Global) -> Result<Env> {
    let service = ServiceKind::from(&g.service);
    let api = super::socket::api(g);
    Ok(Env {
        data_root: g.data_root.clone(),
        service,
        state: StateDir::new(&g.state_dir),
        api,
        daemon_json: g.daemon_config.clone(),
        fstab: g.fstab.clone(),
        dropin: plan::DEFAULT_DROPIN.into(),
        threads: g.threads.unwrap_or_else(dockroot::tree::default_threads),
        timing: timing(),
    })
}

/// Service wait timing. `DOCKROOT_STOP_TIMEOUT` (seconds) shortens how long
/// dockroot waits for dockerd to exit/answer; it is meant for tests (a daemon
/// that will not stop) and is not a documented option.
fn timing() -> dockroot::service::wait::Timing {
    let mut t = dockroot::service::wait::Timing::default();
    if let Some(secs) = std::env::var("DOCKROOT_STOP_TIMEOUT").ok().and_then(|v| v.parse::<u64>().ok()) {
        t.timeout = std::time::Duration::from_secs(secs.max(1));
    }
    t
}

/// Reports a plan error; its exit code comes from the plan layer.
fn fail(out: &Output, e: &PlanError) -> i32 {
    out.problem(&e.to_string());
    out.json(&json!({"ok": false, "error": e.to_string()}));
    e.exit_code()
}

/// Asks y/N on a TTY unless --yes; refuses without a TTY.
fn confirm(c: &ConfirmArgs, out: &Output, question: &str) -> Option<i32> {
    if c.yes {
        return None;
    }
    if !std::io::stdin().is_terminal() {
        out.problem(&format!("{question}: not confirmed; stdin is not a terminal, pass --yes to proceed"));
        return Some(exit::REFUSED);
    }
    eprint!("{question} [y/N] ");
    let _ = std::io::stderr().flush();
    let mut line = String::new();
    let _ = std::io::stdin().lock().read_line(&mut line);
    if matches!(line.trim(), "y" | "Y" | "yes") {
        None
    } else {
        out.problem("aborted; nothing was changed");
        Some(exit::REFUSED)
    }
}

pub fn status(a: &StatusArgs, g: &Global, out: &Output) -> Result<i32> {
    let sock = super::socket::discover(g);
    let env = Env { api: DockerApi::new(&sock.path), ..env(g)? };
    let s = match plan::status::status(&env, a.to.as_deref()) {
        Ok(s) => s,
        Err(e) => return Ok(fail(out, &e)),
    };
    let mut v = serde_json::to_value(&s)?;
    if let Some(m) = v.as_object_mut() {
        m.insert("docker_socket".into(), serde_json::to_value(&sock)?);
    }
    out.json(&v);
    out.say(&format!("data-root:        {} (from {})", s.data_root.display(), s.source));
    out.say(&format!("docker socket:    {} (from {})", sock.path.display(), sock.source));
    for c in &s.conflicts {
        out.say(&format!(
            "CONFLICT:         {} set as flag in {} and in {}",
            c.directive,
            c.flag_source.display(),
            c.json_source.display()
        ));
    }
    out.say(&format!("daemon:           {}", if s.daemon_running { "running" } else { "not answering" }));
    if let Some(v) = &s.engine_version {
        out.say(&format!("engine version:   {v}"));
    }
    out.say(&format!("storage driver:   {}", s.storage_driver.as_deref().unwrap_or("unknown")));
    out.say(&format!("live-restore:     {}", s.live_restore.unwrap_or(false)));
    out.say(&format!("service manager:  {}", s.service_manager));
    out.say(&format!("size:             {} in {} entries", bytes(s.size_bytes), s.entries));
    if let Some(n) = s.running_containers {
        out.say(&format!("running:          {n} container(s)"));
    }
    for d in &s.userns_dirs {
        out.say(&format!("userns-remap dir: {}", d.display()));
    }
    let e = &s.engine;
    out.say(&format!("image store:      {} (from {})", e.image_store, e.image_store_source));
    let c = &e.containerd;
    let addr = c.address.as_ref().map(|a| format!(" on {}", a.display())).unwrap_or_default();
    out.say(&format!("containerd:       {}{addr} (from {})", c.serving, c.serving_source));
    out.say(&format!("containerd root:  {} ({}; from {})", c.dirs.root.display(), bytes(c.root_bytes), c.dirs.source));
    out.say(&format!("containerd state: {} ({})", c.dirs.state.display(), bytes(c.state_bytes)));
    out.say(&format!(
        "namespaces:       {} (from {})",
        if c.namespaces.is_empty() { "none".into() } else { c.namespaces.join(", ") },
        c.namespaces_source
    ));
    if let Some(w) = &s.containerd_warning {
        out.say(&format!("WARNING:          {w}"));
    }
    for t in &s.stranded_trees {
        out.say(&format!(
            "WARNING:          the running daemon's data-root is empty, but {} holds Docker's data; whatever starts dockerd at boot may pass an old --data-root",
            t.display()
        ));
    }
    for m in &s.mounts_below {
        out.say(&format!("mount below:      {m}"));
    }
    if let Some(j) = &s.journal {
        out.say(&format!("journal:          {} of {} to {} is {}", j.operation, j.data_root.display(), j.target.display(), j.outcome));
    }
    out.say("disks:            (* holds the data-root)");
    for d in &s.disks {
        out.say(&format!(
            "  {} {} ({}, {} available of {})",
            if d.data_root { '*' } else { ' ' },
            d.mount_point.display(),
            d.fs_type,
            bytes(d.available_bytes),
            bytes(d.total_bytes)
        ));
    }
    if let Some(t) = &s.target {
        out.say(&format!(
            "target:           {} ({}, {} free{})",
            t.path.display(),
            t.fs_type,
            bytes(t.free_bytes),
            if t.enough_space { "" } else { ", NOT ENOUGH" }
        ));
        out.say(&format!("target in fstab:  {}", if t.in_fstab { "yes" } else { "no (mount it at boot before Docker starts)" }));
        out.say(&format!(
            "target probe:     {}",
            if t.probe.ok() { "ok (whiteouts, xattrs, d_type)".to_string() } else { t.probe.problems.join("; ") }
        ));
    }
    Ok(0)
}

pub fn move_(a: &MoveArgs, g: &Global, out: &Output, progress: &dyn Progress) -> Result<i32> {
    let env = env(g)?;
    let mut method = match a.method {
        MethodArg::Bind => Method::Bind,
        MethodArg::DataRoot => Method::DataRoot,
    };
    let mut to = a.to.clone();
    let mut containerd_to = a.containerd_to.clone();
    if a.resume
        && let Some(code) = resume(a, &env, out, progress, (&mut to, &mut method, &mut containerd_to))
    {
        return Ok(code);
    }
    let Some(to) = &to else { return Ok(exit::REFUSED) };
    let req =
        MoveRequest { target: to.clone(), method, precopy: !a.no_precopy, containerd_target: containerd_to, shared_store: a.shared_store };
    if let Err(e) = env.state.refuse_unfinished() {
        return Ok(fail(out, &e));
    }
    let p = match plan::preflight(&env, &req) {
        Ok(p) => p,
        Err(e) => return Ok(fail(out, &e)),
    };
    for w in &p.warnings {
        progress.warn(w);
    }
    say_plan(out, &p);
    if a.dry_run {
        out.json(&json!({"ok": true, "dry_run": true, "plan": p}));
        return Ok(0);
    }
    if let Some(code) = confirm(&a.confirm, out, "Docker will be stopped during the move. Proceed?") {
        return Ok(code);
    }
    match plan::r#move::execute(&env, &p, progress) {
        Ok(r) => {
            out.json(&json!({"ok": true, "plan": p, "result": r}));
            say_moved(out, &p, &r);
            Ok(0)
        }
        Err(e) => Ok(fail(out, &e)),
    }
}

/// `move --resume`: restores the pre-move state from the journal, then lets
/// the move run again from the start (to the recorded target and method
/// unless --to is given). Some(code): stop with that exit code.
fn resume(
    a: &MoveArgs,
    env: &Env,
    out: &Output,
    progress: &dyn Progress,
    (to, method, containerd_to): (&mut Option<PathBuf>, &mut Method, &mut Option<PathBuf>),
) -> Option<i32> {
    let j = match plan::r#move::resume::resumable(env) {
        Ok(j) => j,
        Err(e) => return Some(fail(out, &e)),
    };
    if a.dry_run {
        out.say(&format!(
            "resume: would roll back the interrupted move of {} to {} and run it again",
            j.data_root.display(),
            j.target.display()
        ));
    } else {
        if let Some(code) = confirm(&a.confirm, out, "Undo the interrupted move and run it again (Docker will be stopped)?") {
            return Some(code);
        }
        let same = to.is_none() || to.as_deref() == Some(j.target.as_path());
        if let Err(e) = plan::r#move::resume::undo_for_resume(env, &j, same, progress) {
            return Some(fail(out, &e));
        }
        out.say(&format!("resume: the interrupted move was undone; Docker runs on {} again", j.data_root.display()));
    }
    if to.is_none() {
        *to = Some(j.target.clone());
        *method = j.method;
        *containerd_to = containerd_to.take().or(j.containerd_move.map(|c| c.target));
    }
    None
}

fn say_plan(out: &Output, p: &plan::MovePlan) {
    out.say(&format!(
        "plan: move {} to {} ({}, {} on {}, {} free)",
        p.data_root.display(),
        p.target.display(),
        p.method,
        bytes(p.size_bytes),
        p.fs_type,
        bytes(p.free_bytes)
    ));
    if let Some(c) = &p.containerd {
        out.say(&format!(
            "plan: move containerd's root {} to {} ({}; namespaces: {}), with containerd stopped after Docker",
            c.source.display(),
            c.target.display(),
            bytes(c.size_bytes),
            c.namespaces.join(", ")
        ));
    }
    for (i, s) in p.steps.iter().enumerate() {
        out.say(&format!("  {}. {:<11} {}", i + 1, s.name, s.description));
    }
}

fn say_moved(out: &Output, p: &plan::MovePlan, r: &plan::r#move::MoveReport) {
    out.say(&format!(
        "moved {} to {} ({}); Docker was down {:.1}s",
        r.data_root.display(),
        r.target.display(),
        r.method,
        r.downtime_seconds
    ));
    if let Some(pc) = &r.precopy {
        out.say(&format!(
            "before the stop: {} pass(es) writing {} entries, {:.1} MiB read back from the target and verified; while stopped: {} entries rewritten, {:.1} MiB re-read",
            pc.written.len(),
            pc.written.iter().map(|n| n.to_string()).collect::<Vec<_>>().join(" + "),
            pc.verified_bytes as f64 / 1048576.0,
            r.sync_rewritten,
            r.verified_bytes_stopped as f64 / 1048576.0
        ));
    }
    if let Some(old) = &r.old_tree {
        out.say(&format!("the old data is kept in {}", old.display()));
    }
    if let (Some(t), Some(old)) = (&r.containerd_target, &r.containerd_old_tree) {
        out.say(&format!("containerd's root moved to {}; the old one is kept in {}", t.display(), old.display()));
    }
    if let Some(line) = &p.boot_command {
        out.say(&format!("dockerd now runs as: {line}"));
        out.say("IMPORTANT: whatever starts dockerd at boot must use this command line from now on; with the old --data-root, Docker would start on an empty directory");
    }
    out.say("check your containers, then run `dockroot finalize` to delete the old data, or `dockroot rollback` to go back");
}

pub fn rollback(a: &ConfirmArgs, g: &Global, out: &Output, progress: &dyn Progress) -> Result<i32> {
    let env = env(g)?;
    if let Some(code) = confirm(a, out, "Roll back the last move or interrupted restore (changes made to Docker since then are lost)?") {
        return Ok(code);
    }
    match plan::core::undo::rollback(&env, progress) {
        Ok(r) if r.operation == "move" => {
            out.json(&json!({"ok": true, "result": r}));
            out.say(&format!("rolled back: Docker uses {} again", r.data_root.display()));
            out.say(&format!("the copy in {} was left in place; delete it when you no longer need it", r.target.display()));
            if let Some(c) = &r.containerd_target {
                out.say(&format!("so was the copy of containerd's root in {}", c.display()));
            }
            Ok(0)
        }
        Ok(r) => {
            out.json(&json!({"ok": true, "result": r}));
            let started = if r.docker_restarted { " and Docker was started again" } else { "" };
            out.say(&format!("rolled back the interrupted {}: {} holds its previous data{started}", r.operation, r.data_root.display()));
            Ok(0)
        }
        Err(e) => Ok(fail(out, &e)),
    }
}

pub fn finalize(a: &ConfirmArgs, g: &Global, out: &Output, progress: &dyn Progress) -> Result<i32> {
    let env = env(g)?;
    if let Some(code) = confirm(a, out, "Delete the old data-root permanently?") {
        return Ok(code);
    }
    match plan::r#move::finalize::finalize(&env, progress) {
        Ok(r) => {
            out.json(&json!({"ok": true, "result": r}));
            match &r.removed {
                Some(p) => out.say(&format!("deleted {}; the move is final", p.display())),
                None => out.say("the move is final"),
            }
            if let Some(p) = &r.removed_containerd {
                out.say(&format!("deleted containerd's old root {}", p.display()));
            }
            Ok(0)
        }
        Err(e) => Ok(fail(out, &e)),
    }
}
