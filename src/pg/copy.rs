//! COPY in and out, cut into chunks of whole rows.
//!
//! pgsnap uses COPY's text format. In text format every row ends with a
//! newline and a newline inside a value is escaped as `\n`, so a row boundary
//! is a plain byte scan; binary format would need a parse of every field to
//! find one. Text also restores into a server of another version or
//! architecture unchanged, and it compresses better. docs/design.md records
//! the measurements behind this choice.

use bytes::Bytes;
use futures::{SinkExt, StreamExt};
use tokio_postgres::Client;

use crate::error::{Error, Result};

/// Cuts a stream of COPY text output into chunks of whole rows of about
/// `target` bytes each.
pub struct Chunker {
    target: usize,
    buf: Vec<u8>,
}

/// A piece of COPY text data: whole rows.
#[derive(Debug, PartialEq)]
pub struct RowChunk {
    pub data: Vec<u8>,
    pub rows: u64,
}

fn count_rows(data: &[u8]) -> u64 {
    memchr::memchr_iter(b'\n', data).count() as u64
}

impl Chunker {
    pub fn new(target: usize) -> Chunker {
        Chunker {
            target: target.max(1),
            buf: Vec::with_capacity(target + target / 8),
        }
    }

    /// Adds bytes; returns a chunk once at least `target` bytes of whole rows
    /// are buffered.
    pub fn push(&mut self, data: &[u8]) -> Option<RowChunk> {
        self.buf.extend_from_slice(data);
        if self.buf.len() < self.target {
            return None;
        }
        let cut = memchr::memrchr(b'\n', &self.buf)? + 1;
        let rest = self.buf.split_off(cut);
        let data = std::mem::replace(&mut self.buf, {
            let mut v = Vec::with_capacity(self.target + self.target / 8);
            v.extend_from_slice(&rest);
            v
        });
        let rows = count_rows(&data);
        Some(RowChunk { data, rows })
    }

    /// The last, possibly short, chunk. An unterminated row at the end means
    /// the stream was cut.
    pub fn finish(self) -> Result<Option<RowChunk>> {
        if self.buf.is_empty() {
            return Ok(None);
        }
        if self.buf.last() != Some(&b'\n') {
            return Err(Error::Format(
                "COPY output ended in the middle of a row".into(),
            ));
        }
        let rows = count_rows(&self.buf);
        Ok(Some(RowChunk {
            data: self.buf,
            rows,
        }))
    }
}

/// Runs `COPY ... TO STDOUT` and hands each chunk of whole rows to `sink`,
/// awaiting it before reading on (that await is the backpressure that
/// bounds memory).
pub async fn copy_out<F, Fut>(client: &Client, sql: &str, target: usize, mut sink: F) -> Result<()>
where
    F: FnMut(RowChunk) -> Fut,
    Fut: std::future::Future<Output = Result<()>>,
{
    let stream = client
        .copy_out(sql)
        .await
        .map_err(|e| Error::pg(format!("starting `{sql}`"), e))?;
    futures::pin_mut!(stream);
    let mut chunker = Chunker::new(target);
    while let Some(part) = stream.next().await {
        let part = part.map_err(|e| Error::pg(format!("reading `{sql}`"), e))?;
        if let Some(chunk) = chunker.push(&part) {
            sink(chunk).await?;
        }
    }
    if let Some(chunk) = chunker.finish()? {
        sink(chunk).await?;
    }
    Ok(())
}

/// Feeds chunks into `COPY ... FROM STDIN`; returns the rows the server
/// reported.
pub async fn copy_in<I>(client: &Client, sql: &str, chunks: I) -> Result<u64>
where
    I: futures::Stream<Item = Result<Bytes>>,
{
    let sink = client
        .copy_in::<_, Bytes>(sql)
        .await
        .map_err(|e| Error::pg(format!("starting `{sql}`"), e))?;
    futures::pin_mut!(sink);
    futures::pin_mut!(chunks);
    while let Some(chunk) = chunks.next().await {
        let chunk = chunk?;
        sink.send(chunk)
            .await
            .map_err(|e| Error::pg(format!("writing `{sql}`"), e))?;
    }
    sink.as_mut()
        .finish()
        .await
        .map_err(|e| Error::pg(format!("finishing `{sql}`"), e))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chunks_hold_whole_rows() {
        let mut c = Chunker::new(10);
        let mut out = Vec::new();
        for piece in [&b"a\tb\n"[..], b"cc\tdd\nee", b"e\tf\n", b"g\n"] {
            if let Some(ch) = c.push(piece) {
                out.push(ch);
            }
        }
        if let Some(ch) = c.finish().unwrap() {
            out.push(ch);
        }
        let all: Vec<u8> = out.iter().flat_map(|c| c.data.clone()).collect();
        assert_eq!(all, b"a\tb\ncc\tdd\neee\tf\ng\n");
        assert!(out.iter().all(|c| c.data.ends_with(b"\n")));
        assert_eq!(out.iter().map(|c| c.rows).sum::<u64>(), 4);
        assert_eq!(out[0].data, b"a\tb\ncc\tdd\n");
    }

    #[test]
    fn a_row_longer_than_the_target_stays_whole() {
        let mut c = Chunker::new(4);
        assert_eq!(c.push(b"abcdefgh"), None);
        let ch = c.push(b"ij\nk").unwrap();
        assert_eq!(ch.data, b"abcdefghij\n");
        assert!(c.finish().is_err(), "unterminated row is an error");
    }
}
