//! Fuzzes every reader entry point with untrusted bytes.
//!
//! Run from the repository root:
//!
//! ```text
//! cargo install cargo-fuzz
//! cargo run --example fuzz_seeds -- fuzz/corpus/archive_reader   # optional seeds
//! RUSTC_BOOTSTRAP=1 cargo fuzz run archive_reader -- -max_total_time=120
//! ```
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    pgsnap::archive::fuzz::parse_untrusted(data);
});
