//! Compression codecs of the format and the writer's compression setting.
//!
//! Owns the codec ids (`Codec`), the user-facing choice with a level
//! (`Compression`), compression into a caller-provided buffer and *bounded*
//! decompression: a decoder never produces more than the declared `raw_len`
//! and the result must be exactly `raw_len` bytes.

use std::cell::RefCell;
use std::fmt;
use std::str::FromStr;

use crate::error::{Error, Result};

/// Codec id stored in the header (archive default) and in every segment.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Codec {
    None,
    Zstd,
    Lz4,
}

impl Codec {
    pub fn id(self) -> u8 {
        match self {
            Codec::None => 0,
            Codec::Zstd => 1,
            Codec::Lz4 => 2,
        }
    }

    pub fn from_id(id: u8) -> Result<Codec> {
        match id {
            0 => Ok(Codec::None),
            1 => Ok(Codec::Zstd),
            2 => Ok(Codec::Lz4),
            _ => Err(Error::Unsupported(format!("compression codec id {id}"))),
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Codec::None => "none",
            Codec::Zstd => "zstd",
            Codec::Lz4 => "lz4",
        }
    }
}

/// Default zstd level. The size target is "no larger than `pg_dump -Fc`",
/// which compresses with gzip -6. Measured on chunks of COPY-like text
/// (docs/benchmarks.md, "Archive path"), zstd 1 is 10-17% *larger* than
/// gzip -6 on realistic data, while zstd 3 with the default 4 MiB chunks is
/// 1-4% smaller and still compresses at roughly 200 MiB/s per core, several
/// times faster than gzip -6. Use `zstd:1` when speed matters more than
/// size, `zstd:5` or more for a clear size margin.
pub const DEFAULT_ZSTD_LEVEL: i32 = 3;

/// How the writer compresses chunks.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Compression {
    None,
    /// zstd with a level (negative levels = faster "fast" modes, up to 22).
    Zstd(i32),
    Lz4,
}

impl Default for Compression {
    fn default() -> Self {
        Compression::Zstd(DEFAULT_ZSTD_LEVEL)
    }
}

impl Compression {
    pub fn codec(self) -> Codec {
        match self {
            Compression::None => Codec::None,
            Compression::Zstd(_) => Codec::Zstd,
            Compression::Lz4 => Codec::Lz4,
        }
    }
}

impl fmt::Display for Compression {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Compression::None => f.write_str("none"),
            Compression::Zstd(l) => write!(f, "zstd:{l}"),
            Compression::Lz4 => f.write_str("lz4"),
        }
    }
}

impl FromStr for Compression {
    type Err = Error;

    /// Accepts `none`, `lz4`, `zstd` (default level) and `zstd:LEVEL`.
    fn from_str(s: &str) -> Result<Self> {
        let lower = s.trim().to_ascii_lowercase();
        match lower.as_str() {
            "none" => return Ok(Compression::None),
            "lz4" => return Ok(Compression::Lz4),
            "zstd" => return Ok(Compression::Zstd(DEFAULT_ZSTD_LEVEL)),
            _ => {}
        }
        if let Some(level) = lower.strip_prefix("zstd:") {
            let level: i32 = level
                .parse()
                .map_err(|_| Error::InvalidInput(format!("invalid zstd level in {s:?}")))?;
            let range = zstd::compression_level_range();
            if !range.contains(&level) || level == 0 {
                return Err(Error::InvalidInput(format!(
                    "zstd level {level} out of range {}..={} (0 not allowed)",
                    range.start(),
                    range.end()
                )));
            }
            return Ok(Compression::Zstd(level));
        }
        Err(Error::InvalidInput(format!(
            "unknown compression {s:?} (expected none, lz4, zstd or zstd:LEVEL)"
        )))
    }
}

/// Worst-case compressed size for `n` input bytes with `codec`.
pub(crate) fn compress_bound(codec: Codec, n: usize) -> usize {
    match codec {
        Codec::None => n,
        Codec::Zstd => zstd::zstd_safe::compress_bound(n),
        Codec::Lz4 => lz4_flex::block::get_maximum_output_size(n),
    }
}

thread_local! {
    // A zstd compression context costs a few hundred KB of tables to set up;
    // reuse one per thread (and level) instead of building one per chunk.
    static ZSTD_CCTX: RefCell<Option<(i32, zstd::bulk::Compressor<'static>)>> =
        const { RefCell::new(None) };
    static ZSTD_DCTX: RefCell<Option<zstd::bulk::Decompressor<'static>>> =
        const { RefCell::new(None) };
}

/// Compresses `raw` into `out` (which must hold `compress_bound` bytes) and
/// returns the number of bytes written.
pub(crate) fn compress_into(c: Compression, raw: &[u8], out: &mut [u8]) -> Result<usize> {
    match c {
        Compression::None => {
            out[..raw.len()].copy_from_slice(raw);
            Ok(raw.len())
        }
        Compression::Zstd(level) => ZSTD_CCTX.with(|cell| {
            let mut slot = cell.borrow_mut();
            if slot.as_ref().map(|(l, _)| *l) != Some(level) {
                let ctx = zstd::bulk::Compressor::new(level)
                    .map_err(|e| Error::InvalidInput(format!("zstd level {level}: {e}")))?;
                *slot = Some((level, ctx));
            }
            let (_, ctx) = slot.as_mut().expect("just set");
            ctx.compress_to_buffer(raw, out)
                .map_err(|e| Error::Io(std::io::Error::other(format!("zstd compression: {e}"))))
        }),
        Compression::Lz4 => lz4_flex::block::compress_into(raw, out)
            .map_err(|e| Error::Io(std::io::Error::other(format!("lz4 compression: {e}")))),
    }
}

/// Decompresses `payload` that must expand to exactly `raw_len` bytes.
/// `raw_len` must already have been checked against the applicable limit;
/// no decoder can write more than `raw_len` bytes.
pub(crate) fn decompress_exact(codec: Codec, payload: &[u8], raw_len: usize) -> Result<Vec<u8>> {
    let bad = |what: &str| Error::format(format!("{} payload {what}", codec.name()));
    match codec {
        Codec::None => {
            if payload.len() != raw_len {
                return Err(bad("length does not match raw_len"));
            }
            Ok(payload.to_vec())
        }
        Codec::Zstd => {
            // Into spare capacity: no pass zeroing 4 MiB that zstd overwrites.
            let mut out = Vec::with_capacity(raw_len);
            let n = ZSTD_DCTX.with(|cell| {
                let mut slot = cell.borrow_mut();
                if slot.is_none() {
                    *slot = Some(zstd::bulk::Decompressor::new().map_err(Error::Io)?);
                }
                let d = slot.as_mut().expect("just set");
                // Writes into the capacity, never reallocating: output beyond
                // it is an error from zstd (and beyond raw_len, below).
                d.decompress_to_buffer(payload, &mut out)
                    .map_err(|_| bad("is corrupt or larger than raw_len"))
            })?;
            if n != raw_len {
                return Err(bad("is shorter than raw_len"));
            }
            Ok(out)
        }
        Codec::Lz4 => {
            let mut out = vec![0u8; raw_len];
            let n = lz4_flex::block::decompress_into(payload, &mut out)
                .map_err(|_| bad("is corrupt or larger than raw_len"))?;
            if n != raw_len {
                return Err(bad("is shorter than raw_len"));
            }
            Ok(out)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parse_and_display() {
        assert_eq!("zstd".parse::<Compression>().unwrap(), Compression::Zstd(3));
        assert_eq!(
            "zstd:7".parse::<Compression>().unwrap(),
            Compression::Zstd(7)
        );
        assert_eq!(
            "zstd:-3".parse::<Compression>().unwrap(),
            Compression::Zstd(-3)
        );
        assert_eq!("LZ4".parse::<Compression>().unwrap(), Compression::Lz4);
        assert_eq!("none".parse::<Compression>().unwrap(), Compression::None);
        assert!("zstd:99".parse::<Compression>().is_err());
        assert!("zstd:x".parse::<Compression>().is_err());
        assert!("gzip".parse::<Compression>().is_err());
        for c in [Compression::None, Compression::Lz4, Compression::Zstd(5)] {
            assert_eq!(c.to_string().parse::<Compression>().unwrap(), c);
        }
    }

    #[test]
    fn roundtrip_and_bounds() {
        let raw: Vec<u8> = (0..10_000u32)
            .flat_map(|i| (i % 97).to_le_bytes())
            .collect();
        for c in [Compression::None, Compression::Zstd(3), Compression::Lz4] {
            let mut out = vec![0u8; compress_bound(c.codec(), raw.len())];
            let n = compress_into(c, &raw, &mut out).unwrap();
            let back = decompress_exact(c.codec(), &out[..n], raw.len()).unwrap();
            assert_eq!(back, raw);
            // Claiming a different raw_len is refused, never over-allocated.
            assert!(decompress_exact(c.codec(), &out[..n], raw.len() - 1).is_err());
            assert!(decompress_exact(c.codec(), &out[..n], raw.len() + 1).is_err());
        }
    }
}
