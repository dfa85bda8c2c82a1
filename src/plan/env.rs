//! The host as the plan sees it, and path and command-line helpers every room uses.

use std::path::{Path, PathBuf};

use crate::docker::api::DockerApi;
use crate::docker::discover;
use crate::plan::core::error::{PlanError, Result};
use crate::plan::core::journal::StateDir;
use crate::plan::r#move::probe;
use crate::service::wait::Timing;
use crate::service::{ServiceContext, ServiceKind};

/// Where the systemd drop-in goes.
pub const DEFAULT_DROPIN: &str = "/etc/systemd/system/docker.service.d/dockroot-mount.conf";

/// The host as the plan sees it (built by the CLI from its options).
#[derive(Debug, Clone)]
pub struct Env {
    /// The data-root, if given; else discovered.
    pub data_root: Option<PathBuf>,
    pub service: ServiceKind,
    pub state: StateDir,
    pub api: DockerApi,
    pub daemon_json: PathBuf,
    pub fstab: PathBuf,
    pub dropin: PathBuf,
    pub threads: usize,
    pub timing: Timing,
}

impl Env {
    /// The data-root: as given, or discovered the way dockerd would find it.
    pub(crate) fn data_root(&self) -> Result<PathBuf> {
        if let Some(d) = &self.data_root {
            return Ok(d.clone());
        }
        let opts = discover::DiscoverOptions { daemon_json: self.daemon_json.clone(), api: Some(self.api.clone()), ..Default::default() };
        Ok(discover::discover(&opts).map_err(PlanError::docker("discover"))?.data_root)
    }

    pub(crate) fn ctx(&self, data_root: &Path) -> ServiceContext {
        ServiceContext { data_root: data_root.into(), api: self.api.clone(), timing: self.timing }
    }
}

/// Canonical form of a path that may not exist yet (made absolute against
/// the working directory, its existing ancestor canonicalised, the rest
/// appended).
pub(crate) fn absolute(p: &Path) -> PathBuf {
    let p = &std::path::absolute(p).unwrap_or_else(|_| p.to_path_buf());
    let base = probe::existing_ancestor(p);
    let rest = p.strip_prefix(&base).unwrap_or(Path::new(""));
    let base = std::fs::canonicalize(&base).unwrap_or(base);
    // join("") would add a trailing slash, and `<path>/` + suffix is a path inside it.
    if rest.as_os_str().is_empty() { base } else { base.join(rest) }
}

/// `argv` as one shell command line, each word single-quoted when needed.
pub(crate) fn shell_line(argv: &[String]) -> String {
    let safe = |a: &str| !a.is_empty() && a.bytes().all(|b| b.is_ascii_alphanumeric() || b"-_./=:,+@%".contains(&b));
    argv.iter().map(|a| if safe(a) { a.clone() } else { format!("'{}'", a.replace('\'', "'\\''")) }).collect::<Vec<_>>().join(" ")
}

#[cfg(test)]
mod tests {
    use super::absolute;

    #[test]
    fn absolute_paths_have_no_trailing_slash_and_relative_ones_start_at_the_cwd() {
        let d = tempfile::tempdir().unwrap();
        let real = std::fs::canonicalize(d.path()).unwrap();
        assert_eq!(absolute(d.path()), real);
        assert_eq!(absolute(&d.path().join("new/sub")), real.join("new/sub"));
        let cwd = std::env::current_dir().unwrap();
        assert_eq!(absolute(std::path::Path::new("no-such-dir-x")), std::fs::canonicalize(&cwd).unwrap().join("no-such-dir-x"));
    }

    #[test]
    fn shell_line_quotes_only_what_needs_it() {
        let argv = ["/usr/bin/dockerd", "--data-root=/data/docker", "-p", "/run/a b.pid", "it's"].map(String::from);
        assert_eq!(super::shell_line(&argv), "/usr/bin/dockerd --data-root=/data/docker -p '/run/a b.pid' 'it'\\''s'");
    }
}
