//! dockroot's binary: parse the command line, dispatch, map errors to exit
//! codes (see `cli::exit`). All the work is in the library.

#![deny(unsafe_code)]

mod cli;

use clap::Parser;

use cli::{Cli, Command, exit, output::Output};

fn main() {
    // At start, before anything opens files: walks and extraction size their windows from it.
    dockroot::sys::raise_nofile_limit();
    let args = Cli::parse();
    let out = Output::new(&args.global);
    let source = match &args.command {
        Command::Copy(a) => Some(a.src.clone()),
        Command::Manifest(a) => Some(a.path.clone()),
        Command::Verify(a) if a.manifest.is_some() => Some(a.path.clone()),
        Command::Backup(_) => args.global.data_root.clone(),
        _ => None,
    };
    let estimate = move || source.map(|p| dockroot::tree::estimate::estimate(&p));
    let progress = cli::progress::make(args.global.quiet, args.global.json, args.global.verbose > 0, estimate);
    let g = &args.global;
    let r = match &args.command {
        Command::Copy(a) => cli::commands::copy(a, g, &out, progress.as_ref()),
        Command::Manifest(a) => cli::commands::manifest(a, g, &out, progress.as_ref()),
        Command::Verify(a) if a.manifest.is_none() => cli::archive_cmds::verify_archive(a, &out),
        Command::Verify(a) => cli::commands::verify(a, g, &out, progress.as_ref()),
        Command::Status(a) => cli::relocate::status(a, g, &out),
        Command::Move(a) => cli::relocate::move_(a, g, &out, progress.as_ref()),
        Command::Rollback(a) => cli::relocate::rollback(a, g, &out, progress.as_ref()),
        Command::Finalize(a) => cli::relocate::finalize(a, g, &out, progress.as_ref()),
        Command::Backup(a) => cli::archive_cmds::backup(a, g, &out, progress.as_ref()),
        Command::Restore(a) => cli::archive_cmds::restore(a, g, &out, progress.as_ref()),
        Command::Inspect(a) => cli::archive_cmds::inspect(a, &out),
        Command::Completions(a) => {
            cli::docs::completions(a.shell, &mut std::io::stdout());
            Ok(exit::OK)
        }
        Command::Manpages(a) => cli::docs::manpages(&a.dir).map(|names| {
            out.say(&format!("wrote {} man pages to {}", names.len(), a.dir.display()));
            exit::OK
        }),
    };
    let code = match r {
        Ok(code) => code,
        Err(e) => {
            let text = cli::output::error_text(&e);
            out.problem(&text);
            if g.json {
                println!("{}", serde_json::json!({"ok": false, "error": text}));
            }
            // 3: failed and undone, 4: the undo failed too (see PlanError::exit_code).
            e.downcast_ref::<dockroot::plan::backup::error::BackupError>()
                .map(|b| b.exit_code())
                .filter(|c| *c >= 3)
                .unwrap_or(exit::REFUSED)
        }
    };
    std::process::exit(code);
}
