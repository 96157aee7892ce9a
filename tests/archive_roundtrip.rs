//! Round-trip and tamper-detection tests for the archive format.

use std::io::Write;

use pgsnap::archive::{
    ArchiveFile, ArchiveOptions, ArchiveWriter, ChunkPipeline, Cipher, Compression, EntryInfo,
    Footer, Header, SlotSpec, Unlock,
};
use pgsnap::keys::{DataKey, KeyFileKey, Passphrase};
use pgsnap::{Error, Result};
use proptest::prelude::*;

fn entry(id: u32) -> EntryInfo {
    EntryInfo {
        id,
        kind: "table".into(),
        name: Some(format!("public.t{id}")),
        meta: serde_json::json!({ "columns": ["a", "b"], "id": id }),
    }
}

/// Opens and fully verifies an in-memory archive with the sans-IO API,
/// returning every entry's byte stream.
fn open_all(bytes: &[u8], how: &Unlock<'_>) -> Result<Vec<(u32, Vec<u8>)>> {
    let (header, hlen) = Header::parse(bytes)?;
    let open = header.unlock(how)?;
    if bytes.len() < hlen + Footer::LEN {
        return Err(Error::Truncated {
            needed: (hlen + Footer::LEN) as u64,
        });
    }
    let footer = Footer::parse(bytes[bytes.len() - Footer::LEN..].try_into().unwrap())?;
    footer.check_against(hlen, bytes.len() as u64)?;
    let s = footer.index_offset as usize;
    let index = open.open_index(&bytes[s..s + footer.index_frame_len as usize], &footer)?;
    let mut out = Vec::new();
    for e in &index.entries {
        let mut data = Vec::new();
        for c in &e.chunks {
            let r = c.range();
            data.extend(open.open_entry_chunk(
                e.id,
                c,
                &bytes[r.start as usize..r.end as usize],
            )?);
        }
        out.push((e.id, data));
    }
    let streamed = open.read_stream(&bytes[hlen..], |_, _| Ok(()))?;
    assert_eq!(streamed.index, index);
    Ok(out)
}

fn text_bytes(seed: u64, n: usize) -> Vec<u8> {
    let mut out = Vec::with_capacity(n + 64);
    let mut i = seed;
    while out.len() < n {
        i = i
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        out.extend_from_slice(
            format!(
                "{}\t2024-01-{:02} 12:00:00\tname{}\n",
                i % 100000,
                i % 28 + 1,
                i % 97
            )
            .as_bytes(),
        );
    }
    out.truncate(n);
    out
}

/// A small archive with several chunks in two entries (key-file slot).
fn sample(kf: &KeyFileKey, chunk_size: u32, seed: u64) -> Vec<u8> {
    sample_with(kf, chunk_size, seed, Compression::default())
}

fn sample_with(kf: &KeyFileKey, chunk_size: u32, seed: u64, compression: Compression) -> Vec<u8> {
    let dk = DataKey::generate();
    let opts = ArchiveOptions {
        chunk_size,
        compression,
        ..Default::default()
    };
    let mut w = ArchiveWriter::new(Vec::new(), opts, &dk, vec![SlotSpec::KeyFile(kf)]).unwrap();
    for i in 0..8u32 {
        let raw = if i == 3 {
            let mut r = vec![0u8; chunk_size as usize];
            rand::RngCore::fill_bytes(&mut rand::thread_rng(), &mut r);
            r
        } else {
            text_bytes(seed + i as u64, chunk_size as usize)
        };
        w.write_chunk(i % 2, 10, &raw).unwrap();
    }
    w.finish(vec![entry(0), entry(1)], serde_json::json!({"v": 1}))
        .unwrap()
        .0
}

#[derive(Debug, Clone)]
struct Case {
    cipher: Cipher,
    compression: Compression,
    chunk_size: u32,
    threads: usize,
    in_flight: usize,
    /// (entry id, text-like?, bytes)
    pieces: Vec<(u32, Vec<u8>)>,
}

fn case_strategy() -> impl Strategy<Value = Case> {
    let cipher = prop_oneof![Just(Cipher::Aes256Gcm), Just(Cipher::ChaCha20Poly1305)];
    let comp = prop_oneof![
        Just(Compression::None),
        Just(Compression::Zstd(1)),
        Just(Compression::Zstd(3)),
        Just(Compression::Lz4)
    ];
    let piece = (
        0u32..3,
        any::<bool>(),
        any::<u64>(),
        0usize..3000,
        prop::collection::vec(any::<u8>(), 0..300),
    )
        .prop_map(|(e, text, seed, n, rnd)| (e, if text { text_bytes(seed, n) } else { rnd }));
    (
        cipher,
        comp,
        16u32..2048,
        1usize..4,
        1usize..6,
        prop::collection::vec(piece, 0..12),
    )
        .prop_map(
            |(cipher, compression, chunk_size, threads, in_flight, pieces)| Case {
                cipher,
                compression,
                chunk_size,
                threads,
                in_flight,
                pieces,
            },
        )
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 48, ..ProptestConfig::default() })]

    #[test]
    fn pipeline_roundtrip(case in case_strategy()) {
        let kf = KeyFileKey::generate();
        let dk = DataKey::generate();
        let opts = ArchiveOptions { cipher: case.cipher, compression: case.compression, chunk_size: case.chunk_size };
        let w = ArchiveWriter::new(Vec::new(), opts, &dk, vec![SlotSpec::KeyFile(&kf)]).unwrap();
        let p = ChunkPipeline::new(w, case.threads, case.in_flight);
        let mut expect: Vec<Vec<u8>> = vec![Vec::new(); 3];
        let mut rows = [0u64; 3];
        for (e, raw) in &case.pieces {
            // Pieces larger than chunk_size are split by submit.
            p.submit(*e, 2, raw.clone()).unwrap();
            expect[*e as usize].extend_from_slice(raw);
            rows[*e as usize] += 2;
        }
        let progress = p.sender().progress();
        let (bytes, summary) = p.finish((0..3).map(entry).collect(), serde_json::Value::Null).unwrap();
        prop_assert_eq!(summary.bytes, bytes.len() as u64);
        prop_assert!(progress.bytes <= summary.bytes && progress.chunks <= summary.chunks);
        let digest: [u8; 32] = <sha2::Sha256 as sha2::Digest>::digest(&bytes).into();
        prop_assert_eq!(summary.sha256, digest);
        let got = open_all(&bytes, &Unlock::KeyFile(&kf)).unwrap();
        prop_assert_eq!(got.len(), 3);
        for (id, data) in got {
            prop_assert_eq!(&data, &expect[id as usize]);
            prop_assert_eq!(summary.entries[id as usize].rows, rows[id as usize]);
            prop_assert_eq!(summary.entries[id as usize].raw_bytes, expect[id as usize].len() as u64);
        }
    }

    #[test]
    fn any_flipped_bit_is_detected(pos in any::<prop::sample::Index>(), bit in 0u8..8) {
        let kf = KeyFileKey::from_bytes([9; 32]);
        let mut bytes = sample(&kf, 200, 1);
        let i = pos.index(bytes.len());
        bytes[i] ^= 1 << bit;
        prop_assert!(open_all(&bytes, &Unlock::KeyFile(&kf)).is_err(), "flip at {} not detected", i);
    }
}

#[test]
fn every_flipped_byte_position_is_detected() {
    let kf = KeyFileKey::generate();
    let bytes = sample(&kf, 64, 2);
    open_all(&bytes, &Unlock::KeyFile(&kf)).unwrap();
    for i in 0..bytes.len() {
        for mask in [0x01u8, 0x80] {
            let mut b = bytes.clone();
            b[i] ^= mask;
            assert!(
                open_all(&b, &Unlock::KeyFile(&kf)).is_err(),
                "flip {mask:#x} at {i} of {} not detected",
                b.len()
            );
        }
    }
}

#[test]
fn archive_file_detects_flips_at_sample_positions() {
    let kf = KeyFileKey::generate();
    let bytes = sample(&kf, 300, 3);
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("a.pgsnap");
    for i in (0..bytes.len()).step_by(37).chain([bytes.len() - 1]) {
        let mut b = bytes.clone();
        b[i] ^= 0x10;
        std::fs::write(&p, &b).unwrap();
        let r = ArchiveFile::open(&p, &Unlock::KeyFile(&kf)).and_then(|a| {
            a.verify_all()?;
            for e in a.index().entries.clone() {
                a.read_entry(e.id)?;
            }
            Ok(())
        });
        assert!(r.is_err(), "flip at {i} not detected");
    }
}

#[test]
fn truncation_and_trailing_garbage_detected() {
    let kf = KeyFileKey::generate();
    let bytes = sample(&kf, 64, 4);
    for n in 0..bytes.len() {
        assert!(
            open_all(&bytes[..n], &Unlock::KeyFile(&kf)).is_err(),
            "truncation to {n} not detected"
        );
        // The streaming verifier alone must also notice.
        if let Ok((h, hlen)) = Header::parse(&bytes[..n]) {
            let open = h.unlock(&Unlock::KeyFile(&kf)).unwrap();
            assert!(
                open.read_stream(&bytes[hlen..n], |_, _| Ok(())).is_err(),
                "stream truncated at {n}"
            );
        }
    }
    let mut extra = bytes.clone();
    extra.push(0);
    assert!(open_all(&extra, &Unlock::KeyFile(&kf)).is_err());
    let (h, hlen) = Header::parse(&bytes).unwrap();
    let open = h.unlock(&Unlock::KeyFile(&kf)).unwrap();
    let err = open.read_stream(&extra[hlen..], |_, _| Ok(())).unwrap_err();
    assert!(err.to_string().contains("after the footer"), "{err}");
}

#[test]
fn chunks_swapped_between_archives_or_reordered_are_detected() {
    let kf = KeyFileKey::generate();
    let a = sample(&kf, 128, 5);
    let b = sample(&kf, 128, 5);
    let (ha, _) = Header::parse(&a).unwrap();
    let open = ha.unlock(&Unlock::KeyFile(&kf)).unwrap();
    let fa = Footer::parse(a[a.len() - 24..].try_into().unwrap()).unwrap();
    let ia = open
        .open_index(&a[fa.index_offset as usize..a.len() - 24], &fa)
        .unwrap();
    let fb = Footer::parse(b[b.len() - 24..].try_into().unwrap()).unwrap();
    let ib = {
        let (hb, _) = Header::parse(&b).unwrap();
        let ob = hb.unlock(&Unlock::KeyFile(&kf)).unwrap();
        ob.open_index(&b[fb.index_offset as usize..b.len() - 24], &fb)
            .unwrap()
    };
    // Same-size chunk 0 from archive b spliced into archive a.
    let ca = ia.entries[0].chunks[0];
    let cb = ib.entries[0].chunks[0];
    assert_eq!(ca.len, cb.len, "test needs equal frame sizes");
    let mut spliced = a.clone();
    spliced[ca.range().start as usize..ca.range().end as usize]
        .copy_from_slice(&b[cb.range().start as usize..cb.range().end as usize]);
    assert!(matches!(
        open_all(&spliced, &Unlock::KeyFile(&kf)),
        Err(Error::Auth)
    ));
    // The index of b spliced onto a.
    let mut spliced = a[..fa.index_offset as usize].to_vec();
    spliced.extend_from_slice(&b[fb.index_offset as usize..]);
    assert!(open_all(&spliced, &Unlock::KeyFile(&kf)).is_err());
    // Two chunks swapped (uncompressed, so the frames have the same size).
    let a = sample_with(&kf, 128, 5, Compression::None);
    let (ha, _) = Header::parse(&a).unwrap();
    let open = ha.unlock(&Unlock::KeyFile(&kf)).unwrap();
    let fa = Footer::parse(a[a.len() - 24..].try_into().unwrap()).unwrap();
    let ia = open
        .open_index(&a[fa.index_offset as usize..a.len() - 24], &fa)
        .unwrap();
    let c0 = ia.entries[0].chunks[0];
    let c2 = ia.entries[0].chunks[1];
    assert_eq!(c0.len, c2.len);
    let mut swapped = a.clone();
    let (r0, r2) = (c0.range(), c2.range());
    swapped[r0.start as usize..r0.end as usize]
        .copy_from_slice(&a[r2.start as usize..r2.end as usize]);
    swapped[r2.start as usize..r2.end as usize]
        .copy_from_slice(&a[r0.start as usize..r0.end as usize]);
    assert!(open_all(&swapped, &Unlock::KeyFile(&kf)).is_err());
    // Dropping the last data segment (and fixing up the footer) is detected.
    let last = ia.entries[1].chunks.last().unwrap();
    let mut dropped = a[..last.offset as usize].to_vec();
    dropped.extend_from_slice(&a[fa.index_offset as usize..a.len() - 24]);
    let f = Footer {
        index_offset: last.offset,
        ..fa
    };
    dropped.extend_from_slice(&f.to_bytes());
    assert!(open_all(&dropped, &Unlock::KeyFile(&kf)).is_err());
}

#[test]
fn wrong_keys_are_reported() {
    let kf = KeyFileKey::generate();
    let pw = Passphrase::new("open sesame").unwrap();
    let cheap = pgsnap::archive::Argon2Params {
        m_cost_kib: 64,
        t_cost: 1,
        p: 1,
    };
    let dk = DataKey::generate();
    let mut w = ArchiveWriter::new(
        Vec::new(),
        ArchiveOptions::default(),
        &dk,
        vec![
            SlotSpec::Kms {
                key_id: "alias/backup".into(),
                ciphertext: vec![1; 100],
            },
            SlotSpec::KeyFile(&kf),
            SlotSpec::Passphrase(&pw, cheap),
        ],
    )
    .unwrap();
    w.write_chunk(1, 1, b"hello\n").unwrap();
    let (bytes, _) = w.finish(vec![entry(1)], serde_json::Value::Null).unwrap();

    let other = KeyFileKey::generate();
    let err = open_all(&bytes, &Unlock::KeyFile(&other)).unwrap_err();
    assert!(matches!(err, Error::WrongKey(_)), "{err}");
    let msg = err.to_string();
    assert!(
        msg.contains("passphrase") && msg.contains("kms") && msg.contains("key file"),
        "{msg}"
    );
    let bad = Passphrase::new("open sesame!").unwrap();
    assert!(matches!(
        open_all(&bytes, &Unlock::Passphrase(&bad)),
        Err(Error::WrongKey(_))
    ));
    assert!(matches!(
        open_all(&bytes, &Unlock::DataKey(DataKey::generate())),
        Err(Error::Auth)
    ));

    for how in [
        Unlock::KeyFile(&kf),
        Unlock::Passphrase(&pw),
        Unlock::DataKey(dk.clone()),
    ] {
        assert_eq!(
            open_all(&bytes, &how).unwrap(),
            vec![(1, b"hello\n".to_vec())]
        );
    }
}

#[test]
fn key_file_on_disk_opens_archive() {
    let dir = tempfile::tempdir().unwrap();
    let kp = dir.path().join("backup.key");
    KeyFileKey::generate_file(&kp).unwrap();
    let kf = KeyFileKey::load(&kp).unwrap();
    let bytes = sample(&kf, 100, 6);
    let ap = dir.path().join("a.pgsnap");
    std::fs::write(&ap, &bytes).unwrap();
    let a = ArchiveFile::open(&ap, &Unlock::KeyFile(&KeyFileKey::load(&kp).unwrap())).unwrap();
    a.verify_all().unwrap();
    assert_eq!(a.index().chunk_count(), 8);
}

/// A writer that fails after `limit` bytes.
#[derive(Debug)]
struct FailingWriter {
    written: usize,
    limit: usize,
}

impl Write for FailingWriter {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        if self.written + buf.len() > self.limit {
            return Err(std::io::Error::other("disk full"));
        }
        self.written += buf.len();
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

#[test]
fn pipeline_write_error_fails_fast_and_is_returned() {
    let kf = KeyFileKey::generate();
    let dk = DataKey::generate();
    let opts = ArchiveOptions {
        chunk_size: 1000,
        ..Default::default()
    };
    let w = ArchiveWriter::new(
        FailingWriter {
            written: 0,
            limit: 5000,
        },
        opts,
        &dk,
        vec![SlotSpec::KeyFile(&kf)],
    )
    .unwrap();
    let p = ChunkPipeline::new(w, 2, 3);
    let senders: Vec<_> = (0..3).map(|_| p.sender()).collect();
    let handles: Vec<_> = senders
        .into_iter()
        .enumerate()
        .map(|(t, s)| {
            std::thread::spawn(move || {
                for i in 0..1000u64 {
                    let mut raw = vec![0u8; 1000];
                    rand::RngCore::fill_bytes(&mut rand::thread_rng(), &mut raw);
                    if let Err(e) = s.submit(t as u32, i, raw) {
                        return Some(e);
                    }
                }
                None
            })
        })
        .collect();
    for h in handles {
        let e = h
            .join()
            .unwrap()
            .expect("submit must fail once the writer failed");
        assert!(
            matches!(e, Error::Pipeline(ref m) if m.contains("disk full")),
            "{e}"
        );
    }
    let err = p
        .finish((0..3).map(entry).collect(), serde_json::Value::Null)
        .unwrap_err();
    assert!(
        matches!(err, Error::Io(ref e) if e.to_string().contains("disk full")),
        "{err}"
    );
}

#[test]
fn writer_refuses_out_of_order_and_foreign_chunks() {
    let kf = KeyFileKey::generate();
    let dk = DataKey::generate();
    let mut w = ArchiveWriter::new(
        Vec::new(),
        ArchiveOptions::default(),
        &dk,
        vec![SlotSpec::KeyFile(&kf)],
    )
    .unwrap();
    let s = w.sealer();
    assert!(w.write_sealed(s.seal(1, 0, 0, b"x").unwrap()).is_err());
    let w2 = ArchiveWriter::new(
        Vec::new(),
        ArchiveOptions::default(),
        &dk,
        vec![SlotSpec::KeyFile(&kf)],
    )
    .unwrap();
    assert!(w
        .write_sealed(w2.sealer().seal(0, 0, 0, b"x").unwrap())
        .is_err());
    w.write_sealed(s.seal(0, 0, 0, b"x").unwrap()).unwrap();
    // A chunk for an entry that is not described is refused at finish.
    assert!(w.finish(vec![entry(5)], serde_json::Value::Null).is_err());
}

#[test]
fn empty_archive_roundtrips() {
    let kf = KeyFileKey::generate();
    let dk = DataKey::generate();
    let w = ArchiveWriter::new(
        Vec::new(),
        ArchiveOptions::default(),
        &dk,
        vec![SlotSpec::KeyFile(&kf)],
    )
    .unwrap();
    let (bytes, s) = w.finish(vec![entry(0)], serde_json::Value::Null).unwrap();
    assert_eq!(s.chunks, 0);
    assert_eq!(
        open_all(&bytes, &Unlock::KeyFile(&kf)).unwrap(),
        vec![(0, vec![])]
    );
}

#[test]
fn shared_types_are_send_and_sync() {
    fn check<T: Send + Sync>() {}
    check::<pgsnap::archive::Sealer>();
    check::<pgsnap::archive::OpenArchive>();
    check::<pgsnap::archive::ChunkSender>();
    check::<pgsnap::archive::Index>();
    check::<ArchiveFile>();
    check::<Header>();
    check::<DataKey>();
    check::<KeyFileKey>();
    check::<Error>();
}

#[test]
fn dropped_pipeline_abandons_the_archive_without_hanging() {
    let kf = KeyFileKey::generate();
    let dk = DataKey::generate();
    let w = ArchiveWriter::new(
        Vec::new(),
        ArchiveOptions::default(),
        &dk,
        vec![SlotSpec::KeyFile(&kf)],
    )
    .unwrap();
    let p = ChunkPipeline::new(w, 2, 2);
    let s = p.sender();
    for i in 0..5 {
        s.submit(1, i, vec![b'x'; 1000]).unwrap();
    }
    drop(p);
    assert!(s.submit(1, 0, vec![1]).is_err());
}

#[test]
fn stream_verifier_accepts_any_piece_sizes() {
    use pgsnap::archive::StreamVerifier;
    let kf = KeyFileKey::generate();
    let bytes = sample(&kf, 300, 7);
    let (h, hlen) = Header::parse(&bytes).unwrap();
    let open = h.unlock(&Unlock::KeyFile(&kf)).unwrap();
    let body = &bytes[hlen..];
    let mut reference = Vec::new();
    let whole = open
        .read_stream(body, |i, raw| {
            reference.push((i, raw.to_vec()));
            Ok(())
        })
        .unwrap();
    for piece in [1usize, 3, 24, 29, 1000, body.len()] {
        let mut v = StreamVerifier::new(&open);
        let mut got = Vec::new();
        for p in body.chunks(piece) {
            v.push(p, |i, raw| {
                got.push((i, raw.to_vec()));
                Ok(())
            })
            .unwrap();
        }
        assert_eq!(v.position(), bytes.len() as u64);
        let s = v.finish().unwrap();
        assert_eq!(s.index, whole.index);
        assert_eq!(got, reference, "piece size {piece}");
    }
    // Truncated input fails at finish, extra input at push.
    let mut v = StreamVerifier::new(&open);
    v.push(&body[..body.len() - 1], |_, _| Ok(())).unwrap();
    assert!(matches!(v.finish(), Err(Error::Truncated { .. })));
    let mut v = StreamVerifier::new(&open);
    v.push(body, |_, _| Ok(())).unwrap();
    assert!(v.push(b"x", |_, _| Ok(())).is_err());
}

#[test]
fn malformed_prebuilt_slots_are_refused_by_the_writer() {
    use pgsnap::archive::KeySlot;
    let dk = DataKey::generate();
    for slot in [
        KeySlot::Kms {
            key_id: "k".repeat(70_000),
            ciphertext: vec![1],
        },
        KeySlot::Kms {
            key_id: "k".into(),
            ciphertext: vec![],
        },
        KeySlot::Unknown {
            kind: 1,
            body: vec![0; 3],
        },
        KeySlot::Unknown {
            kind: 9,
            body: vec![0; 20_000],
        },
    ] {
        let r = ArchiveWriter::new(
            Vec::new(),
            ArchiveOptions::default(),
            &dk,
            vec![SlotSpec::Prebuilt(slot)],
        );
        assert!(matches!(r, Err(Error::InvalidInput(_))));
    }
}

/// What restore reads an archive with: chunks opened from storage by range,
/// or taken from those its authentication pass kept (read and decrypted
/// once), each checked to belong to the entry asked for.
#[tokio::test]
async fn stored_archive_opens_kept_and_fetched_chunks_alike() {
    use pgsnap::credentials::Credentials;
    use pgsnap::repo::reader::StoredArchive;
    use pgsnap::repo::{LocalStorage, Storage};
    use std::sync::Arc;

    let dir = tempfile::tempdir().unwrap();
    let kp = dir.path().join("backup.key");
    KeyFileKey::generate_file(&kp).unwrap();
    let storage: Arc<dyn Storage> = Arc::new(LocalStorage::new(dir.path()));
    let creds = Credentials::from_key_file(&kp).unwrap();

    // A small archive is whole in the first read (the header's): its
    // footer, index and chunks are not read, nor counted, again.
    let small = sample(&KeyFileKey::load(&kp).unwrap(), 100, 9);
    assert!(small.len() < 4096);
    std::fs::write(dir.path().join("small.pgsnap"), &small).unwrap();
    let a = StoredArchive::open(storage.clone(), "small.pgsnap", &creds)
        .await
        .unwrap();
    assert_eq!(a.bytes_read(), small.len() as u64);
    for id in [0, 1] {
        let chunks = a.entry(id).unwrap().chunks.clone();
        a.open_chunks(id, &chunks).await.unwrap();
    }
    assert_eq!(a.bytes_read(), small.len() as u64);

    // One whose chunks lie beyond the first read (chunk 3 is 8 KiB of
    // random bytes).
    let bytes = sample(&KeyFileKey::load(&kp).unwrap(), 8192, 9);
    std::fs::write(dir.path().join("a.pgsnap"), &bytes).unwrap();
    let a = StoredArchive::open(storage, "a.pgsnap", &creds)
        .await
        .unwrap();
    let expected = open_all(&bytes, &Unlock::KeyFile(&KeyFileKey::load(&kp).unwrap())).unwrap();
    let chunks = |id: u32| a.entry(id).unwrap().chunks.clone();
    let contents = |opened: Vec<pgsnap::archive::OpenedChunk>| {
        opened
            .iter()
            .flat_map(|o| o.decompress().unwrap())
            .collect::<Vec<u8>>()
    };

    // Fetched: read from storage in coalesced ranges (the other entry's
    // chunks between them come along), every byte counted once: what the
    // first read (4 KiB, or the archive) already holds is not fetched again.
    let before = a.bytes_read();
    let fetched = a.open_chunks(0, &chunks(0)).await.unwrap();
    assert_eq!(contents(fetched), expected[0].1);
    let (first, last) = (chunks(0)[0], *chunks(0).last().unwrap());
    assert!(first.offset < 4096, "the first chunk follows the header");
    assert_eq!(
        a.bytes_read() - before,
        last.offset + last.len as u64 - first.offset.max(4096)
    );

    // Kept: the authentication pass's results, used once, nothing read again.
    let frames = a.fetch(&chunks(1)).await.unwrap();
    let opened: Vec<_> = frames
        .iter()
        .map(|(c, f)| (*c, a.open.authenticate_chunk(c, f).unwrap()))
        .collect();
    a.keep(opened);
    let before = a.bytes_read();
    assert_eq!(
        contents(a.open_chunks(1, &chunks(1)).await.unwrap()),
        expected[1].1
    );
    assert_eq!(a.bytes_read(), before);

    // Chunks of another entry are refused, kept or not.
    assert!(matches!(
        a.open_chunks(1, &chunks(0)).await,
        Err(Error::Auth)
    ));
    let frames = a.fetch(&chunks(0)).await.unwrap();
    a.keep(
        frames
            .iter()
            .map(|(c, f)| (*c, a.open.authenticate_chunk(c, f).unwrap())),
    );
    assert!(matches!(
        a.open_chunks(1, &chunks(0)).await,
        Err(Error::Auth)
    ));
}
