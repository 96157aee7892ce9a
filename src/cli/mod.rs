//! Command-line interface: flags (clap), output shapes, exit codes.
//!
//! Exit codes: 0 success, 1 failure, 2 usage error. Errors print as one line
//! on stderr: `pgsnap: error: <what failed>: <why> (<what to do>)`.

mod args;
mod output;
mod repo_cmds;

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
    match cli.command {
        Command::List(a) => repo_cmds::list(a).await,
        Command::Show(a) => repo_cmds::show(a).await,
    }
}
