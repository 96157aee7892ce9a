//! Entry point for fuzzing the reader (`fuzz/fuzz_targets/archive_reader.rs`)
//! and for the in-tree test that runs it over random and mutated inputs.
//!
//! Not part of the stable API.

use crate::archive::codec::{decompress_exact, Codec};
use crate::archive::format::{Footer, Header, FOOTER_LEN};
use crate::archive::index::{Index, IndexLayout};
use crate::archive::slots::{SlotSpec, Unlock};
use crate::archive::writer::{ArchiveOptions, ArchiveWriter, EntryInfo};
use crate::archive::{codec::Compression, seal::Cipher};
use crate::keys::{DataKey, KeyFileKey};

/// The key file key the fuzz target unlocks with.
pub const FUZZ_KEY: [u8; 32] = [0x5A; 32];

/// Feeds untrusted bytes through every reader entry point. Must never panic,
/// hang or allocate without bound, whatever `data` is.
///
/// The first byte selects a mode: archives (header -> unlock with
/// [`FUZZ_KEY`] -> footer -> index -> chunks, plus the streaming verifier),
/// raw index JSON, or raw compressed payloads.
pub fn parse_untrusted(data: &[u8]) {
    let Some((&mode, rest)) = data.split_first() else {
        return;
    };
    match mode % 8 {
        0 => {
            let layout = IndexLayout {
                header_len: 100,
                chunk_size: 1 << 20,
                index_offset: 1 << 30,
                index_counter: 16,
            };
            let _ = Index::from_json(rest, &layout);
        }
        1 => {
            if rest.len() >= 3 {
                let codec = Codec::from_id(rest[0] % 3).unwrap_or(Codec::None);
                // Small bounded raw_len: what a reader allows after its checks.
                let raw_len = u16::from_le_bytes([rest[1], rest[2]]) as usize;
                let _ = decompress_exact(codec, &rest[3..], raw_len);
            }
        }
        _ => parse_archive(rest),
    }
}

fn parse_archive(data: &[u8]) {
    let Ok((header, header_len)) = Header::parse(data) else {
        return;
    };
    let key = KeyFileKey::from_bytes(FUZZ_KEY);
    let Ok(open) = header.unlock(&Unlock::KeyFile(&key)) else {
        return;
    };
    // Streaming verification over the body, in one piece and in small ones.
    let body = &data[header_len..];
    let _ = open.read_stream(body, |_, _| Ok(()));
    let mut v = crate::archive::reader::StreamVerifier::new(&open);
    let piece = 1 + data.len() % 97;
    if body.chunks(piece).all(|p| v.push(p, |_, _| Ok(())).is_ok()) {
        let _ = v.finish();
    }
    // Random access.
    if data.len() < header_len + FOOTER_LEN {
        return;
    }
    let fbytes: [u8; FOOTER_LEN] = data[data.len() - FOOTER_LEN..].try_into().expect("len");
    let Ok(footer) = Footer::parse(&fbytes) else {
        return;
    };
    if footer.check_against(header_len, data.len() as u64).is_err() {
        return;
    }
    let start = footer.index_offset as usize;
    let frame = &data[start..start + footer.index_frame_len as usize];
    let Ok(index) = open.open_index(frame, &footer) else {
        return;
    };
    for e in &index.entries {
        for c in e.chunks.iter().take(64) {
            let (s, end) = (c.offset as usize, c.offset as usize + c.len as usize);
            if end <= data.len() {
                let _ = open.open_entry_chunk(e.id, c, &data[s..end]);
            }
        }
    }
    let _ = index.coalesced_ranges(&[0, 1, 2]);
}

/// A small valid archive under [`FUZZ_KEY`], as a fuzzing seed.
pub fn seed_archive(cipher: Cipher, compression: Compression) -> Vec<u8> {
    let key = KeyFileKey::from_bytes(FUZZ_KEY);
    let dk = DataKey::generate();
    let opts = ArchiveOptions {
        cipher,
        compression,
        chunk_size: 256,
    };
    let mut w =
        ArchiveWriter::new(Vec::new(), opts, &dk, vec![SlotSpec::KeyFile(&key)]).expect("writer");
    let text: Vec<u8> = (0..600u32)
        .flat_map(|i| format!("{i}\trow {i}\n").into_bytes())
        .collect();
    for (i, piece) in text.chunks(256).enumerate() {
        w.write_chunk((i % 2) as u32, 3, piece).expect("chunk");
    }
    let entries = (0..2)
        .map(|id| EntryInfo {
            id,
            kind: "table".into(),
            name: Some(format!("t{id}")),
            meta: serde_json::json!({"n": id}),
        })
        .collect();
    w.finish(entries, serde_json::json!({"fuzz": true}))
        .expect("finish")
        .0
}
