//! dockroot's binary: parse the command line, dispatch, map errors to exit
//! codes (see `cli::exit`). All the work is in the library.

#![deny(unsafe_code)]

mod cli;

use clap::Parser;

use cli::{Cli, Command, exit, output::Output};

fn main() {
    // At start, before anything opens files: walks and extraction size their windows from it.
    dockroot::sys::raise_nofile_limit();
    let mut args = Cli::parse();
    let out = Output::new(&args.global);
    // Which daemon (system or a user's rootless one) the command is for.
    let lenient = matches!(args.command, Command::Status(_));
    if matches!(args.command, Command::Status(_) | Command::Move(_) | Command::Backup(_) | Command::Restore(_))
        && let Err(e) = cli::rootless::select(&mut args.global, lenient)
    {
        out.problem(&cli::output::error_text(&e));
        std::process::exit(exit::REFUSED);
    }
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
    let started = std::time::Instant::now();
    dockroot::service::hooks::install(dockroot::service::hooks::Hooks::new(
        g.hook(dockroot::service::hooks::HookPoint::PreStop),
        g.hook(dockroot::service::hooks::HookPoint::PostStart),
    ));
    // The commands that stop Docker say what a signal does to them.
    match &args.command {
        Command::Move(_) | Command::Backup(_) | Command::Restore(_) => cli::signals::report(cli::signals::OnSignal::Undo),
        Command::Rollback(_) | Command::Finalize(_) => cli::signals::report(cli::signals::OnSignal::Finish),
        _ => {}
    }
    let r = match &args.command {
        Command::Move(_) | Command::Backup(_) | Command::Restore(_) if let Some(why) = g.layout_ambiguity() => Err(anyhow::anyhow!(why)),
        Command::Copy(a) => cli::commands::copy(a, g, &out, progress.as_ref()),
        Command::Manifest(a) => cli::commands::manifest(a, g, &out, progress.as_ref()),
        Command::Verify(a) if a.manifest.is_none() => cli::archive_cmds::verify_archive(a, &out),
        Command::Verify(a) => cli::commands::verify(a, g, &out, progress.as_ref()),
        Command::Status(a) => cli::relocate::status(a, g, &out),
        Command::Move(a) => cli::relocate::move_(a, g, &out, progress.as_ref()),
        Command::Rollback(a) => cli::relocate::rollback(a, g, &out, progress.as_ref()),
        Command::Finalize(a) => cli::relocate::finalize(a, g, &out, progress.as_ref()),
        Command::Backup(a) => cli::archive_cmds::backup(a, g, &out, progress.as_ref()),
        Command::Restore(a) if a.volume.is_some() => cli::pieces::restore_volume(a, g, &out, progress.as_ref(), |q| {
            cli::output::confirm(a.yes, q, false).map_err(anyhow::Error::msg)
        }),
        Command::Restore(a) if a.bind.is_some() => {
            cli::pieces::restore_bind(a, g, &out, progress.as_ref(), |q| cli::output::confirm(a.yes, q, false).map_err(anyhow::Error::msg))
        }
        Command::Restore(a) => cli::archive_cmds::restore(a, g, &out, progress.as_ref()),
        Command::Extract(a) => cli::pieces::extract(a, g, &out, progress.as_ref()),
        Command::Inspect(a) => cli::archive_cmds::inspect(a, &out),
        Command::Completions(a) => {
            let mut script = Vec::new();
            cli::docs::completions(a.shell, &mut script);
            cli::output::out_bytes(&script);
            Ok(exit::OK)
        }
        Command::Manpages(a) => cli::docs::manpages(&a.dir).map(|names| {
            out.say(&format!("wrote {} man pages to {}", names.len(), a.dir.display()));
            exit::OK
        }),
    };
    let mut error = None;
    let code = match r {
        Ok(code) => code,
        Err(e) => {
            let text = cli::output::error_text(&e);
            out.problem(&text);
            let runs = dockroot::service::hooks::installed().runs();
            if g.json {
                cli::output::out_line(&serde_json::json!({"ok": false, "error": text, "hooks": runs}).to_string());
            }
            error = Some(text);
            // 3: failed and undone, 4: the undo failed too (see PlanError::exit_code).
            e.downcast_ref::<dockroot::plan::PlanError>().map(|p| p.exit_code()).filter(|c| *c >= 3).unwrap_or(exit::REFUSED)
        }
    };
    cli::metrics::after(g, &out, args.command.name(), code, error.as_deref(), started, progress.as_ref());
    std::process::exit(code);
}
