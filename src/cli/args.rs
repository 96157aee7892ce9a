//! Every flag of every subcommand. These names are public interface:
//! scripts and runbooks depend on them.

use clap::{Args, Parser, Subcommand};

#[derive(Parser, Debug)]
#[command(
    name = "pgsnap",
    version,
    about = "Native, encrypted, seekable PostgreSQL backups",
    long_about = "pgsnap backs up PostgreSQL over its own protocol into compressed, encrypted, \
                  seekable archives, and restores whole databases or single tables from them.",
    after_help = "Examples:\n  \
        pgsnap key generate --out /etc/pgsnap/backup.key\n  \
        pgsnap backup --db postgres://app@db/app --repo /backups --key-file /etc/pgsnap/backup.key\n  \
        pgsnap list --repo /backups\n  \
        pgsnap show --repo /backups latest\n\n\
        Exit codes: 0 success, 1 failure, 2 usage error."
)]
pub struct Cli {
    /// More log output on stderr (-v info, -vv debug).
    #[arg(short, long, action = clap::ArgAction::Count, global = true)]
    pub verbose: u8,
    /// Only errors on stderr; no progress.
    #[arg(short, long, global = true)]
    pub quiet: bool,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Subcommand, Debug)]
pub enum Command {
    /// List the backups in a repository.
    #[command(after_help = "Examples:\n  pgsnap list --repo /backups\n  \
        pgsnap list --repo /backups --json | jq '.[] | select(.status == \"complete\") | .id'")]
    List(ListArgs),
    /// Show one backup's manifest: sizes, tables, timings.
    #[command(after_help = "Examples:\n  pgsnap show --repo /backups latest\n  \
        pgsnap show --repo /backups 20261125T020000Z-3f9a --json")]
    Show(ShowArgs),
}

#[derive(Args, Debug)]
pub struct RepoArg {
    /// Repository location: a directory.
    #[arg(long, value_name = "PATH", env = "PGSNAP_REPO")]
    pub repo: String,
}

#[derive(Args, Debug)]
pub struct ListArgs {
    #[command(flatten)]
    pub repo: RepoArg,
    /// One JSON array on stdout.
    #[arg(long)]
    pub json: bool,
}

#[derive(Args, Debug)]
pub struct ShowArgs {
    #[command(flatten)]
    pub repo: RepoArg,
    /// Backup id, or `latest` for the newest complete backup.
    #[arg(value_name = "ID|latest")]
    pub id: String,
    /// One JSON object on stdout.
    #[arg(long)]
    pub json: bool,
}
