//! Restore's text -> binary COPY conversion (`pg::transcode`), the largest
//! part of a restore's client CPU. Rows shaped like the benchmark database's
//! two big tables: `events` (bigint, timestamptz, int, text, jsonb, bytea,
//! text) and `pgbench_accounts` (three ints and a blank `character(84)`).
//! Run with
//!
//! ```text
//! cargo bench --bench transcode -- --quick
//! ```
//!
//! On a shared machine, compare two builds with `PGSNAP_BENCH_ROUNDS=N`: it
//! skips criterion and prints each case's fastest of N runs, which moves
//! less with other load than a mean does.
//!
//! Set `PGSNAP_BENCH_INPUT=file` and `PGSNAP_BENCH_TYPES=int8,timestamptz,...`
//! (type OIDs or the names below) to convert real `COPY ... TO STDOUT` output.

use std::fmt::Write as _;
use std::hint::black_box;

use criterion::{criterion_group, Criterion, Throughput};
use pgsnap::pg::transcode::{Kind, Transcoder};

/// `events` as ../shared/bench/events.sql fills it.
fn events(rows: usize) -> Vec<u8> {
    let mut out = String::new();
    for g in 1..=rows {
        let md5 = format!(
            "{:032x}",
            (g as u128).wrapping_mul(0x9e37_79b9_7f4a_7c15_f39c_c060_5ced_c835)
        );
        let md5b = format!(
            "{:032x}",
            (g as u128 + 1).wrapping_mul(0x9e37_79b9_7f4a_7c15_f39c_c060_5ced_c835)
        );
        let secs = 1_795_478_400 - g as i64;
        let (h, m, s) = ((secs / 3600) % 24, (secs / 60) % 60, secs % 60);
        let _ = writeln!(
            out,
            "{g}\t2026-11-{:02} {h:02}:{m:02}:{s:02}+00\t{}\t{}\t{{\"n\": {g}, \"ip\": \"10.0.{}.{}\", \"ua\": \"{md5}\", \"tags\": [\"a\", \"b\", {}]}}\t\\\\x{md5}{md5b}\t{}",
            1 + (g / 86_400) % 23,
            g % 100_000,
            ["view", "click", "buy", "login"][g % 4],
            g % 255,
            g % 7,
            g % 13,
            "lorem ipsum dolor sit amet ".repeat(1 + g % 5),
        );
    }
    out.into_bytes()
}

/// `pgbench_accounts`: the filler is blank, so its padding is what is left.
fn accounts(rows: usize) -> Vec<u8> {
    let mut out = String::new();
    let filler = " ".repeat(84);
    for aid in 1..=rows {
        let _ = writeln!(out, "{aid}\t{}\t0\t{filler}", 1 + (aid - 1) / 100_000);
    }
    out.into_bytes()
}

fn kind(name: &str) -> Kind {
    let oid = match name {
        "bool" => 16,
        "bytea" => 17,
        "int8" => 20,
        "int2" => 21,
        "int4" => 23,
        "text" => 25,
        "json" => 114,
        "float4" => 700,
        "float8" => 701,
        "date" => 1082,
        "timestamp" => 1114,
        "timestamptz" => 1184,
        "uuid" => 2950,
        "jsonb" => 3802,
        other => other
            .parse()
            .expect("PGSNAP_BENCH_TYPES: a type name or OID"),
    };
    Kind::from_type_oid(oid).expect("PGSNAP_BENCH_TYPES: a type the transcoder converts")
}

type Case = (&'static str, Vec<Kind>, Vec<usize>, Vec<u8>);

fn cases() -> Vec<Case> {
    use Kind::*;
    let mut cases = vec![
        (
            "events",
            vec![Int8, Timestamptz, Int4, Text, Jsonb, Bytea, Text],
            Vec::new(),
            events(40_000),
        ),
        (
            "accounts",
            vec![Int4, Int4, Int4, Text],
            vec![3],
            accounts(100_000),
        ),
    ];
    if let (Some(input), Ok(types)) = (
        std::env::var_os("PGSNAP_BENCH_INPUT"),
        std::env::var("PGSNAP_BENCH_TYPES"),
    ) {
        let data = std::fs::read(input).expect("PGSNAP_BENCH_INPUT");
        cases = vec![(
            "input",
            types.split(',').map(kind).collect(),
            Vec::new(),
            data,
        )];
    }
    cases
}

fn convert(kinds: &[Kind], padded: &[usize], data: &[u8], out: &mut Vec<u8>) -> usize {
    let mut t = Transcoder::new(kinds.to_vec(), padded);
    out.clear();
    // In 4 MiB pieces, as a restore feeds decompressed chunks.
    for piece in data.chunks(4 << 20) {
        t.feed(piece, out).unwrap();
    }
    t.finish().unwrap();
    black_box(out.len())
}

fn bench_transcode(c: &mut Criterion) {
    let mut g = c.benchmark_group("transcode");
    for (name, kinds, padded, data) in cases() {
        g.throughput(Throughput::Bytes(data.len() as u64));
        let mut out = Vec::with_capacity(data.len() * 2);
        g.bench_function(name, |b| {
            b.iter(|| convert(&kinds, &padded, &data, &mut out))
        });
    }
    g.finish();
}

/// `PGSNAP_BENCH_ROUNDS=N`: each case's fastest of N runs, in MiB/s.
fn fastest_of(rounds: usize) {
    for (name, kinds, padded, data) in cases() {
        let mut out = Vec::with_capacity(data.len() * 2);
        let best = (0..rounds)
            .map(|_| {
                let start = std::time::Instant::now();
                convert(&kinds, &padded, &data, &mut out);
                start.elapsed()
            })
            .min()
            .unwrap_or_default();
        let mib = data.len() as f64 / (1 << 20) as f64;
        println!(
            "{name}: {:.0} MiB/s ({:.2} ms)",
            mib / best.as_secs_f64(),
            best.as_secs_f64() * 1e3
        );
    }
}

criterion_group!(benches, bench_transcode);

fn main() {
    match std::env::var("PGSNAP_BENCH_ROUNDS")
        .ok()
        .and_then(|n| n.parse().ok())
    {
        Some(rounds) => fastest_of(rounds),
        None => {
            benches();
            Criterion::default().configure_from_args().final_summary();
        }
    }
}
