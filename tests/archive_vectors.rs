//! Known-answer tests against committed archives in `tests/vectors/`.
//!
//! The vectors were produced once by the ignored `generate_vectors` test
//! (`cargo test --test archive_vectors -- --ignored generate_vectors`) and
//! are committed. Decoding them must keep working: if this test fails, the
//! format changed and needs a new version number, not new vectors.
//!
//! Everything is derived from fixed inputs (see `Params`) so an independent
//! implementation can also use `expected.json`, which lists the data key and
//! the derived keys.

use std::path::{Path, PathBuf};

use pgsnap::archive::{
    ArchiveFile, ArchiveOptions, ArchiveWriter, Argon2Params, Cipher, Codec, Compression,
    EntryInfo, Footer, Header, KeySlot, SlotSpec, Unlock,
};
use pgsnap::keys::{DataKey, KeyFileKey, Passphrase};
use pgsnap::Error;
use serde_json::{json, Value};
use sha2::{Digest, Sha256};

const PASSPHRASE: &str = "pgsnap test vector passphrase";
const CHEAP_ARGON2: Argon2Params = Argon2Params {
    m_cost_kib: 64,
    t_cost: 1,
    p: 1,
};
const CHUNK_SIZE: u32 = 4096;

fn dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/vectors")
}

fn sha(b: &[u8]) -> [u8; 32] {
    Sha256::digest(b).into()
}

/// Deterministic pseudo-random bytes (SHA-256 in counter mode).
fn prng(label: &str, n: usize) -> Vec<u8> {
    let mut out = Vec::with_capacity(n + 32);
    let mut i = 0u32;
    while out.len() < n {
        out.extend_from_slice(&sha(format!("{label}/{i}").as_bytes()));
        i += 1;
    }
    out.truncate(n);
    out
}

fn key_file_key() -> KeyFileKey {
    KeyFileKey::from_bytes(sha(b"pgsnap test vector key file"))
}

fn data_key(cipher: Cipher) -> DataKey {
    DataKey::from_bytes(sha(
        format!("pgsnap test vector data key {cipher}").as_bytes()
    ))
}

fn archive_id(cipher: Cipher) -> [u8; 16] {
    sha(format!("pgsnap test vector archive id {cipher}").as_bytes())[..16]
        .try_into()
        .unwrap()
}

fn nonce_prefix(cipher: Cipher) -> [u8; 7] {
    sha(format!("pgsnap test vector nonce prefix {cipher}").as_bytes())[..7]
        .try_into()
        .unwrap()
}

fn users_text() -> Vec<u8> {
    let mut t = Vec::new();
    for i in 0..50u32 {
        t.extend_from_slice(
            format!(
                "{i}\tuser{i}@example.com\t2024-03-{:02} 10:{:02}:00+00\t{}\n",
                i % 28 + 1,
                i % 60,
                hex::encode(&sha(&i.to_le_bytes())[..16])
            )
            .as_bytes(),
        );
    }
    t
}

/// (counter, entry, rows, raw, compression) of every data segment.
fn chunks() -> Vec<(u32, u32, u64, Vec<u8>, Compression)> {
    let users = users_text();
    let schema =
        b"CREATE TABLE public.users (id int PRIMARY KEY, email text, seen timestamptz, h text);\n\
                   CREATE TABLE public.empty (x int);\n"
            .to_vec();
    vec![
        (0, 1, 50, users.clone(), Compression::Zstd(3)),
        (1, 3, 0, schema, Compression::Zstd(3)),
        // Incompressible: stored with codec 0 although zstd was asked for.
        (2, 1, 0, prng("blob", 1000), Compression::Zstd(3)),
        (3, 1, 50, users, Compression::Lz4),
    ]
}

fn entries() -> Vec<EntryInfo> {
    vec![
        EntryInfo {
            id: 1,
            kind: "table".into(),
            name: Some("public.users".into()),
            meta: json!({"columns": ["id", "email", "seen", "h"]}),
        },
        EntryInfo {
            id: 2,
            kind: "table".into(),
            name: Some("public.empty".into()),
            meta: Value::Null,
        },
        EntryInfo {
            id: 3,
            kind: "schema".into(),
            name: None,
            meta: json!({"statements": 2}),
        },
    ]
}

fn slot_specs(cipher: Cipher, aad: &[u8], pw: &Passphrase) -> Vec<SlotSpec<'static>> {
    let dk = data_key(cipher);
    let id = archive_id(cipher);
    let kf = KeySlot::key_file_with_nonce(
        &key_file_key(),
        &dk,
        &id,
        aad,
        prng("kf nonce", 12).try_into().unwrap(),
    )
    .unwrap();
    let ps = KeySlot::passphrase_with(
        pw,
        &dk,
        aad,
        CHEAP_ARGON2,
        prng("salt", 16).try_into().unwrap(),
        prng("pw nonce", 12).try_into().unwrap(),
    )
    .unwrap();
    vec![
        SlotSpec::Prebuilt(kf),
        SlotSpec::Prebuilt(ps),
        SlotSpec::Kms {
            key_id: "arn:aws:kms:us-east-1:111122223333:key/test-vector".into(),
            ciphertext: prng("kms blob", 40),
        },
        SlotSpec::Prebuilt(KeySlot::Unknown {
            kind: 200,
            body: b"future slot kind".to_vec(),
        }),
    ]
}

fn options(cipher: Cipher) -> ArchiveOptions {
    ArchiveOptions {
        cipher,
        compression: match cipher {
            Cipher::Aes256Gcm => Compression::Zstd(3),
            Cipher::ChaCha20Poly1305 => Compression::Lz4,
        },
        chunk_size: CHUNK_SIZE,
    }
}

/// The fixed header prefix (slot AAD), rebuilt from the spec by hand.
fn fixed_header(cipher: Cipher) -> Vec<u8> {
    let mut h = b"\x89PGSNAP\n".to_vec();
    h.extend_from_slice(&1u16.to_le_bytes());
    h.push(cipher.id());
    h.push(options(cipher).compression.codec().id());
    h.extend_from_slice(&CHUNK_SIZE.to_le_bytes());
    h.extend_from_slice(&archive_id(cipher));
    h.extend_from_slice(&nonce_prefix(cipher));
    h
}

fn writer(cipher: Cipher) -> ArchiveWriter<Vec<u8>> {
    let pw = Passphrase::new(PASSPHRASE).unwrap();
    let aad = fixed_header(cipher);
    ArchiveWriter::with_params(
        Vec::new(),
        options(cipher),
        &data_key(cipher),
        archive_id(cipher),
        nonce_prefix(cipher),
        slot_specs(cipher, &aad, &pw),
    )
    .unwrap()
}

fn build(cipher: Cipher) -> Vec<u8> {
    let mut w = writer(cipher);
    let sealer = w.sealer();
    for (counter, entry, rows, raw, comp) in chunks() {
        w.write_sealed(sealer.seal_with(counter, entry, rows, &raw, comp).unwrap())
            .unwrap();
    }
    w.finish(
        entries(),
        json!({"pgsnap_vector": 1, "server_version": "16.2"}),
    )
    .unwrap()
    .0
}

fn file_name(cipher: Cipher) -> String {
    format!("{cipher}.pgsnap")
}

fn hkdf(ikm: &[u8], salt: &[u8], info: &[u8]) -> String {
    let mut okm = [0u8; 32];
    hkdf::Hkdf::<Sha256>::new(Some(salt), ikm)
        .expand(info, &mut okm)
        .unwrap();
    hex::encode(okm)
}

#[test]
#[ignore = "generates the committed vectors; run only when creating a new format version"]
fn generate_vectors() {
    let d = dir();
    std::fs::create_dir_all(&d).unwrap();
    let key_path = d.join("test-vector.key");
    use base64::Engine as _;
    let kf_bytes = sha(b"pgsnap test vector key file");
    std::fs::write(
        &key_path,
        format!(
            "{}\n",
            base64::engine::general_purpose::STANDARD.encode(kf_bytes)
        ),
    )
    .unwrap();
    let mut files = serde_json::Map::new();
    for cipher in [Cipher::Aes256Gcm, Cipher::ChaCha20Poly1305] {
        let bytes = build(cipher);
        std::fs::write(d.join(file_name(cipher)), &bytes).unwrap();
        let dk = data_key(cipher);
        let id = archive_id(cipher);
        let mut expected_entries: Vec<Value> = Vec::new();
        for e in entries() {
            let raw: Vec<u8> = chunks()
                .into_iter()
                .filter(|c| c.1 == e.id)
                .flat_map(|c| c.3)
                .collect();
            let rows: u64 = chunks().iter().filter(|c| c.1 == e.id).map(|c| c.2).sum();
            expected_entries.push(json!({
                "id": e.id, "kind": e.kind, "name": e.name, "rows": rows, "meta": e.meta,
                "raw_hex": hex::encode(&raw),
            }));
        }
        files.insert(
            file_name(cipher),
            json!({
                "sha256": hex::encode(sha(&bytes)),
                "length": bytes.len(),
                "cipher": cipher.to_string(),
                "chunk_size": CHUNK_SIZE,
                "archive_id": hex::encode(id),
                "nonce_prefix": hex::encode(nonce_prefix(cipher)),
                "data_key": hex::encode(dk.expose_secret()),
                "payload_key": hkdf(dk.expose_secret(), &id, b"pgsnap v1 payload"),
                "header_mac_key": hkdf(dk.expose_secret(), &id, b"pgsnap v1 header"),
                "keyfile_slot_key": hkdf(&kf_bytes, &id, b"pgsnap v1 keyfile slot"),
                "slot_kinds": [1, 2, 3, 200],
                "segment_codecs": [1, 1, 0, 2],
                "entries": expected_entries,
                "meta": {"pgsnap_vector": 1, "server_version": "16.2"},
            }),
        );
    }
    let expected = json!({
        "key_file": "test-vector.key",
        "key_id": hex::encode(key_file_key().key_id()),
        "passphrase": PASSPHRASE,
        "argon2": {"m_cost_kib": 64, "t_cost": 1, "p": 1},
        "files": files,
    });
    std::fs::write(
        d.join("expected.json"),
        serde_json::to_string_pretty(&expected).unwrap() + "\n",
    )
    .unwrap();
}

fn write_tmp(dir: &tempfile::TempDir, bytes: &[u8]) -> PathBuf {
    let p = dir.path().join("v.pgsnap");
    std::fs::write(&p, bytes).unwrap();
    p
}

fn expected() -> Value {
    serde_json::from_slice(&std::fs::read(dir().join("expected.json")).unwrap()).unwrap()
}

fn load(cipher: Cipher) -> Vec<u8> {
    std::fs::read(dir().join(file_name(cipher))).unwrap()
}

#[test]
fn vectors_decode_to_expected_contents() {
    let exp = expected();
    let kf = KeyFileKey::load(&dir().join(exp["key_file"].as_str().unwrap())).unwrap();
    assert_eq!(hex::encode(kf.key_id()), exp["key_id"]);
    let pw = Passphrase::new(exp["passphrase"].as_str().unwrap()).unwrap();
    for cipher in [Cipher::Aes256Gcm, Cipher::ChaCha20Poly1305] {
        let e = &exp["files"][file_name(cipher)];
        let bytes = load(cipher);
        assert_eq!(hex::encode(sha(&bytes)), e["sha256"], "vector file changed");
        let (h, hlen) = Header::parse(&bytes).unwrap();
        assert_eq!(h.cipher, cipher);
        assert_eq!(h.cipher.to_string(), e["cipher"]);
        assert_eq!(h.chunk_size as u64, e["chunk_size"]);
        assert_eq!(hex::encode(h.archive_id), e["archive_id"]);
        assert_eq!(hex::encode(h.nonce_prefix), e["nonce_prefix"]);
        let kinds: Vec<u64> = h.slots.iter().map(|s| s.kind() as u64).collect();
        assert_eq!(json!(kinds), e["slot_kinds"]);
        let dk =
            DataKey::from_slice(&hex::decode(e["data_key"].as_str().unwrap()).unwrap()).unwrap();
        for how in [
            Unlock::KeyFile(&kf),
            Unlock::Passphrase(&pw),
            Unlock::DataKey(dk),
        ] {
            let open = h.unlock(&how).unwrap();
            let mut codecs = Vec::new();
            let s = open
                .read_stream(&bytes[hlen..], |info, _| {
                    codecs.push(info.codec.id());
                    Ok(())
                })
                .unwrap();
            assert_eq!(json!(codecs), e["segment_codecs"]);
            assert_eq!(s.index.meta, e["meta"]);
            assert_eq!(s.bytes, bytes.len() as u64);
        }
        let tmp = tempfile::tempdir().unwrap();
        let p = tmp.path().join("v.pgsnap");
        std::fs::write(&p, &bytes).unwrap();
        let a = ArchiveFile::open(&p, &Unlock::KeyFile(&kf)).unwrap();
        a.verify_all().unwrap();
        let ents = e["entries"].as_array().unwrap();
        assert_eq!(a.index().entries.len(), ents.len());
        for (got, want) in a.index().entries.iter().zip(ents) {
            assert_eq!(json!(got.id), want["id"]);
            assert_eq!(json!(got.kind), want["kind"]);
            assert_eq!(json!(got.name), want["name"]);
            assert_eq!(json!(got.rows), want["rows"]);
            assert_eq!(got.meta, want["meta"]);
            assert_eq!(hex::encode(a.read_entry(got.id).unwrap()), want["raw_hex"]);
        }
    }
}

#[test]
fn writer_still_produces_the_vector_header_and_stored_segments() {
    // Header and codec-0 segments involve no compressor, so the current
    // writer must reproduce them byte for byte from the fixed inputs.
    let tmp = tempfile::tempdir().unwrap();
    for cipher in [Cipher::Aes256Gcm, Cipher::ChaCha20Poly1305] {
        let bytes = load(cipher);
        let (h, hlen) = Header::parse(&bytes).unwrap();
        assert_eq!(
            &bytes[..fixed_header(cipher).len()],
            &fixed_header(cipher)[..]
        );
        let w = writer(cipher);
        assert_eq!(w.bytes_written(), hlen as u64);
        let a =
            ArchiveFile::open(&write_tmp(&tmp, &bytes), &Unlock::KeyFile(&key_file_key())).unwrap();
        let (counter, entry, rows, raw, comp) = chunks().remove(2);
        let sealed = w
            .sealer()
            .seal_with(counter, entry, rows, &raw, comp)
            .unwrap();
        assert_eq!(sealed.codec(), Codec::None);
        let c = a.index().entries[0]
            .chunks
            .iter()
            .find(|c| c.counter == 2)
            .copied()
            .unwrap();
        assert_eq!(
            sealed.frame(),
            &bytes[c.range().start as usize..c.range().end as usize]
        );
        let (hdr_bytes, _) = w.finish(vec![], Value::Null).unwrap();
        assert_eq!(&hdr_bytes[..hlen], h.as_bytes());
    }
}

/// Returns the error of opening + fully verifying `bytes`.
fn open_err(bytes: &[u8], kf: &KeyFileKey) -> Error {
    let r = (|| -> pgsnap::Result<()> {
        let (h, hlen) = Header::parse(bytes)?;
        let open = h.unlock(&Unlock::KeyFile(kf))?;
        let fb: [u8; 24] = bytes
            .get(bytes.len().saturating_sub(24)..)
            .and_then(|s| s.try_into().ok())
            .ok_or(Error::Truncated { needed: 24 })?;
        let f = Footer::parse(&fb)?;
        f.check_against(hlen, bytes.len() as u64)?;
        let index = open.open_index(&bytes[f.index_offset as usize..bytes.len() - 24], &f)?;
        for e in &index.entries {
            for c in &e.chunks {
                open.open_entry_chunk(
                    e.id,
                    c,
                    &bytes[c.range().start as usize..c.range().end as usize],
                )?;
            }
        }
        open.read_stream(&bytes[hlen..], |_, _| Ok(()))?;
        Ok(())
    })();
    r.expect_err("tampered vector was accepted")
}

#[test]
fn tampered_vectors_are_refused() {
    let kf = key_file_key();
    let tmp = tempfile::tempdir().unwrap();
    let good = load(Cipher::Aes256Gcm);
    let (h, hlen) = Header::parse(&good).unwrap();
    let f = Footer::parse(good[good.len() - 24..].try_into().unwrap()).unwrap();
    let flip = |i: usize| {
        let mut b = good.clone();
        b[i] ^= 0x01;
        b
    };
    assert!(matches!(open_err(&flip(0), &kf), Error::Format(_)));
    assert!(matches!(open_err(&flip(8), &kf), Error::Unsupported(_)));
    assert!(matches!(open_err(&flip(10), &kf), Error::Unsupported(_)));
    // Archive default codec, chunk_size, archive_id, nonce prefix: bound by
    // the slot AAD (and the MAC).
    for i in [11, 12, 20, 35, 38] {
        assert!(matches!(open_err(&flip(i), &kf), Error::Auth), "byte {i}");
    }
    // Last slot (unknown kind, only covered by the MAC) and the MAC itself.
    assert!(matches!(open_err(&flip(hlen - 40), &kf), Error::Auth));
    assert!(matches!(open_err(&flip(hlen - 1), &kf), Error::Auth));
    // First segment and index segment.
    assert!(matches!(open_err(&flip(hlen + 10), &kf), Error::Auth));
    assert!(matches!(
        open_err(&flip(f.index_offset as usize + 10), &kf),
        Error::Auth
    ));
    // Footer: offset and length are checked against the file length, the
    // counter by authentication, the magic directly.
    let n = good.len();
    assert!(matches!(open_err(&flip(n - 24), &kf), Error::Format(_)));
    assert!(matches!(open_err(&flip(n - 16), &kf), Error::Format(_)));
    assert!(matches!(open_err(&flip(n - 12), &kf), Error::Auth));
    assert!(matches!(open_err(&flip(n - 1), &kf), Error::Format(_)));
    // Truncated or extended by one byte.
    assert!(matches!(open_err(&good[..n - 1], &kf), Error::Format(_)));
    let mut longer = good.clone();
    longer.push(0);
    assert!(matches!(open_err(&longer, &kf), Error::Format(_)));
    assert_eq!(h.slots.len(), 4);
    // Segments 0 and 1 exchanged (the index still describes the old order).
    let a = ArchiveFile::open(&write_tmp(&tmp, &good), &Unlock::KeyFile(&kf)).unwrap();
    let mut by_counter: Vec<_> = a
        .index()
        .entries
        .iter()
        .flat_map(|e| e.chunks.clone())
        .collect();
    by_counter.sort_by_key(|c| c.counter);
    let (c0, c1) = (by_counter[0], by_counter[1]);
    let mut swapped = good[..c0.offset as usize].to_vec();
    swapped.extend_from_slice(&good[c1.range().start as usize..c1.range().end as usize]);
    swapped.extend_from_slice(&good[c0.range().start as usize..c0.range().end as usize]);
    swapped.extend_from_slice(&good[c1.range().end as usize..]);
    // Frames no longer where the index says: refused (length check or AEAD).
    let e = open_err(&swapped, &kf);
    assert!(matches!(e, Error::Auth | Error::Format(_)), "{e}");
    // The index and footer of the other vector spliced on.
    let other = load(Cipher::ChaCha20Poly1305);
    let mut spliced = good[..f.index_offset as usize].to_vec();
    let fo = Footer::parse(other[other.len() - 24..].try_into().unwrap()).unwrap();
    spliced.extend_from_slice(&other[fo.index_offset as usize..]);
    open_err(&spliced, &kf);
    // Wrong key file.
    assert!(matches!(
        open_err(&good, &KeyFileKey::generate()),
        Error::WrongKey(_)
    ));
}
