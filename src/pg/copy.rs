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

/// Cuts a stream of COPY text output into chunks of at most `target` bytes,
/// each ending at a row boundary. A row longer than `target` (a big bytea
/// or text value) is cut into pieces of exactly `target` bytes, the last of
/// which ends with the row; so a chunk shorter than `target` always ends at
/// a row boundary, which is what restore relies on to split a table across
/// COPY streams (format-spec.md, "Table data").
pub struct Chunker {
    target: usize,
    buf: Vec<u8>,
}

/// A piece of COPY text data: whole rows, or (if exactly `target` bytes
/// long) possibly the start or middle of a long row.
#[derive(Debug, PartialEq)]
pub struct RowChunk {
    pub data: Vec<u8>,
    /// Rows that end in this chunk.
    pub rows: u64,
}

fn count_rows(data: &[u8]) -> u64 {
    memchr::memchr_iter(b'\n', data).count() as u64
}

impl Chunker {
    pub fn new(target: usize) -> Chunker {
        Chunker {
            target: target.max(1),
            buf: Vec::with_capacity(target.max(1)),
        }
    }

    /// Adds bytes; returns the chunks that are complete.
    pub fn push(&mut self, data: &[u8]) -> Vec<RowChunk> {
        let mut out = Vec::new();
        let mut data = data;
        while !data.is_empty() {
            let room = self.target - self.buf.len();
            let take = room.min(data.len());
            self.buf.extend_from_slice(&data[..take]);
            data = &data[take..];
            if self.buf.len() < self.target {
                break;
            }
            // A full buffer: cut after its last row, or all of it when one
            // row fills it.
            let cut = memchr::memrchr(b'\n', &self.buf).map_or(self.target, |p| p + 1);
            let mut next = Vec::with_capacity(self.target);
            next.extend_from_slice(&self.buf[cut..]);
            self.buf.truncate(cut);
            let chunk = std::mem::replace(&mut self.buf, next);
            let rows = count_rows(&chunk);
            out.push(RowChunk { data: chunk, rows });
        }
        out
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
        for chunk in chunker.push(&part) {
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

    fn run(target: usize, pieces: &[&[u8]]) -> Vec<RowChunk> {
        let mut c = Chunker::new(target);
        let mut out = Vec::new();
        for p in pieces {
            out.extend(c.push(p));
        }
        out.extend(c.finish().unwrap());
        out
    }

    #[test]
    fn chunks_hold_whole_rows_and_never_exceed_the_target() {
        let out = run(10, &[b"a\tb\n", b"cc\tdd\nee", b"e\tf\n", b"g\n"]);
        let all: Vec<u8> = out.iter().flat_map(|c| c.data.clone()).collect();
        assert_eq!(all, b"a\tb\ncc\tdd\neee\tf\ng\n");
        assert!(out
            .iter()
            .all(|c| c.data.len() <= 10 && c.data.ends_with(b"\n")));
        assert_eq!(out.iter().map(|c| c.rows).sum::<u64>(), 4);
        assert_eq!(out[0].data, b"a\tb\ncc\tdd\n");
    }

    #[test]
    fn a_row_longer_than_the_target_is_cut_into_full_pieces() {
        let out = run(4, &[b"ab\nlongrow-", b"xyz\nk\n"]);
        let lens: Vec<usize> = out.iter().map(|c| c.data.len()).collect();
        assert_eq!(lens, vec![3, 4, 4, 4, 2]);
        // Short chunks end at a row boundary; full ones may not.
        for c in &out {
            assert!(c.data.len() == 4 || c.data.ends_with(b"\n"));
        }
        let all: Vec<u8> = out.iter().flat_map(|c| c.data.clone()).collect();
        assert_eq!(all, b"ab\nlongrow-xyz\nk\n");
        assert_eq!(out.iter().map(|c| c.rows).sum::<u64>(), 3);
    }

    #[test]
    fn an_unterminated_row_at_the_end_is_an_error() {
        let mut c = Chunker::new(4);
        assert!(c.push(b"ab").is_empty());
        assert!(c.finish().is_err());
    }
}
