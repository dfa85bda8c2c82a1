//! Where a backup may be written. A typo in a mount point's name
//! (`/mnt/backpu/…`) must not silently put the archive on the root disk, so
//! the directory that receives the archive has to exist already, and an
//! archive on the data-root's own filesystem draws a warning: it would not
//! survive the reinstall or disk loss it is usually made for. The archive is
//! written to `FILE.partial` and gets its name only once complete.

use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use crate::util::atomic;

use crate::plan::{PlanError, Result};

/// Refuses an output whose directory is missing; returns a warning when the
/// archive would land on the filesystem that holds `data_root`.
/// `dir_output` is true for `-o DIR/` (or an existing directory).
pub(crate) fn check(output: &Path, dir_output: bool, data_root: &Path) -> Result<Option<String>> {
    let dir = if dir_output {
        output
    } else {
        match output.parent() {
            Some(p) if !p.as_os_str().is_empty() => p,
            _ => Path::new("."),
        }
    };
    let what = if dir_output { "the output directory" } else { "the directory of the archive" };
    let md = match std::fs::metadata(dir) {
        Ok(md) if md.is_dir() => md,
        Ok(_) => return Err(PlanError::refused(format!("{what} {} is not a directory", dir.display()))),
        Err(e) => {
            return Err(PlanError::refused(format!(
                "{what} {} cannot be used ({e}); create it, or mount the backup disk there, first (nothing was changed)",
                dir.display()
            )));
        }
    };
    let same = std::fs::metadata(data_root).is_ok_and(|d| d.dev() == md.dev());
    Ok(same.then(|| {
        format!(
            "the archive goes to {}, on the same filesystem as the data-root {}: it will not survive a reinstall or the loss of that disk; write it to another disk or copy it off this machine",
            dir.display(),
            data_root.display()
        )
    }))
}

/// Where the archive for `path` is written until [`commit`] names it.
pub(super) fn partial_path(path: &Path) -> PathBuf {
    atomic::with_suffix(path, ".partial")
}

/// `r`, after removing the partial file of `path` when `r` is an error.
pub(super) fn or_remove_partial<T>(path: &Path, r: Result<T>) -> Result<T> {
    if r.is_err() {
        let _ = std::fs::remove_file(partial_path(path));
    }
    r
}

/// Creates `path.partial` (mode 0600), where an archive is written before
/// [`commit`] gives it its name.
pub(super) fn open_partial(path: &Path) -> Result<(std::fs::File, PathBuf)> {
    if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
        std::fs::create_dir_all(parent).map_err(PlanError::file("create", parent))?;
    }
    let partial = partial_path(path);
    let f = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode_0600()
        .open(&partial)
        .map_err(PlanError::file("create", &partial))?;
    Ok((f, partial))
}

/// Fsyncs a complete archive and renames it from `partial` to `path`; returns its size.
pub(super) fn commit(f: std::fs::File, partial: &Path, path: &Path) -> Result<u64> {
    f.sync_all().map_err(PlanError::file("fsync", partial))?;
    let len = f.metadata().map_err(PlanError::file("stat", partial))?.len();
    std::fs::rename(partial, path).map_err(PlanError::file("rename into place", path))?;
    // The name survives a crash only once its directory is synced (issue 17: --keep).
    crate::util::atomic::sync_parent(path).map_err(|e| PlanError::File {
        step: "fsync the directory of",
        path: path.into(),
        source: e.source,
    })?;
    Ok(len)
}

trait Mode0600 {
    fn mode_0600(&mut self) -> &mut Self;
}

impl Mode0600 for std::fs::OpenOptions {
    fn mode_0600(&mut self) -> &mut Self {
        std::os::unix::fs::OpenOptionsExt::mode(self, 0o600)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn missing_directories_are_refused() {
        let t = tempfile::tempdir().unwrap();
        let dr = t.path().join("root");
        std::fs::create_dir(&dr).unwrap();
        let e = check(&t.path().join("backpu/x.tar.zst"), false, &dr).unwrap_err().to_string();
        assert!(e.contains("backpu") && e.contains("No such file"), "{e}");
        let e = check(&t.path().join("nodir/"), true, &dr).unwrap_err().to_string();
        assert!(e.contains("the output directory") && e.contains("nodir"), "{e}");
        std::fs::write(t.path().join("f"), b"").unwrap();
        let e = check(&t.path().join("f/x.tar.zst"), false, &dr).unwrap_err().to_string();
        assert!(e.contains("not a directory"), "{e}");
    }

    #[test]
    fn same_filesystem_warns() {
        let t = tempfile::tempdir().unwrap();
        let dr = t.path().join("root");
        std::fs::create_dir(&dr).unwrap();
        let w = check(&t.path().join("x.tar.zst"), false, &dr).unwrap().expect("same filesystem");
        assert!(w.contains("same filesystem") && w.contains(&dr.display().to_string()), "{w}");
        // /proc is never the filesystem of a temporary directory.
        assert_eq!(check(Path::new("/proc/"), true, &dr).unwrap(), None);
    }
}
