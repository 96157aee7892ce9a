//! Command-line interface: flags (clap), output shapes, exit codes.
//!
//! Exit codes: 0 success, 1 failure, 2 usage error. Errors print as one line
//! on stderr: `pgsnap: error: <what failed>: <why> (<what to do>)`; with
//! `--json`, stdout's last line is then `{"ok":false,"error":...,"exit_code":N}`.

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
    let json = cli.command.json();
    let result = runtime.block_on(run(cli));
    runtime.shutdown_timeout(std::time::Duration::from_secs(2));
    match result {
        Ok(code) => code,
        Err(e) => {
            let usage = e
                .downcast_ref::<pgsnap::Error>()
                .map(|e| e.is_usage())
                .unwrap_or(false);
            let code = if usage { EXIT_USAGE } else { EXIT_FAILURE };
            let line = one_line(&e);
            eprintln!("pgsnap: error: {line}");
            if json {
                // A script reading the last stdout line gets an object on
                // failure too, not an empty line.
                println!(
                    "{}",
                    serde_json::json!({ "ok": false, "error": line, "exit_code": code })
                );
            }
            ExitCode::from(code)
        }
    }
}

/// The error and its causes on one line, outermost first. The chain stops at
/// the first library error: its message already carries its source's text
/// (`{path}: {source}`), so `{e:#}` would print the OS error twice.
fn one_line(e: &anyhow::Error) -> String {
    let mut parts = Vec::new();
    for cause in e.chain() {
        parts.push(cause.to_string());
        if cause.downcast_ref::<pgsnap::Error>().is_some() {
            break;
        }
    }
    parts.join(": ").replace('\n', " ")
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
