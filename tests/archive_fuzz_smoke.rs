//! Runs the fuzz entry point over random and mutated inputs so CI exercises
//! the reader's handling of hostile bytes without cargo-fuzz.

use pgsnap::archive::fuzz::{parse_untrusted, seed_archive};
use pgsnap::archive::{Cipher, Compression};
use rand::{Rng, SeedableRng};

#[test]
fn reader_survives_random_and_mutated_inputs() {
    let mut rng = rand::rngs::StdRng::seed_from_u64(0x5EED);
    let seeds: Vec<Vec<u8>> = [
        (Cipher::Aes256Gcm, Compression::Zstd(3)),
        (Cipher::ChaCha20Poly1305, Compression::Lz4),
        (Cipher::Aes256Gcm, Compression::None),
    ]
    .into_iter()
    .map(|(c, z)| seed_archive(c, z))
    .collect();
    for s in &seeds {
        for mode in [2u8, 3] {
            let mut d = vec![mode];
            d.extend_from_slice(s);
            parse_untrusted(&d);
        }
    }
    for i in 0..3000 {
        let mut d = if i % 4 == 0 {
            let n = rng.gen_range(0..2000);
            (0..n).map(|_| rng.gen()).collect::<Vec<u8>>()
        } else {
            let mut d = vec![rng.gen::<u8>()];
            d.extend_from_slice(&seeds[i % seeds.len()]);
            d
        };
        for _ in 0..rng.gen_range(1..6) {
            if d.is_empty() {
                break;
            }
            let p = rng.gen_range(0..d.len());
            match rng.gen_range(0..4) {
                0 => d[p] ^= 1 << rng.gen_range(0..8),
                1 => d.truncate(p),
                2 => d[p] = rng.gen(),
                _ => {
                    let v: u32 = rng.gen();
                    let end = (p + 4).min(d.len());
                    d[p..end].copy_from_slice(&v.to_le_bytes()[..end - p]);
                }
            }
        }
        parse_untrusted(&d);
    }
    // Index-JSON and decompression modes with structured garbage.
    for j in [
        &br#"{"format":1,"entries":[{"id":1,"kind":"t","name":null,"rows":0,"raw_bytes":0,"meta":null,"chunks":[{"counter":0,"offset":100,"len":4294967295,"rows":0,"raw_len":0}]}],"meta":null}"#[..],
        br#"{"format":1,"entries":[],"meta":[[[[[[[[[[[[[[[[[[[[]]]]]]]]]]]]]]]]]]]]}"#,
    ] {
        let mut d = vec![0u8];
        d.extend_from_slice(j);
        parse_untrusted(&d);
    }
}
