//! Editing containerd's `root` in its config file (`/etc/containerd/config.toml`,
//! versions 2 and 3), for a move with `--method data-root` of the containerd
//! image store. Only the top-level `root` line changes: every other byte,
//! comment and table stays as the user wrote it, so the edit can be read in
//! a diff and undone byte for byte from the backup.

use std::path::Path;

/// The config written when the file does not exist: version 2 is read by
/// containerd 1.7 and 2.x alike (2.x migrates it in memory).
pub(crate) fn minimal(root: &Path) -> String {
    format!("version = 2\nroot = {}\n", literal(root))
}

/// `text` with its top-level `root` set to `root`: the existing line is
/// replaced (keeping a trailing comment), or a line is added after
/// `version = N`, or at the top. Keys inside tables (a plugin's `root`) are
/// not containerd's root and are left alone.
pub(crate) fn set_root(text: &str, root: &Path) -> String {
    let value = literal(root);
    let mut out = Vec::new();
    let (mut done, mut in_table, mut version_at) = (false, false, None);
    for line in text.split_inclusive('\n') {
        let t = line.trim_start();
        in_table |= t.starts_with('[');
        if !in_table && !done && key(t) == Some("root") {
            let comment = t.find(" #").map(|i| &t[i..]).unwrap_or("").trim_end_matches(['\n', '\r']);
            out.push(format!("root = {value}{comment}\n"));
            done = true;
            continue;
        }
        if !in_table && key(t) == Some("version") {
            version_at = Some(out.len() + 1);
        }
        out.push(line.to_string());
    }
    if !done {
        if let Some(last) = out.last_mut().filter(|l| !l.ends_with('\n')) {
            last.push('\n');
        }
        out.insert(version_at.unwrap_or(0), format!("root = {value}\n"));
    }
    out.concat()
}

/// The key of a `key = value` line.
fn key(line: &str) -> Option<&str> {
    let (k, _) = line.split_once('=')?;
    let k = k.trim();
    (!k.is_empty() && !k.starts_with('#')).then_some(k)
}

/// A TOML string for a path: a literal string (no escapes) unless the path
/// holds a `'`, then a basic string with `\` and `"` escaped.
fn literal(p: &Path) -> String {
    let s = p.to_string_lossy();
    if s.contains('\'') || s.contains('\n') {
        format!("\"{}\"", s.replace('\\', "\\\\").replace('"', "\\\"").replace('\n', "\\n"))
    } else {
        format!("'{s}'")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::docker::containerd::parse_config;
    use std::path::PathBuf;

    #[test]
    fn replaces_only_the_top_level_root() {
        let v3 = "# mine\nversion = 3\nroot = '/var/lib/containerd' # the disk\nstate = '/run/containerd'\n\n[plugins.'io.containerd.cri.v1.images']\n  root = '/x'\n";
        let out = set_root(v3, Path::new("/data/containerd"));
        assert_eq!(
            out,
            "# mine\nversion = 3\nroot = '/data/containerd' # the disk\nstate = '/run/containerd'\n\n[plugins.'io.containerd.cri.v1.images']\n  root = '/x'\n"
        );
        assert_eq!(parse_config(&out).0, Some(PathBuf::from("/data/containerd")));
    }

    /// Docker CE's containerd.io config.toml: no version line, the CRI
    /// plugin disabled, the defaults commented out (issue 19).
    const DOCKER_CE: &str = "#   Copyright 2018-2022 Docker Inc.\n\ndisabled_plugins = [\"cri\"]\n\n#root = \"/var/lib/containerd\"\n#state = \"/run/containerd\"\n\n#[grpc]\n#  address = \"/run/containerd/containerd.sock\"\n";

    #[test]
    fn docker_ce_config_gets_a_root_line_and_keeps_the_rest() {
        let out = set_root(DOCKER_CE, Path::new("/data/containerd"));
        assert_eq!(out, format!("root = '/data/containerd'\n{DOCKER_CE}"));
        assert_eq!(set_root(&out, Path::new("/x")), format!("root = '/x'\n{DOCKER_CE}"));
        assert_eq!(crate::docker::containerd::parse_config(DOCKER_CE), (None, None), "a commented root is no setting");
    }

    #[test]
    fn adds_root_after_the_version_or_at_the_top() {
        let v2 = "version = 2\n\n[grpc]\n  address = \"/run/containerd/containerd.sock\"\n";
        let out = set_root(v2, Path::new("/d/c"));
        assert_eq!(out, "version = 2\nroot = '/d/c'\n\n[grpc]\n  address = \"/run/containerd/containerd.sock\"\n");
        assert_eq!(set_root("[grpc]\n", Path::new("/d")), "root = '/d'\n[grpc]\n");
        assert_eq!(set_root("", Path::new("/d")), "root = '/d'\n");
        let odd = set_root("version = 2", Path::new("/it's"));
        assert_eq!(parse_config(&odd).0, Some(PathBuf::from("/it's")), "{odd}");
        assert_eq!(parse_config(&minimal(Path::new("/m"))), (Some(PathBuf::from("/m")), None));
    }
}
