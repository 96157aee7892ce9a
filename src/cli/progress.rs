//! Progress on stderr: an indicatif bar on a terminal, a plain line every few
//! seconds otherwise (logs of cron jobs and CI), nothing with --quiet.

use std::io::IsTerminal;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use indicatif::{ProgressBar, ProgressStyle};
use pgsnap::progress::{Event, Progress};

use super::output::bytes;

pub struct Reporter {
    verb: &'static str,
    bar: Option<ProgressBar>,
    plain: bool,
    start: Instant,
    rows: AtomicU64,
    bytes: AtomicU64,
    tables: AtomicU64,
    total_tables: AtomicU64,
    last_line: Mutex<Instant>,
}

impl Reporter {
    pub fn new(verb: &'static str, quiet: bool) -> Reporter {
        let terminal = std::io::stderr().is_terminal();
        let bar = (!quiet && terminal).then(|| {
            // A spinner until the data's size is known (`Planned`): a bar of
            // length 0 is drawn full.
            let b = ProgressBar::new_spinner();
            b.set_style(
                ProgressStyle::with_template("{spinner} {prefix:>9} [{elapsed_precise}] {msg}")
                    .expect("valid template"),
            );
            b.enable_steady_tick(Duration::from_millis(200));
            b.set_prefix(verb);
            b
        });
        Reporter {
            verb,
            plain: !quiet && !terminal,
            bar,
            start: Instant::now(),
            rows: AtomicU64::new(0),
            bytes: AtomicU64::new(0),
            tables: AtomicU64::new(0),
            total_tables: AtomicU64::new(0),
            last_line: Mutex::new(Instant::now()),
        }
    }

    /// The bar's message: rows so far and tables done.
    fn counts(&self, b: &ProgressBar, rows: u64) {
        b.set_message(format!(
            "{rows} rows, {}/{} tables",
            self.tables.load(Ordering::Relaxed),
            self.total_tables.load(Ordering::Relaxed)
        ));
    }

    fn line(&self, force: bool) {
        if !self.plain {
            return;
        }
        let mut last = self.last_line.lock().unwrap();
        if !force && last.elapsed() < Duration::from_secs(5) {
            return;
        }
        *last = Instant::now();
        let secs = self.start.elapsed().as_secs_f64();
        let b = self.bytes.load(Ordering::Relaxed);
        // The backup's snapshot is as old as the run: it holds back vacuum.
        let age = if self.verb == "backup" {
            format!(", snapshot age {secs:.0}s")
        } else {
            String::new()
        };
        err!(
            "pgsnap: {}: {} rows, {} in {:.1}s ({}/s){age}",
            self.verb,
            self.rows.load(Ordering::Relaxed),
            bytes(b),
            secs,
            bytes((b as f64 / secs.max(0.001)) as u64),
        );
    }

    /// Clears the bar; a run that succeeded ends with its last figures.
    /// A failed one ends with its error alone: "N rows in Ts" just before
    /// it reads like success (and the rows of a rolled-back restore are
    /// gone).
    pub fn finish(&self, ok: bool) {
        if let Some(b) = &self.bar {
            b.finish_and_clear();
        }
        // Only when data moved: not "0 rows, 0 B".
        if ok && self.bytes.load(Ordering::Relaxed) > 0 {
            self.line(true);
        }
    }
}

impl Progress for Reporter {
    fn event(&self, e: Event) {
        match e {
            Event::Phase(p) => {
                if let Some(b) = &self.bar {
                    b.set_message(p.to_string());
                }
                if self.plain {
                    err!("pgsnap: {}: {p}", self.verb);
                }
            }
            Event::Planned {
                tables,
                rows_estimate,
                bytes_estimate,
            } => {
                self.total_tables.store(tables as u64, Ordering::Relaxed);
                if let Some(b) = &self.bar {
                    b.set_style(
                        ProgressStyle::with_template(
                            "{spinner} {prefix:>9} [{elapsed_precise}] {wide_bar} \
                             {bytes}/{total_bytes} {bytes_per_sec} {msg}",
                        )
                        .expect("valid template")
                        .progress_chars("=> "),
                    );
                    b.set_length(bytes_estimate);
                }
                if self.plain {
                    // A backup's estimate is the catalog's (0 rows for tables
                    // never analysed: say nothing rather than "about 0");
                    // a restore's is the backup's own count of data bytes.
                    let rows = match rows_estimate {
                        0 if self.verb == "backup" => String::new(),
                        n => format!(", about {n} rows"),
                    };
                    let size = if self.verb == "backup" {
                        "on disk"
                    } else {
                        "of data"
                    };
                    err!(
                        "pgsnap: {}: {tables} {}{rows}, {} {size}",
                        self.verb,
                        if tables == 1 { "table" } else { "tables" },
                        bytes(bytes_estimate)
                    );
                }
            }
            Event::Rows { rows, bytes: n } => {
                let r = self.rows.fetch_add(rows, Ordering::Relaxed) + rows;
                self.bytes.fetch_add(n, Ordering::Relaxed);
                if let Some(b) = &self.bar {
                    b.inc(n);
                    if b.position() > b.length().unwrap_or(0) {
                        b.set_length(b.position());
                    }
                    self.counts(b, r);
                }
                self.line(false);
            }
            Event::TableDone { .. } => {
                self.tables.fetch_add(1, Ordering::Relaxed);
                if let Some(b) = &self.bar {
                    self.counts(b, self.rows.load(Ordering::Relaxed));
                }
            }
            Event::Changing => TARGET_CHANGING.store(true, Ordering::SeqCst),
            Event::KeysDropped(add_back) => {
                *KEYS_DROPPED.lock().unwrap_or_else(|p| p.into_inner()) = add_back;
            }
            _ => {}
        }
    }
}

/// Set once a restore may have changed its target: what a Ctrl-C then
/// says (`super::run_until_signalled`) depends on it. One per process, as
/// a process runs one command.
static TARGET_CHANGING: AtomicBool = AtomicBool::new(false);

/// Whether the restore this process runs may have changed its target.
pub fn target_changing() -> bool {
    TARGET_CHANGING.load(Ordering::SeqCst)
}

/// The statements adding back the target's foreign keys that `--clean`
/// dropped ([`Event::KeysDropped`]), for a restore stopped before it did.
static KEYS_DROPPED: std::sync::Mutex<Vec<String>> = std::sync::Mutex::new(Vec::new());

pub fn keys_dropped() -> Vec<String> {
    KEYS_DROPPED
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .clone()
}
