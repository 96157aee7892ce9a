//! Command-line interface: flags (clap), output shapes, exit codes.
//!
//! Exit codes: 0 success, 1 failure, 2 usage error. Errors print as one line
//! on stderr: `pgsnap: error: <what failed>: <why> (<what to do>)`.

mod args;
mod backup_cmd;
mod output;
mod progress;
mod repo_cmds;
mod restore_cmd;

use std::process::ExitCode;

use clap::Parser;

pub use args::{Cli, Command};

/// Exit status for a failure the user can fix by changing the invocation.
const EXIT_USAGE: u8 = 2;
const EXIT_FAILURE: u8 = 1;

pub fn main() -> ExitCode {
    let cli = Cli::parse();
    output::init_logging(cli.verbose, cli.quiet);
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("pgsnap: error: cannot start the async runtime: {e}");
            return ExitCode::from(EXIT_FAILURE);
        }
    };
    let result = runtime.block_on(run(cli));
    runtime.shutdown_timeout(std::time::Duration::from_secs(2));
    match result {
        Ok(code) => code,
        Err(e) => {
            let usage = e
                .downcast_ref::<pgsnap::Error>()
                .map(|e| e.is_usage())
                .unwrap_or(false);
            let msg = format!("{e:#}").replace('\n', " ");
            eprintln!("pgsnap: error: {msg}");
            ExitCode::from(if usage { EXIT_USAGE } else { EXIT_FAILURE })
        }
    }
}

async fn run(cli: Cli) -> anyhow::Result<ExitCode> {
    let quiet = cli.quiet;
    match cli.command {
        Command::Backup(a) => backup_cmd::run(a, quiet).await,
        Command::Restore(a) => restore_cmd::restore(a, quiet).await,
        Command::Verify(a) => restore_cmd::verify(a).await,
        Command::Key(k) => restore_cmd::key(k),
        Command::List(a) => repo_cmds::list(a).await,
        Command::Show(a) => repo_cmds::show(a).await,
    }
}
