//! Command-line types (clap) and their translation into engine options. The
//! engine never sees these types.

pub mod archive_cmds;
pub mod commands;
pub mod docs;
pub mod metrics;
pub mod output;
pub mod pieces;
pub mod progress;
pub mod relocate;
pub mod rootless;
pub mod service_arg;
pub mod signals;
pub mod socket;

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};
use std::path::Path;

use anyhow::Context;

/// What each exit code means; printed by `--help` and the man page, and the
/// codes `main` returns.
pub mod exit {
    pub const OK: i32 = 0;
    pub const DIFFERENCES: i32 = 1;
    pub const REFUSED: i32 = 2;
    pub const HELP: &str = "\
Exit codes:
  0  success
  1  differences found, or some entries failed (each is printed with its path)
  2  refused or bad input; nothing was changed
  3  failed and undone: Docker runs on the old data again
  4  failed, and undoing failed too: act now, the message says what to do;
     or rollback/finalize refused because the trees differ from the journal
     (nothing was changed, see docs/safety.md)";
}

#[derive(Parser, Debug)]
#[command(
    name = "dockroot",
    version,
    about = "Back up, restore and relocate a Docker data-root with full fidelity",
    after_help = exit::HELP
)]
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
    /// Detail on stderr: each phase's time and throughput, the service commands run, what a copy skipped.
    #[arg(short, long, global = true, action = clap::ArgAction::Count)]
    pub verbose: u8,
    /// Worker threads (default: cores + 1).
    #[arg(long, global = true)]
    pub threads: Option<usize>,
    /// The Docker data-root (default: discovered from daemon.json, docker.service, the daemon).
    #[arg(long, global = true, value_name = "PATH")]
    pub data_root: Option<PathBuf>,
    /// How Docker is stopped and started.
    #[arg(long, global = true, value_name = "KIND", default_value = "auto", value_parser = service_arg::ServiceParser)]
    pub service: service_arg::ServiceArg,
    /// Where dockroot keeps its journal, lock and manifests.
    #[arg(long, global = true, value_name = "DIR", default_value = "/var/lib/dockroot")]
    pub state_dir: PathBuf,
    /// The Docker API socket (default: $DOCKER_HOST, the running dockerd's -H, daemon.json `hosts`,
    /// docker.socket, the docker CLI's context, /var/run/docker.sock; `status` says which).
    #[arg(long, global = true, value_name = "PATH")]
    pub docker_socket: Option<PathBuf>,
    /// daemon.json to read and (with --method data-root) edit (default: /etc/docker/daemon.json;
    /// the snap's /var/snap/docker/current/config/daemon.json when only the snap is installed).
    #[arg(long, global = true, value_name = "FILE")]
    pub daemon_config: Option<PathBuf>,
    /// fstab to add the bind line to.
    #[arg(long, global = true, value_name = "FILE", default_value = "/etc/fstab")]
    pub fstab: PathBuf,
    /// A shell command run before Docker is stopped (a database dump, a notification);
    /// if it fails, nothing is stopped and the command exits 2.
    #[arg(long, global = true, value_name = "CMD", help_heading = "Hooks and metrics")]
    pub pre_stop: Option<String>,
    /// A shell command run after Docker answers again (a failure is a warning).
    #[arg(long, global = true, value_name = "CMD", help_heading = "Hooks and metrics")]
    pub post_start: Option<String>,
    /// A shell command run when the command fails, with DOCKROOT_COMMAND,
    /// DOCKROOT_EXIT_CODE and DOCKROOT_ERROR in its environment.
    #[arg(long, global = true, value_name = "CMD", help_heading = "Hooks and metrics")]
    pub on_failure: Option<String>,
    /// Seconds after which a hook and its children are killed.
    #[arg(long, global = true, value_name = "SECS", default_value_t = 300, help_heading = "Hooks and metrics")]
    pub hook_timeout: u64,
    /// Write node-exporter textfile metrics of this run here (atomically; other
    /// operations' samples in the file are kept).
    #[arg(long, global = true, value_name = "FILE", help_heading = "Hooks and metrics")]
    pub metrics_file: Option<PathBuf>,
    /// Rootless Docker: the daemon of user NAME (run by NAME's user manager,
    /// data in ~/.local/share/docker, socket $XDG_RUNTIME_DIR/docker.sock).
    #[arg(long, global = true, value_name = "NAME", conflicts_with = "rootful")]
    pub user: Option<String>,
    /// The system daemon, on a host that also has rootless daemons.
    #[arg(long, global = true)]
    pub rootful: bool,
    /// The rootless daemon chosen (`--user`, or the only daemon there is).
    #[arg(skip)]
    pub rootless: Option<Box<dockroot::docker::rootless::RootlessDaemon>>,
}

impl Global {
    /// A hook of this invocation.
    pub fn hook(&self, point: dockroot::service::hooks::HookPoint) -> Option<dockroot::service::hooks::Hook> {
        use dockroot::service::hooks::{Hook, HookPoint};
        let cmd = match point {
            HookPoint::PreStop => &self.pre_stop,
            HookPoint::PostStart => &self.post_start,
            HookPoint::OnFailure => &self.on_failure,
        };
        cmd.as_ref().map(|c| Hook { point, command: c.clone(), timeout: std::time::Duration::from_secs(self.hook_timeout) })
    }
}

impl Global {
    /// `--daemon-config`, or the daemon.json of the Docker installed here.
    pub fn daemon_json(&self) -> PathBuf {
        self.daemon_config.clone().unwrap_or_else(dockroot::docker::layout::default_daemon_json)
    }

    /// With `--service auto`, the refusal when Docker is installed twice
    /// (docker.service and the snap): which one to stop is the user's call.
    pub fn layout_ambiguity(&self) -> Option<String> {
        if self.service != service_arg::ServiceArg::Auto {
            return None;
        }
        let dirs: Vec<PathBuf> = dockroot::docker::unit::UNIT_DIRS.iter().map(PathBuf::from).collect();
        dockroot::docker::layout::LayoutFacts::new(dockroot::docker::layout::find(&dirs), None, None, None).ambiguity()
    }
}

#[derive(Subcommand, Debug)]
pub enum Command {
    /// Copy SRC into DST as an exact replica, optionally writing SRC's manifest.
    Copy(CopyArgs),
    /// Write the BLAKE3 manifest of a tree.
    Manifest(ManifestArgs),
    /// Check a tree against a manifest; print every difference.
    Verify(VerifyArgs),
    /// Show the data-root, how Docker runs, and (with --to) whether a target can take it.
    Status(StatusArgs),
    /// Relocate the data-root to another disk with a short downtime; undone on failure.
    Move(MoveArgs),
    /// Undo the last move (from any step, also after a crash) and start Docker on the old data.
    Rollback(ConfirmArgs),
    /// After a successful move: delete the old tree and clear the journal.
    Finalize(ConfirmArgs),
    /// Stop Docker, write the data-root to a .tar.zst archive, start Docker again.
    Backup(BackupArgs),
    /// Replace the data-root with a verified archive (or, with --volume, one
    /// volume while Docker runs); undone on failure.
    Restore(RestoreArgs),
    /// Extract one volume or path of an archive into a directory, verified,
    /// touching no engine (for browsing or a manual copy).
    Extract(ExtractArgs),
    /// Show an archive's metadata and Docker objects without extracting it.
    Inspect(InspectArgs),
    /// Print a shell completion script (bash, zsh, fish) on stdout.
    Completions(CompletionsArgs),
    /// Write the man pages (dockroot.1 and one per command) into DIR.
    Manpages(ManpagesArgs),
}

impl Command {
    /// The operation's name, as metrics and hooks know it.
    pub fn name(&self) -> &'static str {
        match self {
            Self::Copy(_) => "copy",
            Self::Manifest(_) => "manifest",
            Self::Verify(_) => "verify",
            Self::Status(_) => "status",
            Self::Move(_) => "move",
            Self::Rollback(_) => "rollback",
            Self::Finalize(_) => "finalize",
            Self::Backup(_) => "backup",
            Self::Restore(_) => "restore",
            Self::Inspect(_) => "inspect",
            Self::Extract(_) => "extract",
            Self::Completions(_) => "completions",
            Self::Manpages(_) => "manpages",
        }
    }
}

#[derive(Args, Debug)]
pub struct CompletionsArgs {
    #[arg(value_enum)]
    pub shell: docs::ShellArg,
}

#[derive(Args, Debug)]
pub struct ManpagesArgs {
    /// The directory to write the pages to (created if missing).
    pub dir: PathBuf,
}

#[derive(Args, Debug)]
pub struct StatusArgs {
    /// A prospective target directory to check.
    #[arg(long, value_name = "PATH")]
    pub to: Option<PathBuf>,
}

#[derive(clap::ValueEnum, Debug, Clone, Copy, PartialEq, Eq)]
pub enum MethodArg {
    /// Bind-mount the target on the old data-root path (fstab line).
    Bind,
    /// Point data-root in daemon.json at the target.
    DataRoot,
}

#[derive(Args, Debug)]
pub struct MoveArgs {
    /// The new location (absent or empty directory).
    #[arg(long, value_name = "PATH", required_unless_present = "resume")]
    pub to: Option<PathBuf>,
    #[arg(long, value_enum, default_value = "bind")]
    pub method: MethodArg,
    /// With the containerd image store: where containerd's root goes
    /// (absent or empty directory; default: beside --to, e.g. /mnt/data/containerd for --to /mnt/data/docker).
    #[arg(long, value_name = "PATH")]
    pub containerd_to: Option<PathBuf>,
    /// Move containerd's root even when namespaces other than Docker's
    /// (e.g. k8s.io of a kubelet) use it: containerd is stopped, so their
    /// containers stop too, and their images move with Docker's.
    #[arg(long)]
    pub shared_store: bool,
    /// Skip the copy while Docker runs (longer downtime).
    #[arg(long)]
    pub no_precopy: bool,
    /// Print the plan and exit without changing anything.
    #[arg(long)]
    pub dry_run: bool,
    /// After an interrupted move: restore the pre-move state from the journal,
    /// then run the move again from the start (to the journaled target).
    #[arg(long)]
    pub resume: bool,
    #[command(flatten)]
    pub confirm: ConfirmArgs,
}

#[derive(Args, Debug)]
pub struct ConfirmArgs {
    /// Do not ask for confirmation.
    #[arg(long, short = 'y')]
    pub yes: bool,
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
    /// A tree (with --manifest), or a backup archive (`-`: stdin, e.g. from `restic dump`).
    pub path: PathBuf,
    #[arg(long)]
    pub manifest: Option<PathBuf>,
}

#[derive(Args, Debug)]
pub struct BackupArgs {
    /// Archive file (its directory must exist), existing directory (DIR/: a timestamped
    /// name inside it) or `-` for stdout.
    #[arg(short, long, required_unless_present = "restic", conflicts_with = "restic")]
    pub output: Option<PathBuf>,
    /// Stream the archive (uncompressed) into this restic repository as a
    /// snapshot tagged `dockroot`, then read it back and verify it. The password
    /// and options come from restic's own environment (RESTIC_PASSWORD_FILE, ...).
    #[arg(long, value_name = "REPO", help_heading = "restic")]
    pub restic: Option<String>,
    /// With --restic, after the new snapshot verified: `restic forget --prune
    /// --keep-last N` over dockroot's snapshots of this host.
    #[arg(long, value_name = "N", requires = "restic", help_heading = "restic")]
    pub keep_last: Option<u32>,
    /// With --restic: keep the newest snapshot of each of the last N days.
    #[arg(long, value_name = "N", requires = "restic", help_heading = "restic")]
    pub keep_daily: Option<u32>,
    /// With --restic: keep the newest snapshot of each of the last N weeks.
    #[arg(long, value_name = "N", requires = "restic", help_heading = "restic")]
    pub keep_weekly: Option<u32>,
    /// With --restic: keep the newest snapshot of each of the last N months.
    #[arg(long, value_name = "N", requires = "restic", help_heading = "restic")]
    pub keep_monthly: Option<u32>,
    /// With -o DIR/: keep only the newest N dockroot archives there.
    #[arg(long, value_name = "N")]
    pub keep: Option<usize>,
    /// Leave out /etc/docker and the docker.service drop-ins.
    #[arg(long)]
    pub no_config: bool,
    /// Stop Docker for the whole archive (one pass). By default the backup
    /// is live: phase 1 archives while Docker runs, phase 2 (Docker stopped)
    /// appends what changed since and the deletion list.
    #[arg(long)]
    pub stop_the_world: bool,
    /// With the containerd image store: archive containerd's root even when other
    /// namespaces (e.g. a kubelet's `k8s.io`) share it. Their images and snapshots
    /// are then in the archive too, and a restore puts them back with Docker's.
    #[arg(long)]
    pub shared_store: bool,
    /// zstd level (1-19).
    #[arg(long, default_value_t = 3, value_parser = clap::value_parser!(i32).range(1..=19))]
    pub level: i32,
    /// `none` writes a plain tar stream, for a deduplicating store such as restic
    /// (`-o - --compress none | restic backup --stdin`).
    #[arg(long, value_enum, default_value = "zstd")]
    pub compress: CompressArg,
    /// Docker is down only while the stopped data-root is snapshotted on its
    /// own filesystem, then the archive is read from the snapshot: `btrfs`
    /// (the data-root is a subvolume), `reflink` (xfs reflink=1, btrfs: a
    /// metadata-only clone), `auto` (btrfs, else reflink, else none), `none`
    /// (Docker stays stopped for the whole archive).
    #[arg(long, value_enum, default_value = "auto")]
    pub snapshot: SnapshotArg,
    /// Bind-mount sources of the containers (app data outside the data-root):
    /// `auto` carries every one that is a directory or a regular file outside
    /// the data-root and not host plumbing (docs/whole-engine-backup.md);
    /// `none` carries none (each is named as skipped).
    #[arg(long, value_enum, default_value = "auto")]
    pub binds: BindsArg,
    /// Leave this bind source (and what is below it) out; repeatable.
    #[arg(long, value_name = "PATH")]
    pub exclude_bind: Vec<PathBuf>,
    /// Print the plan and change nothing.
    #[arg(long)]
    pub dry_run: bool,
}

#[derive(clap::ValueEnum, Debug, Clone, Copy, PartialEq, Eq)]
pub enum BindsArg {
    Auto,
    None,
}

#[derive(clap::ValueEnum, Debug, Clone, Copy, PartialEq, Eq)]
pub enum SnapshotArg {
    Auto,
    Btrfs,
    Reflink,
    None,
}

#[derive(clap::ValueEnum, Debug, Clone, Copy, PartialEq, Eq)]
pub enum CompressArg {
    /// A multi-threaded zstd frame with checksums (.tar.zst).
    Zstd,
    /// No compression (.tar); restore and verify read both.
    None,
}

#[derive(Args, Debug)]
#[command(group = clap::ArgGroup::new("one_piece").args(["volume", "bind"]))]
pub struct RestoreArgs {
    /// The archive, `-` for stdin, or `restic:REPO[:SNAPSHOT|latest]` (latest: this host's newest dockroot snapshot).
    pub archive: PathBuf,
    /// Restore only this volume, while Docker and every container that does
    /// not use it keep running (see docs/restore-pieces.md).
    #[arg(long, value_name = "NAME", conflicts_with_all = ["force", "shared_store", "allow_downgrade", "with_config"])]
    pub volume: Option<String>,
    /// Restore only this bind source (an app's data outside the data-root,
    /// as `inspect` lists it), while Docker and every container that does
    /// not mount it keep running; its current files are kept aside.
    #[arg(long, value_name = "PATH", conflicts_with_all = ["volume", "force", "shared_store", "allow_downgrade", "with_config", "remap_ids"])]
    pub bind: Option<PathBuf>,
    /// With --volume: restore it as this volume (created if missing).
    #[arg(long = "as", value_name = "NEWNAME", requires = "volume")]
    pub as_name: Option<String>,
    /// With --volume or --bind: stop the containers that use it for the
    /// swap and start them again afterwards (without it, they are named and
    /// the restore is refused).
    #[arg(long, requires = "one_piece")]
    pub stop_containers: bool,
    /// Replace a non-empty data-root (it is kept aside).
    #[arg(long)]
    pub force: bool,
    /// With the containerd image store: replace containerd's root even when other
    /// namespaces (e.g. a kubelet's `k8s.io`), in the archive or on this host, share
    /// it. The whole store is restored; the current one is kept aside.
    #[arg(long)]
    pub shared_store: bool,
    /// Restore an archive written by a newer Docker than the installed one
    /// (Docker supports upgrading a data-root, not downgrading it).
    #[arg(long)]
    pub allow_downgrade: bool,
    /// Also restore /etc/docker and docker.service drop-ins from the archive (backups kept).
    #[arg(long)]
    pub with_config: bool,
    /// Rootless Docker onto a host whose user or /etc/subuid, /etc/subgid ranges
    /// differ from the archive's: shift every uid and gid (file owners, ACLs,
    /// file capabilities) so each keeps its in-container id.
    #[arg(long)]
    pub remap_ids: bool,
    /// Print the plan and change nothing.
    #[arg(long)]
    pub dry_run: bool,
    /// Do not ask for confirmation.
    #[arg(short, long)]
    pub yes: bool,
}

#[derive(Args, Debug)]
#[command(group = clap::ArgGroup::new("piece").required(true).args(["volume", "bind", "path"]))]
pub struct ExtractArgs {
    /// The archive file (a `.tar.zst` or `.tar` written by `dockroot backup`).
    pub archive: PathBuf,
    /// The files of this volume (its `_data`).
    #[arg(long, value_name = "NAME")]
    pub volume: Option<String>,
    /// The files of this bind source, as `inspect` lists it (a file bind
    /// comes out as a directory holding the file).
    #[arg(long, value_name = "PATH")]
    pub bind: Option<PathBuf>,
    /// The subtree at this path below the data-root, e.g. `containers/ID` or
    /// `volumes/NAME` (an absolute path below the archived data-root works too).
    #[arg(long, value_name = "PREFIX")]
    pub path: Option<PathBuf>,
    /// The directory to extract into: absent (created) or empty. It takes
    /// the owner, mode and times of the piece's root.
    #[arg(short, long, value_name = "DIR")]
    pub output: PathBuf,
}

#[derive(Args, Debug)]
pub struct InspectArgs {
    pub archive: PathBuf,
}

/// A missing archive file is a typo, not a damaged archive: say so before
/// anything else reads it.
pub(crate) fn archive_exists(p: &Path) -> anyhow::Result<()> {
    let restic = p.to_str().is_some_and(|s| s.starts_with("restic:"));
    if p != Path::new("-") && !restic {
        std::fs::metadata(p).with_context(|| format!("archive {}: check the path", p.display()))?;
    }
    Ok(())
}
