//! `dockroot completions SHELL` and `dockroot manpages DIR`: generated from
//! the clap definition, so they never disagree with `--help`. The .deb
//! (scripts/package.sh) installs their output.

use std::path::Path;

use anyhow::{Context, Result};
use clap::CommandFactory;

use super::Cli;

/// The shells `completions` supports.
#[derive(clap::ValueEnum, Debug, Clone, Copy, PartialEq, Eq)]
pub enum ShellArg {
    Bash,
    Zsh,
    Fish,
}

/// Writes the completion script for `shell` to `out`.
pub fn completions(shell: ShellArg, out: &mut dyn std::io::Write) {
    let shell = match shell {
        ShellArg::Bash => clap_complete::Shell::Bash,
        ShellArg::Zsh => clap_complete::Shell::Zsh,
        ShellArg::Fish => clap_complete::Shell::Fish,
    };
    clap_complete::generate(shell, &mut Cli::command(), "dockroot", out);
}

/// Writes `dockroot.1` and `dockroot-COMMAND.1` for each command into `dir`;
/// returns the file names.
pub fn manpages(dir: &Path) -> Result<Vec<String>> {
    std::fs::create_dir_all(dir).with_context(|| format!("create {}", dir.display()))?;
    let mut cmd = Cli::command();
    cmd.build();
    let mut names = Vec::new();
    let mut write = |name: String, c: clap::Command| -> Result<()> {
        let mut buf = Vec::new();
        clap_mangen::Man::new(c).render(&mut buf).with_context(|| format!("render {name}"))?;
        let path = dir.join(&name);
        std::fs::write(&path, buf).with_context(|| format!("write {}", path.display()))?;
        names.push(name);
        Ok(())
    };
    for sub in cmd.get_subcommands().filter(|s| !s.is_hide_set() && s.get_name() != "help") {
        let name = format!("dockroot-{}", sub.get_name());
        write(format!("{name}.1"), sub.clone().name(name.clone()).version(env!("CARGO_PKG_VERSION")).after_help(super::exit::HELP))?;
    }
    write("dockroot.1".into(), cmd)?;
    names.sort();
    Ok(names)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn completions_name_every_command() {
        for shell in [ShellArg::Bash, ShellArg::Zsh, ShellArg::Fish] {
            let mut out = Vec::new();
            completions(shell, &mut out);
            let text = String::from_utf8(out).unwrap();
            for word in ["backup", "restore", "rollback", "docker-socket", "pidfile"] {
                assert!(text.contains(word), "{shell:?} lacks {word}");
            }
        }
    }

    #[test]
    fn a_man_page_per_command() {
        let d = tempfile::tempdir().unwrap();
        let names = manpages(d.path()).unwrap();
        assert!(names.contains(&"dockroot.1".to_string()) && names.contains(&"dockroot-move.1".to_string()), "{names:?}");
        let main = std::fs::read_to_string(d.path().join("dockroot.1")).unwrap();
        assert!(main.starts_with(".ie") || main.contains(".TH dockroot"), "{}", &main[..200]);
        assert!(main.contains("Exit codes") && main.contains("failed and undone"));
        let mv = std::fs::read_to_string(d.path().join("dockroot-move.1")).unwrap();
        assert!(mv.contains("\\-\\-no\\-precopy") || mv.contains("no-precopy"), "{mv}");
        assert!(mv.contains("failed and undone"), "{mv}");
    }
}
