//! Writes seed inputs for the `archive_reader` fuzz target: valid archives
//! under the fuzz key, for every cipher and codec, prefixed with the mode
//! byte that selects archive parsing.
//!
//! `cargo run --example fuzz_seeds -- fuzz/corpus/archive_reader`

use pgsnap::archive::fuzz::seed_archive;
use pgsnap::archive::{Cipher, Compression};

fn main() -> std::io::Result<()> {
    let dir = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "fuzz/corpus/archive_reader".into());
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
    Ok(())
}
