//! Command-line interface: flags (clap), output shapes, exit codes.
//!
//! Exit codes: 0 success, 1 failure, 2 usage error, 75 nothing done and the
//! same command will succeed later (an archive being thawed); 130 and 143
//! after SIGINT and SIGTERM, 141 into a closed pipe. Errors print as one line
//! on stderr: `pgsnap: error: <what failed>: <why> (<what to do>)`; with
//! `--json`, stdout's last line is then `{"ok":false,"error":...,"exit_code":N}`.

/// `out!` for what the commands print on stdout: a reader that went
/// away (`pgsnap list | head -1`) ends the process quietly with status 141,
/// as SIGPIPE ends a C tool (Rust ignores SIGPIPE, and `out!` panics).
macro_rules! out {
    () => {
        $crate::cli::output::line(format_args!(""))
    };
    ($($arg:tt)*) => {
        $crate::cli::output::line(format_args!($($arg)*))
    };
}

/// `eprintln!` that never panics: stderr on a full disk or a closed pipe
/// made the message's own write panic, then the panic hook's, and the
/// process abort (134) without a word, in the middle of a restore too
/// (QA). What cannot be written is lost; the exit status still says it.
macro_rules! err {
    ($($arg:tt)*) => {{
        use std::io::Write as _;
        let _ = writeln!(std::io::stderr(), $($arg)*);
    }};
}

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
/// Nothing was done; the same command succeeds later (an archive being
/// thawed). sysexits' EX_TEMPFAIL.
const EXIT_RETRY_LATER: u8 = 75;

pub fn main() -> ExitCode {
    // A bug must still read as one error line, not a thread's panic
    // message and (with RUST_BACKTRACE set) pages of trace.
    std::panic::set_hook(Box::new(|info| {
        let p = info.payload();
        let msg = p
            .downcast_ref::<&str>()
            .map(|s| s.to_string())
            .or_else(|| p.downcast_ref::<String>().cloned())
            .unwrap_or_default();
        let at = info
            .location()
            .map(|l| format!(" at {}:{}", l.file(), l.line()))
            .unwrap_or_default();
        err!(
            "pgsnap: error: internal error{at}: {}; this is a bug in pgsnap: please report it \
             with the command that was run",
            msg.replace(['\n', '\r'], " ")
        );
    }));
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => return parse_error(e),
    };
    output::init_logging(cli.verbose, cli.quiet);
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            err!("pgsnap: error: cannot start the async runtime: {e}");
            return ExitCode::from(EXIT_FAILURE);
        }
    };
    let json = cli.command.json();
    let (result, signal) = runtime.block_on(run_until_signalled(cli));
    runtime.shutdown_timeout(std::time::Duration::from_secs(2));
    match result {
        Ok(code) => match output::stdout_failure() {
            Some(why) if code == ExitCode::SUCCESS => {
                err!("pgsnap: error: the command's output could not be written to stdout: {why}");
                ExitCode::from(EXIT_FAILURE)
            }
            _ => code,
        },
        Err(e) => {
            let lib = e.downcast_ref::<pgsnap::Error>();
            let usage = lib.is_some_and(|e| e.is_usage());
            let later = lib.is_some_and(|e| e.is_retry_later());
            let code = match signal {
                Some(s) => s.exit_code(),
                None if usage => EXIT_USAGE,
                None if later => EXIT_RETRY_LATER,
                None => EXIT_FAILURE,
            };
            let line = one_line(&e);
            err!("pgsnap: error: {line}");
            if json {
                // A script reading the last stdout line gets an object on
                // failure too, not an empty line.
                out!(
                    "{}",
                    serde_json::json!({ "ok": false, "error": line, "exit_code": code })
                );
            }
            ExitCode::from(code)
        }
    }
}

/// clap's own message for a bad command line (help and version print as
/// usual); with `--json` among the arguments, stdout also ends with the
/// failure object a script expects.
fn parse_error(e: clap::Error) -> ExitCode {
    let code = e.exit_code();
    if code != 0 {
        // One line, as every error: clap's usage block after it named
        // flags as required that are not (`--quiet`, QA).
        let line = match e.kind() {
            // clap's text here is the whole help, whose first line is the
            // program's description: no error at all on one line (QA).
            clap::error::ErrorKind::MissingSubcommand
            | clap::error::ErrorKind::DisplayHelpOnMissingArgumentOrSubcommand => {
                clap_one_line("a subcommand is required")
            }
            _ => clap_one_line(&e.to_string()),
        };
        err!("pgsnap: error: {line}");
        if std::env::args().any(|a| a == "--json") {
            out!(
                "{}",
                serde_json::json!({ "ok": false, "error": line, "exit_code": code })
            );
        }
        return ExitCode::from(u8::try_from(code).unwrap_or(EXIT_USAGE));
    }
    let printed = e.print();
    // --help or --version that could not be written (a full disk): not a
    // success, as for every command's output.
    if code == 0 {
        if let Err(why) = printed {
            // `pgsnap --help | head`: as any output into a closed pipe.
            if why.kind() == std::io::ErrorKind::BrokenPipe {
                return ExitCode::from(141);
            }
            err!("pgsnap: error: the command's output could not be written to stdout: {why}");
            return ExitCode::from(EXIT_FAILURE);
        }
    }
    ExitCode::from(u8::try_from(code).unwrap_or(EXIT_USAGE))
}

/// clap's error text on one line: its message and tips, without the usage
/// block, and where the usage is.
fn clap_one_line(text: &str) -> String {
    let mut parts = text.split("\n\n");
    let first = parts.next().unwrap_or_default();
    let first = first.strip_prefix("error: ").unwrap_or(first);
    let mut line = first.split_whitespace().collect::<Vec<_>>().join(" ");
    for tip in parts.map(str::trim).filter(|p| p.starts_with("tip:")) {
        line.push_str("; ");
        line.push_str(&tip.split_whitespace().collect::<Vec<_>>().join(" "));
    }
    let sub = std::env::args()
        .skip(1)
        .find(|a| ["backup", "restore", "verify", "key", "list", "show"].contains(&a.as_str()));
    match sub {
        Some(sub) => line.push_str(&format!(" (see pgsnap {sub} --help)")),
        None => line.push_str(" (see pgsnap --help)"),
    }
    line
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

/// SIGINT (Ctrl-C) and SIGTERM (systemd, Kubernetes, a scheduler's
/// timeout) end a run with a message instead of killing it mid-write.
#[derive(Clone, Copy)]
enum Signal {
    Interrupt,
    Terminate,
}

impl Signal {
    fn name(self) -> &'static str {
        match self {
            Signal::Interrupt => "SIGINT",
            Signal::Terminate => "SIGTERM",
        }
    }

    /// 128 + the signal's number, as shells report a process it ended.
    fn exit_code(self) -> u8 {
        match self {
            Signal::Interrupt => 130,
            Signal::Terminate => 143,
        }
    }
}

/// The next SIGINT or SIGTERM. Once this has been polled, those signals no
/// longer end the process by themselves.
async fn signalled() -> Signal {
    use tokio::signal::unix::{signal, SignalKind};
    match (
        signal(SignalKind::interrupt()),
        signal(SignalKind::terminate()),
    ) {
        (Ok(mut int), Ok(mut term)) => tokio::select! {
            _ = int.recv() => Signal::Interrupt,
            _ = term.recv() => Signal::Terminate,
        },
        // No handlers: the signals keep their default action.
        _ => std::future::pending().await,
    }
}

/// Runs the command; on a signal a backup is told to stop and cleans up
/// (its archive discarded, nothing listed) before the error returns; other
/// commands stop where they are. A second signal stops at once.
async fn run_until_signalled(cli: Cli) -> (anyhow::Result<ExitCode>, Option<Signal>) {
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let verb = cli.command.verb();
    let atomic = matches!(&cli.command, Command::Restore(a) if a.single_transaction);
    let clean = matches!(&cli.command, Command::Restore(a) if a.clean);
    // A task of its own: a command busy on its thread for a while (a
    // verify's read, say) must not keep this one from hearing a signal.
    let task = tokio::spawn(run(cli, stop_rx));
    let fut = async {
        task.await
            .unwrap_or_else(|e| Err(anyhow::Error::from(pgsnap::Error::task(verb, e))))
    };
    tokio::pin!(fut);
    let sig = tokio::select! {
        r = &mut fut => return (r, None),
        s = signalled() => s,
    };
    let stopped = |what: String| -> anyhow::Error {
        anyhow::Error::from(pgsnap::Error::Stopped(what))
            .context(format!("{} received", sig.name()))
    };
    if verb == "backup" {
        let _ = stop_tx.send(true);
        let r = tokio::select! {
            r = &mut fut => r,
            _ = signalled() => Err(stopped(
                "backup stopped before its cleanup finished; a temporary archive may be left, \
                 which the next backup removes after a day"
                    .into(),
            )),
        };
        let r = r.map_err(|e| e.context(format!("{} received", sig.name())));
        return (r, Some(sig));
    }
    let what = match verb {
        // The process exits, its connection closes, the server rolls the
        // transaction back.
        "restore" if atomic => format!("restore stopped; {}", pgsnap::Error::ROLLED_BACK),
        // Before its first change (checks, authentication, a dry run).
        "restore" if !progress::target_changing() => {
            "restore stopped; nothing was changed in the target".to_string()
        }
        // Its drops were committed with the definitions: what they replaced
        // is gone, which "may hold part of it" did not say (QA).
        "restore" if clean => format!(
            "restore stopped; --clean's drops were committed, so what they replaced is gone, and \
             the target may hold part of the backup: run the restore again with --clean \
             (--single-transaction leaves nothing behind){}",
            pgsnap::restore::keys_not_back(&progress::keys_dropped())
        ),
        "restore" => "restore stopped; the target may hold part of it: run the restore again \
                      with --clean, or drop the database (--single-transaction leaves nothing \
                      behind)"
            .to_string(),
        v => format!("{v} stopped"),
    };
    (Err(stopped(what)), Some(sig))
}

async fn run(cli: Cli, stop: tokio::sync::watch::Receiver<bool>) -> anyhow::Result<ExitCode> {
    let quiet = cli.quiet;
    match cli.command {
        Command::Backup(a) => backup_cmd::run(a, quiet, stop).await,
        Command::Restore(a) => restore_cmd::restore(a, quiet).await,
        Command::Verify(a) => restore_cmd::verify(a).await,
        Command::Key(k) => restore_cmd::key(k),
        Command::List(a) => repo_cmds::list(a).await,
        Command::Show(a) => repo_cmds::show(a).await,
    }
}
