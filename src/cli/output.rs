//! Logging and human-readable formatting shared by the commands.

use tracing_subscriber::EnvFilter;

pub fn init_logging(verbose: u8, quiet: bool) {
    let level = match (quiet, verbose) {
        (true, _) => "error",
        (false, 0) => "warn",
        (false, 1) => "info",
        _ => "debug",
    };
    let filter = EnvFilter::try_from_env("PGSNAP_LOG")
        // The AWS SDK logs its retries and credential-chain probes at warn,
        // in many lines; what matters reaches the user as the error.
        .unwrap_or_else(|_| {
            EnvFilter::new(format!(
                "pgsnap={level},warn,aws_config=error,aws_smithy_runtime=error,aws_runtime=error"
            ))
        });
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(false)
        .event_format(Lines)
        .try_init();
}

/// Log events as the CLI's own lines: `pgsnap: warning: ...`, the style
/// of every warning the commands print themselves, so that a script or a
/// person looking for warnings finds them all one way (tracing's default
/// was ` WARN ...`).
struct Lines;

impl<S, N> tracing_subscriber::fmt::FormatEvent<S, N> for Lines
where
    S: tracing::Subscriber + for<'a> tracing_subscriber::registry::LookupSpan<'a>,
    N: for<'a> tracing_subscriber::fmt::FormatFields<'a> + 'static,
{
    fn format_event(
        &self,
        ctx: &tracing_subscriber::fmt::FmtContext<'_, S, N>,
        mut writer: tracing_subscriber::fmt::format::Writer<'_>,
        event: &tracing::Event<'_>,
    ) -> std::fmt::Result {
        let level = match *event.metadata().level() {
            tracing::Level::ERROR => "error: ",
            tracing::Level::WARN => "warning: ",
            tracing::Level::INFO => "",
            tracing::Level::DEBUG => "debug: ",
            tracing::Level::TRACE => "trace: ",
        };
        write!(writer, "pgsnap: {level}")?;
        ctx.field_format().format_fields(writer.by_ref(), event)?;
        writeln!(writer)
    }
}

/// The first failed write to stdout, if any: the command then exits 1
/// (see [`stdout_failure`]).
static STDOUT_FAILED: std::sync::OnceLock<String> = std::sync::OnceLock::new();

/// One line on stdout (the `out!` macro). A closed pipe ends the process
/// with 128 + SIGPIPE. Any other write error (a full disk) is kept, and
/// the command, which goes on, exits 1 with it: `ID=$(pgsnap backup ...)`
/// must not take an empty id for a success.
pub fn line(args: std::fmt::Arguments) {
    use std::io::Write;
    let mut out = std::io::stdout().lock();
    if let Err(e) = writeln!(out, "{args}").and_then(|_| out.flush()) {
        if e.kind() == std::io::ErrorKind::BrokenPipe {
            std::process::exit(141);
        }
        let _ = STDOUT_FAILED.set(e.to_string());
    }
}

/// Why writing to stdout failed, if it did.
pub fn stdout_failure() -> Option<&'static str> {
    STDOUT_FAILED.get().map(String::as_str)
}

pub use pgsnap::progress::count;

/// `1.2 GiB`-style sizes.
pub fn bytes(n: u64) -> String {
    const UNITS: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut v = n as f64;
    let mut u = 0;
    while v >= 1024.0 && u < UNITS.len() - 1 {
        v /= 1024.0;
        u += 1;
    }
    if u == 0 {
        format!("{n} B")
    } else {
        format!("{v:.1} {}", UNITS[u])
    }
}
