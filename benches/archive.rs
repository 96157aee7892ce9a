//! Archive path throughput: chunk -> compress -> AEAD seal, on COPY-text-like
//! data. Run with
//!
//! ```text
//! cargo bench --bench archive -- --quick
//! ```
//!
//! Set `PGSNAP_BENCH_DUMP=/tmp/sample.copy` to write the synthetic sample (to
//! compare ratios with `gzip -6`, which is what `pg_dump -Fc` uses), or
//! `PGSNAP_BENCH_INPUT=file` to benchmark on real COPY output instead.
//! Compression ratios (stored bytes / raw bytes, default-size chunks) are printed to
//! stderr; `cargo bench --bench archive -- --quick nomatch` prints only those.

use std::hint::black_box;
use std::sync::Arc;

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use pgsnap::archive::{
    ArchiveOptions, ArchiveWriter, ChunkPipeline, Cipher, Compression, EntryInfo, Sealer, SlotSpec,
};
use pgsnap::keys::{DataKey, KeyFileKey};

/// The default chunk size (4 MiB).
const CHUNK: usize = pgsnap::archive::writer::DEFAULT_CHUNK_SIZE as usize;

/// Something that looks like `COPY ... TO STDOUT` text output: ids, numbers,
/// timestamps, a few words, an md5 hex column and the occasional NULL.
fn copy_text(bytes: usize) -> Vec<u8> {
    const WORDS: &[&str] = &[
        "alpha",
        "bravo",
        "charlie",
        "delta",
        "echo",
        "foxtrot",
        "golf",
        "hotel",
        "india",
        "juliet",
        "kilo",
        "lima",
        "mike",
        "november",
        "oscar",
        "papa",
        "quebec",
        "romeo",
        "sierra",
        "tango",
        "uniform",
        "victor",
        "whiskey",
        "xray",
        "yankee",
        "zulu",
        "pending",
        "shipped",
        "delivered",
        "cancelled",
    ];
    let mut out = Vec::with_capacity(bytes + 256);
    let mut x: u64 = 0x9E37_79B9_7F4A_7C15;
    let mut next = || {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        x
    };
    let mut id = 1_000_000u64;
    while out.len() < bytes {
        id += 1 + next() % 3;
        let r = next();
        let ts = 1_700_000_000 + (id * 37) % 31_536_000;
        let (d, s) = (ts / 86_400, ts % 86_400);
        let md5: u128 = ((next() as u128) << 64) | next() as u128;
        let w1 = WORDS[(r % WORDS.len() as u64) as usize];
        let w2 = WORDS[((r >> 8) % WORDS.len() as u64) as usize];
        let note = if r % 7 == 0 {
            "\\N".to_string()
        } else {
            format!("{w1} {w2} {}", r % 1000)
        };
        out.extend_from_slice(
            format!(
                "{id}\t{}\t2024-{:02}-{:02} {:02}:{:02}:{:02}.{:06}+00\t{}.{:02}\t{w1}\t{note}\t{md5:032x}\n",
                (r >> 16) % 50_000,
                d % 12 + 1,
                d % 28 + 1,
                s / 3600,
                s / 60 % 60,
                s % 60,
                (r >> 20) % 1_000_000,
                (r >> 24) % 10_000,
                (r >> 40) % 100,
            )
            .as_bytes(),
        );
    }
    out.truncate(bytes);
    out
}

/// Real data from `PGSNAP_BENCH_INPUT` (first `bytes` bytes) or synthetic.
fn input(bytes: usize) -> Vec<u8> {
    match std::env::var_os("PGSNAP_BENCH_INPUT") {
        Some(p) => {
            let mut d = std::fs::read(p).expect("PGSNAP_BENCH_INPUT");
            d.truncate(bytes);
            d
        }
        None => copy_text(bytes),
    }
}

fn sealer(cipher: Cipher, compression: Compression) -> Arc<Sealer> {
    let kf = KeyFileKey::generate();
    let opts = ArchiveOptions {
        cipher,
        compression,
        chunk_size: CHUNK as u32,
    };
    ArchiveWriter::new(
        std::io::sink(),
        opts,
        &DataKey::generate(),
        vec![SlotSpec::KeyFile(&kf)],
    )
    .unwrap()
    .sealer()
}

fn bench_seal(c: &mut Criterion) {
    let data = input(8 * CHUNK);
    if let Ok(p) = std::env::var("PGSNAP_BENCH_DUMP") {
        std::fs::write(p, &data).unwrap();
    }
    let chunks: Vec<&[u8]> = data.chunks(CHUNK).collect();
    let mut g = c.benchmark_group("seal_default_chunk_single_thread");
    g.throughput(Throughput::Bytes(CHUNK as u64));
    let cases = [
        ("zstd1+aes-256-gcm", Cipher::Aes256Gcm, Compression::Zstd(1)),
        ("zstd2+aes-256-gcm", Cipher::Aes256Gcm, Compression::Zstd(2)),
        ("zstd3+aes-256-gcm", Cipher::Aes256Gcm, Compression::Zstd(3)),
        ("zstd5+aes-256-gcm", Cipher::Aes256Gcm, Compression::Zstd(5)),
        (
            "zstd1+chacha20-poly1305",
            Cipher::ChaCha20Poly1305,
            Compression::Zstd(1),
        ),
        ("lz4+aes-256-gcm", Cipher::Aes256Gcm, Compression::Lz4),
        ("none+aes-256-gcm", Cipher::Aes256Gcm, Compression::None),
        (
            "none+chacha20-poly1305",
            Cipher::ChaCha20Poly1305,
            Compression::None,
        ),
    ];
    for (name, cipher, comp) in cases {
        let s = sealer(cipher, comp);
        let stored: usize = chunks
            .iter()
            .map(|ch| s.seal(0, 1, 0, ch).unwrap().frame_len())
            .sum();
        eprintln!(
            "{name}: ratio {:.3} (stored/raw)",
            stored as f64 / data.len() as f64
        );
        let mut i = 0usize;
        g.bench_function(BenchmarkId::from_parameter(name), |b| {
            b.iter(|| {
                i += 1;
                black_box(s.seal(i as u32, 1, 0, chunks[i % chunks.len()]).unwrap())
            })
        });
    }
    g.finish();
}

fn bench_pipeline(c: &mut Criterion) {
    let data = input(8 * CHUNK);
    let mut g = c.benchmark_group("pipeline_32MiB");
    g.throughput(Throughput::Bytes(data.len() as u64));
    g.sample_size(10);
    let kf = KeyFileKey::generate();
    let cases = [
        ("zstd1+aes-256-gcm", Compression::Zstd(1), 1usize),
        ("zstd1+aes-256-gcm", Compression::Zstd(1), 2),
        ("default(zstd3)+aes-256-gcm", Compression::default(), 2),
    ];
    for (name, compression, threads) in cases {
        g.bench_function(BenchmarkId::new(name, format!("{threads}_threads")), |b| {
            b.iter(|| {
                let opts = ArchiveOptions {
                    compression,
                    ..Default::default()
                };
                let w = ArchiveWriter::new(
                    std::io::sink(),
                    opts,
                    &DataKey::generate(),
                    vec![SlotSpec::KeyFile(&kf)],
                )
                .unwrap();
                let p = ChunkPipeline::new(w, threads, 2 * threads + 2);
                for ch in data.chunks(CHUNK) {
                    p.submit(1, 1000, ch.to_vec()).unwrap();
                }
                let e = EntryInfo {
                    id: 1,
                    kind: "table".into(),
                    name: None,
                    meta: serde_json::Value::Null,
                };
                black_box(p.finish(vec![e], serde_json::Value::Null).unwrap().1)
            })
        });
    }
    g.finish();
}

criterion_group!(benches, bench_seal, bench_pipeline);
criterion_main!(benches);
