//! Crash-safe replacement of small files (daemon.json, /etc/fstab, the
//! journal). A half-written daemon.json stops Docker from starting and a
//! half-written fstab can stop the host from booting, so we write a temporary
//! file in the same directory, fsync it, rename it over the original and fsync
//! the directory. Backups of edited files are the journal's business
//! (`plan::core::intent`): one per operation, named by its id.

use std::fs::{self, File, OpenOptions};
use std::io::Write;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::time::{SystemTime, UNIX_EPOCH};

/// A file could not be written or replaced.
#[derive(Debug, thiserror::Error)]
#[error("cannot write {path}: {source}; check free space and that the filesystem is writable")]
pub struct WriteError {
    pub path: PathBuf,
    #[source]
    pub source: std::io::Error,
}

pub type Result<T> = std::result::Result<T, WriteError>;

/// Suffix put between the file name and the operation id of backups.
pub(crate) const BACKUP_INFIX: &str = ".dockroot-bak-";

/// Replaces (or creates) `path` with `contents` and `mode`: a synced
/// temporary file renamed over it, then the directory synced, so a crash
/// leaves either the old or the new file, never a torn one.
pub(crate) fn write_atomic(path: &Path, contents: &[u8], mode: u32) -> Result<()> {
    let tmp = temp_name(path);
    let _ = fs::remove_file(&tmp);
    write_synced(&tmp, contents, mode)?;
    if let Err(source) = fs::rename(&tmp, path) {
        let _ = fs::remove_file(&tmp);
        return Err(WriteError { path: path.to_path_buf(), source });
    }
    fsync_dir(&parent_dir(path))
}

/// Formats a time as `YYYYMMDDTHHMMSSZ` (UTC), e.g. `20261123T112040Z`.
pub(crate) fn utc_timestamp(t: SystemTime) -> String {
    let secs = t.duration_since(UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0);
    let (days, rem) = (secs / 86_400, secs % 86_400);
    let (y, m, d) = civil_from_days(days as i64);
    let (hh, mm, ss) = (rem / 3600, rem % 3600 / 60, rem % 60);
    format!("{y:04}{m:02}{d:02}T{hh:02}{mm:02}{ss:02}Z")
}

/// Converts days since 1970-01-01 to a civil date (H. Hinnant's algorithm).
fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    (yoe + era * 400 + i64::from(m <= 2), m, d)
}

fn write_synced(path: &Path, contents: &[u8], mode: u32) -> Result<()> {
    let err = |source| WriteError { path: path.to_path_buf(), source };
    let mut f = OpenOptions::new().write(true).create_new(true).mode(mode).open(path).map_err(err)?;
    f.set_permissions(fs::Permissions::from_mode(mode)).map_err(err)?;
    f.write_all(contents).map_err(err)?;
    f.sync_all().map_err(err)
}

fn fsync_dir(dir: &Path) -> Result<()> {
    let err = |source| WriteError { path: dir.to_path_buf(), source };
    File::open(dir).map_err(err)?.sync_all().map_err(err)
}

fn parent_dir(path: &Path) -> PathBuf {
    match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => PathBuf::from("."),
    }
}

/// The temporary name `write_atomic` writes first. Fixed (no pid), so a
/// write killed halfway leaves one known name that the next write or an undo
/// removes, instead of a new `*.dockroot-tmp-<pid>` per attempt; the state
/// directory's lock keeps two dockroot runs from sharing it.
pub(crate) fn temp_name(path: &Path) -> PathBuf {
    with_suffix(path, ".dockroot-tmp")
}

/// `path` with `suffix` appended to its last component (`a/b` + `.x` = `a/b.x`).
pub(crate) fn with_suffix(path: &Path, suffix: &str) -> PathBuf {
    let mut s = path.as_os_str().to_os_string();
    s.push(suffix);
    PathBuf::from(s)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn timestamp_is_utc_civil() {
        let t = UNIX_EPOCH + Duration::from_secs(1_795_432_840);
        assert_eq!(utc_timestamp(t), "20261123T112040Z");
        assert_eq!(utc_timestamp(UNIX_EPOCH), "19700101T000000Z");
    }

    #[test]
    fn write_atomic_keeps_the_mode_and_leaves_no_temp_file() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("f");
        fs::write(temp_name(&p), b"stale").unwrap();
        write_atomic(&p, b"one", 0o600).unwrap();
        assert_eq!(fs::read(&p).unwrap(), b"one");
        assert_eq!(fs::metadata(&p).unwrap().permissions().mode() & 0o777, 0o600);
        assert_eq!(fs::read_dir(dir.path()).unwrap().count(), 1, "the stale temp file is gone");
    }
}
