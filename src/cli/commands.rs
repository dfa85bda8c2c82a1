//! One function per command: turn CLI arguments into engine calls, render the
//! result, and return the exit code (0 success, 1 differences or per-entry
//! errors; fatal errors propagate as `Err` and exit 2).

use anyhow::{Context, Result};
use serde_json::json;

use super::exit;
use super::output::{Output, bytes};
use super::{CopyArgs, Global, ManifestArgs, VerifyArgs};
use dockroot::audit::{verify_tree, write_manifest};
use dockroot::copy::{CopyOptions, copy_tree};
use dockroot::manifest::compare::Report;
use dockroot::progress::Progress;
use dockroot::tree::default_threads;

fn threads(g: &Global) -> usize {
    g.threads.unwrap_or_else(default_threads)
}

fn copy_options(a: &CopyArgs, g: &Global) -> CopyOptions {
    CopyOptions {
        delete: a.delete,
        checksum: a.checksum,
        live: a.live,
        sparsify: a.sparsify,
        clone: false,
        baseline: a.baseline.clone(),
        manifest: a.manifest.clone(),
        threads: threads(g),
    }
}

/// Prints every difference as `differs: PATH: FIELD: detail`, then the errors.
pub fn print_report(out: &Output, r: &Report) {
    for d in &r.differences {
        out.problem(&format!("differs: {d}"));
    }
    if r.more > 0 {
        out.problem(&format!("… and {} more differences", r.more));
    }
    for e in &r.errors {
        out.problem(e);
    }
}

pub fn copy(a: &CopyArgs, g: &Global, out: &Output, progress: &dyn Progress) -> Result<i32> {
    let mut opts = copy_options(a, g);
    // --verify needs a manifest even when the user did not ask for one.
    let tmp = tempfile_in_dst_parent(a)?;
    if a.verify && opts.manifest.is_none() {
        opts.manifest = Some(tmp.clone());
    }
    let start = std::time::Instant::now();
    let s = copy_tree(&a.src, &a.dst, &opts, progress)?;
    let secs = start.elapsed().as_secs_f64();
    for e in &s.errors {
        out.problem(e);
    }
    let mut report = None;
    if a.verify && s.ok() {
        let m = opts.manifest.as_ref().expect("set above");
        report = Some(verify_tree(&a.dst, m, threads(g), progress)?);
    }
    let _ = std::fs::remove_file(&tmp);
    let st = &s.stats;
    out.say(&format!(
        "copied {} entries, {} in {secs:.2}s ({}/s){}{}{}",
        st.entries,
        bytes(st.bytes),
        bytes((st.bytes as f64 / secs.max(0.001)) as u64),
        if a.delete { format!(", {} rewritten", st.rewritten) } else { String::new() },
        if a.sparsify { format!(", {} turned into holes", bytes(st.sparsified)) } else { String::new() },
        if st.raced > 0 { format!(", {} changed or vanished during the copy (run again with --delete)", st.raced) } else { String::new() },
    ));
    let verified = report.as_ref().map(|r| r.ok());
    if let Some(r) = &report {
        print_report(out, r);
        if r.ok() {
            out.say(&format!("verified {} entries against the manifest", r.entries));
        }
    }
    out.json(&json!({"command": "copy", "ok": s.ok() && verified != Some(false), "seconds": secs, "summary": s, "verify": report}));
    Ok(if s.ok() && verified != Some(false) { exit::OK } else { exit::DIFFERENCES })
}

/// A scratch manifest path next to the destination (not inside it).
fn tempfile_in_dst_parent(a: &CopyArgs) -> Result<std::path::PathBuf> {
    let parent = a.dst.parent().filter(|p| !p.as_os_str().is_empty()).unwrap_or(std::path::Path::new("."));
    let name = format!(".dockroot-verify-{}.manifest", std::process::id());
    let p = parent.join(name);
    std::fs::metadata(parent).with_context(|| format!("destination parent {} is not accessible", parent.display()))?;
    Ok(p)
}

pub fn manifest(a: &ManifestArgs, g: &Global, out: &Output, progress: &dyn Progress) -> Result<i32> {
    let s = write_manifest(&a.path, &a.output, threads(g), progress)?;
    for e in &s.errors {
        out.problem(e);
    }
    for m in &s.mount_points {
        out.problem(&format!("warning: {m}: a mount point; its contents were not included"));
    }
    if a.output.as_os_str() != "-" {
        out.say(&format!("wrote the manifest of {} entries, {} to {}", s.entries, bytes(s.bytes), a.output.display()));
        out.json(&json!({"command": "manifest", "ok": s.errors.is_empty(), "summary": s}));
    }
    Ok(if s.errors.is_empty() { exit::OK } else { exit::DIFFERENCES })
}

pub fn verify(a: &VerifyArgs, g: &Global, out: &Output, progress: &dyn Progress) -> Result<i32> {
    let m = a.manifest.as_ref().context("--manifest is required to verify a tree")?;
    let r = verify_tree(&a.path, m, threads(g), progress)?;
    print_report(out, &r);
    if r.ok() {
        out.say(&format!("OK: {} entries, {} match the manifest", r.entries, bytes(r.bytes)));
    } else {
        out.say(&format!("FAILED: {} differences, {} errors", r.differences.len() as u64 + r.more, r.errors.len()));
    }
    out.json(&json!({"command": "verify", "ok": r.ok(), "report": r}));
    Ok(if r.ok() { exit::OK } else { exit::DIFFERENCES })
}
