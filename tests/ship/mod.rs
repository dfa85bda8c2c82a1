//! What a user or a script sees first: exit codes, error texts, `--help`,
//! socket discovery, the packages (.deb, static binary) and off-site
//! backups through restic.

mod cli;
mod fleet;
mod offsite;
mod package;
mod restic;
mod socket;
mod timer;
