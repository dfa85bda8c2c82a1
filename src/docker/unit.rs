//! Reading dockerd's command line out of systemd unit files without systemd.
//!
//! dockroot must work where systemd is not PID 1 (containers, chroots), so it
//! reproduces the bits of systemd.unit(5) it needs: the main unit file comes
//! from the first of /etc, /run, /lib that has it; drop-ins `*.conf` from
//! `docker.service.d/` in all three are merged by file name (/etc masks /run
//! masks /lib) and applied in lexical order; an empty `ExecStart=` clears the
//! list built so far; lines ending in `\` continue on the next line.

use std::path::{Path, PathBuf};

/// The directories systemd searches for system units, highest priority first.
pub const UNIT_DIRS: [&str; 4] = ["/etc/systemd/system", "/run/systemd/system", "/usr/lib/systemd/system", "/lib/systemd/system"];

/// A unit file that was read, with its text.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct UnitFile {
    /// Where the text came from.
    pub path: PathBuf,
    /// The file's contents.
    pub text: String,
}

/// Reads `unit` (e.g. `docker.service`) and its drop-ins from `dirs` (in
/// priority order), returning the files in the order systemd applies them.
/// Unreadable files are skipped: this is discovery, not validation.
pub(crate) fn load_unit(dirs: &[PathBuf], unit: &str) -> Vec<UnitFile> {
    let mut files = Vec::new();
    if let Some(main) = dirs.iter().map(|d| d.join(unit)).find(|p| p.is_file()) {
        files.extend(read(&main));
    }
    let mut dropins: Vec<(String, PathBuf)> = Vec::new();
    for dir in dirs {
        let Ok(rd) = std::fs::read_dir(dir.join(format!("{unit}.d"))) else {
            continue;
        };
        for e in rd.flatten() {
            let name = e.file_name().to_string_lossy().into_owned();
            if name.ends_with(".conf") && !dropins.iter().any(|(n, _)| *n == name) {
                dropins.push((name, e.path()));
            }
        }
    }
    dropins.sort();
    files.extend(dropins.iter().filter_map(|(_, p)| read(p)));
    files
}

fn read(path: &Path) -> Option<UnitFile> {
    let text = std::fs::read_to_string(path).ok()?;
    Some(UnitFile { path: path.to_path_buf(), text })
}

/// The effective `ExecStart=` of the `[Service]` section across `files`:
/// the last command left after applying resets, with the file it came from.
pub(crate) fn exec_start(files: &[UnitFile]) -> Option<(Vec<String>, PathBuf)> {
    let mut current: Vec<(String, PathBuf)> = Vec::new();
    for f in files {
        for value in service_values(&f.text, "ExecStart") {
            if value.trim().is_empty() {
                current.clear();
            } else {
                current.push((value, f.path.clone()));
            }
        }
    }
    let (cmd, path) = current.pop()?;
    Some((split_command(&cmd), path))
}

/// All values of `key` inside `[Service]`, with continuation lines joined.
fn service_values(text: &str, key: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut in_service = false;
    for line in logical_lines(text) {
        let t = line.trim();
        if t.starts_with('[') {
            in_service = t == "[Service]";
        } else if in_service && !t.starts_with(['#', ';']) {
            match t.split_once('=') {
                Some((k, v)) if k.trim() == key => out.push(v.trim().to_string()),
                _ => {}
            }
        }
    }
    out
}

fn logical_lines(text: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut acc = String::new();
    for line in text.lines() {
        match line.strip_suffix('\\') {
            Some(head) => {
                acc.push_str(head);
                acc.push(' ');
            }
            None => {
                acc.push_str(line);
                out.push(std::mem::take(&mut acc));
            }
        }
    }
    if !acc.is_empty() {
        out.push(acc);
    }
    out
}

/// Splits an ExecStart command into words: strips systemd's `-@:+!` prefixes
/// and honours single/double quotes and backslash escapes.
pub(crate) fn split_command(cmd: &str) -> Vec<String> {
    let cmd = cmd.trim_start_matches(['-', '@', ':', '+', '!']);
    let mut words = Vec::new();
    let (mut cur, mut quote, mut has) = (String::new(), None::<char>, false);
    let mut chars = cmd.chars();
    while let Some(c) = chars.next() {
        match (c, quote) {
            ('\\', _) => {
                cur.extend(chars.next());
                has = true;
            }
            ('"' | '\'', None) => (quote, has) = (Some(c), true),
            (c, Some(q)) if c == q => quote = None,
            (c, None) if c.is_whitespace() => {
                if has {
                    words.push(std::mem::take(&mut cur));
                }
                has = false;
            }
            (c, _) => {
                cur.push(c);
                has = true;
            }
        }
    }
    if has {
        words.push(cur);
    }
    words
}

/// The value of any of `names` in `argv`, in `--flag=v` or `--flag v`
/// form. The last occurrence wins, as with Go's flag parsing.
pub(crate) fn flag_value(argv: &[String], names: &[&str]) -> Option<String> {
    find_flag(argv, names).map(|(_, v)| v)
}

/// Like [`flag_value`] but also returns the flag name that was used.
pub(crate) fn find_flag(argv: &[String], names: &[&str]) -> Option<(String, String)> {
    let mut found = None;
    let mut i = 0;
    while i < argv.len() {
        let a = &argv[i];
        if let Some(n) = names.iter().find(|n| *n == a) {
            found = argv.get(i + 1).map(|v| (n.to_string(), v.clone()));
            i += 1;
        } else if let Some((n, v)) = a.split_once('=').filter(|(n, _)| names.contains(n)) {
            found = Some((n.to_string(), v.to_string()));
        }
        i += 1;
    }
    found
}

/// The flag names dockerd accepts for the data-root.
pub(crate) const DATA_ROOT_FLAGS: &[&str] = &["--data-root", "-g", "--graph"];
/// The flag names dockerd accepts for the storage driver.
pub(crate) const STORAGE_DRIVER_FLAGS: &[&str] = &["--storage-driver", "-s"];
/// The flag dockerd accepts for userns-remap.
pub(crate) const USERNS_REMAP_FLAGS: &[&str] = &["--userns-remap"];

#[cfg(test)]
mod tests {
    use super::*;

    fn uf(p: &str, t: &str) -> UnitFile {
        UnitFile { path: p.into(), text: t.into() }
    }

    #[test]
    fn dropin_reset_replaces_exec_start() {
        let main = uf("/lib/systemd/system/docker.service", "[Unit]\nExecStart=/bogus\n[Service]\nExecStart=/usr/bin/dockerd -H fd://\n");
        let drop = uf(
            "/etc/systemd/system/docker.service.d/10.conf",
            "[Service]\nExecStart=\nExecStart=/usr/bin/dockerd \\\n  --data-root /srv/docker -H fd://\n",
        );
        let (argv, from) = exec_start(&[main.clone(), drop]).unwrap();
        assert_eq!(flag_value(&argv, DATA_ROOT_FLAGS).as_deref(), Some("/srv/docker"));
        assert!(from.ends_with("10.conf"));
        let (argv, _) = exec_start(&[main]).unwrap();
        assert_eq!(flag_value(&argv, DATA_ROOT_FLAGS), None);
        let reset_only = uf("/x.conf", "[Service]\nExecStart=\n");
        assert_eq!(exec_start(&[reset_only]), None);
    }

    #[test]
    fn flag_forms() {
        let a = split_command("-/usr/bin/dockerd -g=/a --graph /b");
        assert_eq!(a[0], "/usr/bin/dockerd");
        assert_eq!(flag_value(&a, DATA_ROOT_FLAGS).as_deref(), Some("/b"));
        let a = split_command(r#"dockerd "--data-root=/my docker" -s overlay2"#);
        assert_eq!(flag_value(&a, DATA_ROOT_FLAGS).as_deref(), Some("/my docker"));
        assert_eq!(flag_value(&a, STORAGE_DRIVER_FLAGS).as_deref(), Some("overlay2"));
    }

    #[test]
    fn load_merges_dropins_by_name() {
        let root = tempfile::tempdir().unwrap();
        let dirs: Vec<PathBuf> = ["etc", "run", "lib"].iter().map(|d| root.path().join(d)).collect();
        for d in &dirs {
            std::fs::create_dir_all(d.join("docker.service.d")).unwrap();
        }
        std::fs::write(dirs[2].join("docker.service"), "[Service]\nExecStart=dockerd\n").unwrap();
        std::fs::write(dirs[2].join("docker.service.d/a.conf"), "[Service]\nExecStart=\nExecStart=dockerd -g /lib\n").unwrap();
        std::fs::write(dirs[0].join("docker.service.d/a.conf"), "[Service]\nExecStart=\nExecStart=dockerd -g /etc\n").unwrap();
        std::fs::write(dirs[1].join("docker.service.d/b.conf"), "[Unit]\nDescription=x\n").unwrap();
        let files = load_unit(&dirs, "docker.service");
        assert_eq!(files.len(), 3);
        let (argv, _) = exec_start(&files).unwrap();
        assert_eq!(flag_value(&argv, DATA_ROOT_FLAGS).as_deref(), Some("/etc"));
    }
}
