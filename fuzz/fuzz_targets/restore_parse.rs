//! Fuzzes what a restore parses after the archive reader authenticated the
//! bytes: the schema section and plans built from it (with the DDL of every
//! object), index entries' metadata, sequence and large object sections,
//! manifests and `--table` / `--schema` patterns.
//!
//! Run from the repository root:
//!
//! ```text
//! cargo run --example fuzz_seeds -- fuzz/corpus/archive_reader fuzz/corpus/restore_parse
//! RUSTC_BOOTSTRAP=1 cargo fuzz run restore_parse fuzz/corpus/restore_parse -- -max_total_time=600
//! ```
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    pgsnap::restore::fuzz::parse_untrusted(data);
});
