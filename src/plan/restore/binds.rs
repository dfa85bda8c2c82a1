//! Bind sources back at their paths (issue 18 item 3). Each bind tree of
//! the archive (`binds/<n>/`, docs/archive-format.md) is extracted into
//! `<path>.dockroot-staging-<ts>` next to its path (same filesystem), and
//! verified against its manifest with the data-root, while Docker runs.
//! With Docker stopped, in one journaled step, each goes in by renames:
//! the current path (when there is one) to `<path>.dockroot-old-<ts>`,
//! then the staged tree (a file: the staged file) to the path, every
//! rename recorded before the first acts, so `rollback` puts the old ones
//! back. A path that is absent or empty is filled; a non-empty one is
//! replaced only with `--force`.
//!
//! The paths come from the archive's meta.json, which is untrusted: each is
//! checked against the same classification the backup uses
//! ([`crate::docker::mounts::plumbing`]): host plumbing, relative paths,
//! `..`, and paths inside the data-root or containerd's root, or inside
//! another bind tree, are refused before anything changes.

use std::path::{Path, PathBuf};

use crate::docker::mounts;
use crate::plan::backup::meta::{BackupMeta, BindKind, BindTree};
use crate::plan::core::intent::Intent;
use crate::plan::core::runner::Runner;
use crate::plan::{PlanError, Result};
use crate::util::atomic;

/// What is at a bind source's path before the restore.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Existing {
    Absent,
    /// An empty directory (dockerd makes one for a missing source) or an empty file.
    Empty,
    NonEmpty,
}

/// One bind tree to restore and the names around it.
#[derive(Debug, Clone, serde::Serialize)]
pub struct BindPlace {
    pub bind: BindTree,
    pub existing: Existing,
    /// Where the tree is extracted (for a file: the directory holding it).
    pub staging: PathBuf,
    /// The tree's manifest, streamed out of the archive next to the staging tree.
    pub manifest: PathBuf,
    /// Where the current path is kept (`None`: nothing is there).
    pub old: Option<PathBuf>,
}

impl BindPlace {
    /// What goes to the path: the staging tree, or the file in it.
    pub(crate) fn staged(&self) -> PathBuf {
        match self.bind.kind {
            BindKind::Dir => self.staging.clone(),
            BindKind::File => self.staging.join(self.bind.path.file_name().unwrap_or_default()),
        }
    }

    /// The renames of the swap, in order.
    pub(crate) fn renames(&self) -> Vec<Intent> {
        let mut v: Vec<Intent> = self.old.iter().map(|o| Intent::rename(&self.bind.path, o, false)).collect();
        v.push(Intent::rename(&self.staged(), &self.bind.path, false));
        v
    }
}

/// Why the archive's record of a bind source cannot be restored (`None`: it can).
fn refusal(b: &BindTree, i: usize, meta: &BackupMeta, data_root: &Path, containerd_root: Option<&Path>) -> Option<String> {
    if b.index as usize != i {
        return Some(format!("bind tree {} is listed at position {i}", b.index));
    }
    if let Some(why) = mounts::plumbing(&b.path, data_root).or_else(|| mounts::plumbing(&b.path, &meta.data_root)) {
        return Some(why);
    }
    if b.kind == BindKind::File && b.path.file_name().is_none() {
        return Some("a file without a name".into());
    }
    let inside = |root: &Path| b.path.starts_with(root) || root.starts_with(&b.path);
    if inside(data_root) || containerd_root.is_some_and(inside) {
        return Some("inside or around the data-root or containerd's root".into());
    }
    let overlap = meta.binds.iter().any(|o| o.index != b.index && (o.path.starts_with(&b.path) || b.path.starts_with(&o.path)));
    overlap.then(|| "overlaps another bind tree of the archive".into())
}

fn existing(b: &BindTree) -> Existing {
    match b.path.symlink_metadata() {
        Err(_) => Existing::Absent,
        Ok(m) if m.is_dir() && std::fs::read_dir(&b.path).is_ok_and(|mut d| d.next().is_none()) => Existing::Empty,
        Ok(m) if b.kind == BindKind::File && m.is_file() && m.len() == 0 => Existing::Empty,
        Ok(_) => Existing::NonEmpty,
    }
}

/// The bind trees of `meta` to restore. Refuses a path that is plumbing or
/// otherwise unsafe, and a non-empty path without `force`; changes nothing.
pub fn plan(meta: &BackupMeta, data_root: &Path, containerd_root: Option<&Path>, force: bool, ts: &str) -> Result<Vec<BindPlace>> {
    (0..meta.binds.len()).map(|i| place(meta, i, data_root, containerd_root, force, ts)).collect()
}

/// [`plan`] of the `i`-th bind tree alone (`restore --bind`).
pub(crate) fn place(
    meta: &BackupMeta,
    i: usize,
    data_root: &Path,
    containerd_root: Option<&Path>,
    force: bool,
    ts: &str,
) -> Result<BindPlace> {
    let b = &meta.binds[i];
    if let Some(why) = refusal(b, i, meta, data_root, containerd_root) {
        return Err(PlanError::refused(format!(
            "the archive names bind source {} ({why}); dockroot never writes there. Nothing was changed",
            b.path.display()
        )));
    }
    let existing = existing(b);
    let old = atomic::with_suffix(&b.path, &format!("{}{ts}", super::OLD_INFIX));
    if existing == Existing::NonEmpty && !force {
        return Err(PlanError::refused(format!(
            "bind source {} is not empty; pass --force to keep it as {} and restore the archive's in its place",
            b.path.display(),
            old.display()
        )));
    }
    let staging = atomic::with_suffix(&b.path, &format!("{}{ts}", super::STAGING_INFIX));
    Ok(BindPlace {
        manifest: atomic::with_suffix(&staging, ".manifest"),
        staging,
        old: (existing != Existing::Absent).then_some(old),
        existing,
        bind: b.clone(),
    })
}

/// Creates the staging directories (their parents too: a reinstalled host
/// may lack `/srv/app`).
pub(crate) fn make_staging(binds: &[BindPlace]) -> Result<()> {
    for b in binds {
        if let Some(parent) = b.staging.parent() {
            std::fs::create_dir_all(parent).map_err(PlanError::file("create", parent))?;
        }
        std::fs::create_dir(&b.staging).map_err(PlanError::file("create the staging directory", &b.staging))?;
    }
    Ok(())
}

/// Swaps every staged bind tree in (Docker is stopped), one journaled step.
pub(crate) fn swap(r: &mut Runner, binds: &[BindPlace]) -> Result<()> {
    if binds.is_empty() {
        return Ok(());
    }
    let intents: Vec<Intent> = binds.iter().flat_map(BindPlace::renames).collect();
    r.step_with("binds", intents.clone(), |_| {
        for i in &intents {
            if let Intent::Rename { from, to, .. } = i {
                std::fs::rename(from, to).map_err(PlanError::file("rename into place", from))?;
            }
        }
        // A file's staging directory is empty now; the journal removes it with the rest.
        Ok::<_, PlanError>(())
    })
}

/// After the restore: each carried source exists at its path and matches
/// its manifest (a directory: the whole tree; a file: its size). Returns
/// what is wrong, one line each.
pub(crate) fn check(binds: &[BindPlace], threads: usize, progress: &dyn crate::progress::Progress) -> Vec<String> {
    let mut bad = Vec::new();
    for b in binds {
        let p = &b.bind.path;
        let problem = match (b.bind.kind, p.symlink_metadata()) {
            (_, Err(e)) => Some(format!("missing ({e})")),
            (BindKind::Dir, Ok(m)) if !m.is_dir() => Some("not a directory".into()),
            (BindKind::File, Ok(m)) if !m.is_file() => Some("not a regular file".into()),
            (BindKind::Dir, Ok(_)) if b.manifest.exists() => match crate::audit::verify_tree(p, &b.manifest, threads, progress) {
                Ok(rep) if rep.ok() => None,
                Ok(rep) => Some(format!("{} differences from the archive's manifest", rep.differences.len() as u64 + rep.more)),
                Err(e) => Some(e.to_string()),
            },
            _ => None,
        };
        if let Some(why) = problem {
            bad.push(format!("bind source {} of {}: {why}", p.display(), b.bind.containers.join(", ")));
        }
    }
    bad
}

/// Containers that mount a bind source that is missing or an empty
/// directory now and that the archive did not carry: they would start on
/// an empty directory (dockerd makes a missing source silently).
pub(crate) fn empty_sources(api: &crate::docker::api::DockerApi, data_root: &Path, binds: &[BindPlace]) -> Vec<String> {
    let Ok(containers) = mounts::read_all(Some(api), data_root) else { return Vec::new() };
    let mut out = Vec::new();
    for c in containers {
        for m in c.mounts.iter().filter(|m| m.kind == mounts::MountType::Bind) {
            let Some(src) = &m.source else { continue };
            let carried = binds.iter().any(|b| src.starts_with(&b.bind.path));
            let empty = match src.symlink_metadata() {
                Err(_) => true,
                Ok(md) => md.is_dir() && std::fs::read_dir(src).is_ok_and(|mut d| d.next().is_none()),
            };
            if empty && !carried && mounts::plumbing(src, data_root).is_none() && !src.starts_with(data_root) {
                out.push(format!(
                    "container {} would start on an empty directory at {} (mounted on {}): the archive does not carry it",
                    c.name,
                    src.display(),
                    m.destination
                ));
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn meta(binds: &[(&str, BindKind)]) -> BackupMeta {
        let j = serde_json::json!({
            "format": 2, "tool": "dockroot", "tool_version": "0", "engine_version": null, "storage_driver": null,
            "data_root": "/var/lib/docker", "hostname": "h", "created": "20260101T000000Z", "entries": 1, "bytes": 0,
            "docker": null,
        });
        let mut m: BackupMeta = serde_json::from_value(j).unwrap();
        m.binds = binds
            .iter()
            .enumerate()
            .map(|(i, (p, kind))| BindTree {
                index: i as u32,
                path: p.into(),
                kind: *kind,
                entries: 1,
                bytes: 0,
                allocated: None,
                containers: vec!["app".into()],
                mounts_inside: vec![],
            })
            .collect();
        m
    }

    /// A malicious meta.json cannot steer a write to the host's files.
    #[test]
    fn plumbing_and_unsafe_paths_from_an_archive_are_refused() {
        let dr = Path::new("/var/lib/docker");
        for bad in [
            "/etc/shadow",
            "/etc/passwd",
            "/etc/localtime",
            "/",
            "/etc",
            "/usr/bin",
            "/run/docker.sock",
            "/srv/../etc/shadow",
            "relative",
            "/var/lib/docker/volumes/x",
            "/var/lib",
        ] {
            let e = plan(&meta(&[(bad, BindKind::File)]), dr, None, true, "T").unwrap_err().to_string();
            assert!(e.contains("never writes there"), "{bad}: {e}");
        }
        let e = plan(&meta(&[("/srv/a", BindKind::Dir), ("/srv/a/b", BindKind::Dir)]), dr, None, true, "T").unwrap_err();
        assert!(e.to_string().contains("overlaps"), "{e}");
        let e = plan(&meta(&[("/srv/ctd/x", BindKind::Dir)]), dr, Some(Path::new("/srv/ctd")), true, "T").unwrap_err();
        assert!(e.to_string().contains("containerd"), "{e}");
    }

    #[test]
    fn absent_and_empty_paths_are_filled_non_empty_ones_need_force() {
        let d = tempfile::tempdir().unwrap();
        let dr = d.path().join("docker");
        let (absent, empty, full, file) = (d.path().join("a"), d.path().join("e"), d.path().join("f"), d.path().join("c.conf"));
        std::fs::create_dir(&empty).unwrap();
        std::fs::create_dir(&full).unwrap();
        std::fs::write(full.join("x"), b"x").unwrap();
        // dockerd made a directory where the file was.
        std::fs::create_dir(&file).unwrap();
        let s = |p: &Path| p.to_str().unwrap().to_string();
        let m = meta(&[(&s(&absent), BindKind::Dir), (&s(&file), BindKind::File), (&s(&empty), BindKind::Dir), (&s(&full), BindKind::Dir)]);
        let e = plan(&m, &dr, None, false, "T").unwrap_err().to_string();
        assert!(e.contains("not empty") && e.contains("--force"), "{e}");
        let p = plan(&m, &dr, None, true, "T").unwrap();
        let got: Vec<_> = p.iter().map(|b| (b.existing, b.old.is_some())).collect();
        assert_eq!(got, [(Existing::Absent, false), (Existing::Empty, true), (Existing::Empty, true), (Existing::NonEmpty, true)]);
        assert_eq!(p[1].staged(), p[1].staging.join("c.conf"));
        assert_eq!(p[0].renames().len(), 1);
        assert_eq!(p[3].renames().len(), 2);
    }
}
