//! Progress events from long operations, for a caller to render (the CLI
//! draws a bar on a terminal and log lines elsewhere; an application may
//! export metrics). Events are cheap and may come from several threads.

/// `1 table`, `3 tables`: a count with its noun, plural but for one, for
/// the messages a person reads.
pub fn count(n: impl Into<u64>, noun: &str) -> String {
    match n.into() {
        1 => format!("1 {noun}"),
        n => format!("{n} {noun}s"),
    }
}

/// The first `n` of `names` and how many more (`a, b and 3 more`): a list
/// in a message stays a line one can read.
pub fn first_n(names: &[String], n: usize) -> String {
    match names.len().checked_sub(n) {
        Some(more) if more > 0 => format!("{} and {more} more", names[..n].join(", ")),
        _ => names.join(", "),
    }
}

/// What a backup or restore reports as it goes.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub enum Event {
    /// A named phase began (`schema`, `lock`, `data`, `post-data`, ...).
    Phase(&'static str),
    /// The data phase's size, as estimated from the catalogs.
    Planned {
        tables: usize,
        rows_estimate: u64,
        bytes_estimate: u64,
    },
    /// A chunk of rows went through.
    Rows { rows: u64, bytes: u64 },
    /// One table is done.
    TableDone {
        schema: String,
        name: String,
        rows: u64,
    },
    /// A restore is about to commit its first change to the target (its
    /// definitions): stopped before this, it left the target as it was;
    /// stopped after, the target may hold part of it. Not sent by a dry run
    /// or with `--single-transaction`, whose one commit is the end.
    Changing,
    /// Sent just before [`Event::Changing`] when `--clean` drops foreign
    /// keys of the target's own tables with the tables they reference: the
    /// statements that add them back, which the restore runs after the
    /// load. A restore stopped before its end should say them, as nothing
    /// else keeps them. Sent again with those still to add as each goes
    /// back (empty: all are).
    KeysDropped(Vec<String>),
}

pub trait Progress: Send + Sync {
    fn event(&self, e: Event);
}

/// Ignores every event.
pub struct Silent;

impl Progress for Silent {
    fn event(&self, _: Event) {}
}
