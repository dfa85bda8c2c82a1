//! Where a backup may be written. A typo in a mount point's name
//! (`/mnt/backpu/…`) must not silently put the archive on the root disk, so
//! the directory that receives the archive has to exist already, and an
//! archive on the data-root's own filesystem draws a warning: it would not
//! survive the reinstall or disk loss it is usually made for.

use std::os::unix::fs::MetadataExt;
use std::path::Path;

use super::error::{BackupError, Result};

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
        Ok(_) => return Err(BackupError::Refused(format!("{what} {} is not a directory", dir.display()))),
        Err(e) => {
            return Err(BackupError::Refused(format!(
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
