//! Command-line types (clap) and their translation into engine options. The
//! engine never sees these types.

pub mod commands;
pub mod output;
pub mod progress;

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};

#[derive(Parser, Debug)]
#[command(name = "dockroot", version, about = "Back up, restore and relocate a Docker data-root with full fidelity")]
pub struct Cli {
    #[command(flatten)]
    pub global: Global,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Args, Debug, Clone)]
pub struct Global {
    /// Print nothing but errors.
    #[arg(short, long, global = true)]
    pub quiet: bool,
    /// Print a machine-readable JSON summary on stdout.
    #[arg(long, global = true)]
    pub json: bool,
    /// More detail (repeat for more).
    #[arg(short, long, global = true, action = clap::ArgAction::Count)]
    pub verbose: u8,
    /// Worker threads (default: cores + 1).
    #[arg(long, global = true)]
    pub threads: Option<usize>,
}

#[derive(Subcommand, Debug)]
pub enum Command {
    /// Copy SRC into DST as an exact replica, optionally writing SRC's manifest.
    Copy(CopyArgs),
    /// Write the BLAKE3 manifest of a tree.
    Manifest(ManifestArgs),
    /// Check a tree against a manifest; print every difference.
    Verify(VerifyArgs),
}

#[derive(Args, Debug)]
pub struct CopyArgs {
    pub src: PathBuf,
    pub dst: PathBuf,
    /// Write SRC's manifest here (computed from the bytes as they are copied).
    #[arg(long)]
    pub manifest: Option<PathBuf>,
    /// Re-read DST afterwards and check it against the manifest.
    #[arg(long)]
    pub verify: bool,
    /// DST may hold an earlier copy: rewrite only what changed, remove what SRC lacks.
    #[arg(long)]
    pub delete: bool,
    /// With --delete: the manifest written by the earlier copy; files whose inode,
    /// ctime, size and mtime match it are not reread.
    #[arg(long, requires = "delete")]
    pub baseline: Option<PathBuf>,
    /// With --delete: compare file contents in full to find changes.
    #[arg(long, requires = "delete")]
    pub checksum: bool,
    /// SRC is still changing: count entries that vanish or change instead of failing.
    #[arg(long)]
    pub live: bool,
    /// Turn aligned 4 KiB zero blocks into holes (like rsync -S) and report the bytes saved.
    #[arg(long)]
    pub sparsify: bool,
}

#[derive(Args, Debug)]
pub struct ManifestArgs {
    pub path: PathBuf,
    /// Output file (default: stdout).
    #[arg(short, long, default_value = "-")]
    pub output: PathBuf,
}

#[derive(Args, Debug)]
pub struct VerifyArgs {
    pub path: PathBuf,
    #[arg(long)]
    pub manifest: PathBuf,
}
