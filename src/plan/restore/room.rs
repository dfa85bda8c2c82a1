//! Room for what a restore stages (issue 18: the space check counts the
//! bind sources). Every tree of the archive is extracted next to where it
//! goes, on that filesystem, while the current data stays: so each
//! filesystem must hold the sum of the trees staged on it, as meta.json
//! counts them (the bytes the files took on disk, so a sparse file counts
//! its data, not its length), before anything is written.

use std::collections::BTreeMap;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use crate::plan::r#move::probe::existing_ancestor;
use crate::plan::{PlanError, Result};

/// One tree to stage: where, how many bytes, and what it is (for the message).
pub(crate) struct Need<'a> {
    pub staging: &'a Path,
    pub bytes: u64,
    pub what: String,
}

fn mib(n: u64) -> String {
    format!("{:.1} MiB", n as f64 / (1u64 << 20) as f64)
}

/// Free bytes of the filesystem holding `path` (statfs), for [`check`].
pub(crate) fn free(path: &Path) -> std::io::Result<u64> {
    crate::sys::process::statfs(path).map(|(_, free)| free)
}

/// Refuses, changing nothing, when a filesystem has less free space than
/// the trees staged on it. `free` reports a path's free bytes (statfs).
pub(crate) fn check(needs: &[Need], free: impl Fn(&Path) -> std::io::Result<u64>) -> Result<()> {
    // By filesystem (st_dev of the nearest existing ancestor).
    let mut by_fs: BTreeMap<u64, (PathBuf, u64, Vec<&str>)> = BTreeMap::new();
    for n in needs {
        let at = existing_ancestor(n.staging);
        let dev = std::fs::metadata(&at).map_err(PlanError::file("stat", &at))?.dev();
        let e = by_fs.entry(dev).or_insert_with(|| (at, 0, Vec::new()));
        e.1 += n.bytes;
        e.2.push(&n.what);
    }
    for (at, need, whats) in by_fs.values() {
        let have = free(at).map_err(PlanError::file("statfs", at))?;
        if have < *need {
            return Err(PlanError::refused(format!(
                "not enough space on the filesystem of {}: {} is staged there ({}) while the current data stays, and {} is free; \
                 free some space or restore onto another disk. Nothing was changed",
                at.display(),
                mib(*need),
                whats.join(", "),
                mib(have)
            )));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn trees_on_one_filesystem_add_up() {
        let d = tempfile::tempdir().unwrap();
        let (a, b) = (d.path().join("a/staging"), d.path().join("b/x/staging"));
        let needs = [
            Need { staging: &a, bytes: 600, what: "the data-root".into() },
            Need { staging: &b, bytes: 500, what: "bind source /b".into() },
        ];
        assert!(check(&needs, |_| Ok(1100)).is_ok());
        let e = check(&needs, |_| Ok(1000)).unwrap_err().to_string();
        assert!(e.contains("the data-root, bind source /b") && e.contains("Nothing was changed"), "{e}");
        assert!(e.contains(&d.path().display().to_string()), "{e}");
    }
}
