//! Writes seed inputs for the fuzz targets.
//!
//! - `archive_reader`: valid archives under the fuzz key, for every cipher
//!   and codec, prefixed with the mode byte that selects archive parsing;
//! - `restore_parse`: the schema, index entries and sequence sections of
//!   real backups (`tests/vectors/restore`), as plan inputs, and one input
//!   per other mode (manifest, large object lines, patterns, sections).
//!
//! `cargo run --example fuzz_seeds -- fuzz/corpus/archive_reader fuzz/corpus/restore_parse`

use pgsnap::archive::fuzz::seed_archive;
use pgsnap::archive::{Cipher, Compression};
use pgsnap::restore::fuzz as rf;

fn main() -> std::io::Result<()> {
    let mut args = std::env::args().skip(1);
    let dir = args
        .next()
        .unwrap_or_else(|| "fuzz/corpus/archive_reader".into());
    let restore_dir = args
        .next()
        .unwrap_or_else(|| "fuzz/corpus/restore_parse".into());
    std::fs::create_dir_all(&dir)?;
    let mut n = 0;
    for cipher in [Cipher::Aes256Gcm, Cipher::ChaCha20Poly1305] {
        for comp in [Compression::None, Compression::Zstd(3), Compression::Lz4] {
            let mut data = vec![2u8];
            data.extend(seed_archive(cipher, comp));
            std::fs::write(
                format!("{dir}/seed-{cipher}-{comp}").replace(':', "_"),
                data,
            )?;
            n += 1;
        }
    }
    std::fs::write(
        format!("{dir}/seed-index-json"),
        [&[0u8][..], br#"{"format":1,"entries":[],"meta":null}"#].concat(),
    )?;
    println!("wrote {} seeds to {dir}", n + 1);

    std::fs::create_dir_all(&restore_dir)?;
    let vectors = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/vectors/restore");
    let read = |name: String| std::fs::read(format!("{vectors}/{name}"));
    let mut n = 0;
    for name in ["basics", "names", "edge"] {
        let schema = read(format!("{name}.schema.json"))?;
        let entries = read(format!("{name}.entries.json"))?;
        let seqs = read(format!("{name}.sequences.json"))?;
        for (tag, options) in [("full", &b""[..]), ("schema-only", b"\x01t*")] {
            std::fs::write(
                format!("{restore_dir}/seed-{name}-{tag}"),
                rf::plan_input(&schema, &entries, &seqs, options),
            )?;
            n += 1;
        }
    }
    let others: [(&str, u8, Vec<u8>); 4] = [
        (
            "manifest",
            rf::MODE_MANIFEST,
            read("basics.manifest.json".into())?,
        ),
        (
            "large-objects",
            rf::MODE_LARGE_OBJECTS,
            b"16401\t0\t48656c6c6f\n16401\t5\t\n".to_vec(),
        ),
        (
            "patterns",
            rf::MODE_PATTERNS,
            b"app.users\n\"Weird\"\".x\".\"t\"\n*.*\nt?".to_vec(),
        ),
        (
            "sequences",
            rf::MODE_SECTIONS,
            read("basics.sequences.json".into())?,
        ),
    ];
    for (tag, mode, body) in others {
        std::fs::write(
            format!("{restore_dir}/seed-{tag}"),
            [&[mode][..], &body].concat(),
        )?;
        n += 1;
    }
    println!("wrote {n} seeds to {restore_dir}");
    Ok(())
}
