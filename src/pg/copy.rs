//! COPY in and out, cut into chunks of whole rows.
//!
//! pgsnap uses COPY's text format by default. In text format every row ends
//! with a newline and a newline inside a value is escaped as `\n`, so a row
//! boundary is a plain byte scan. Text also restores into a server of
//! another version or architecture unchanged, and it compresses far better.
//! Binary format (`--copy-format binary`) is parsed tuple by tuple to find
//! row boundaries; it loads faster. docs/design.md records the measurements.
//!
//! A binary table entry holds the tuples only: each COPY stream's header and
//! trailer are dropped on the way in, and restore frames every stream it
//! opens with [`BINARY_HEADER`] and [`BINARY_TRAILER`] (format-spec.md, 5.1).

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
    /// `Some` for binary COPY: the tuple parser, and the offsets in `buf`
    /// where a tuple ends.
    binary: Option<(TupleFramer, Vec<usize>)>,
}

/// The COPY data format of a table entry (`copy_format` in its metadata).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum CopyFormat {
    #[default]
    Text,
    Binary,
}

impl CopyFormat {
    pub fn name(self) -> &'static str {
        match self {
            CopyFormat::Text => "text",
            CopyFormat::Binary => "binary",
        }
    }

    /// The `WITH` options selecting this format on a COPY statement.
    pub fn options(self) -> &'static [&'static str] {
        match self {
            CopyFormat::Text => &[],
            CopyFormat::Binary => &["FORMAT binary"],
        }
    }

    /// [`CopyFormat::options`], and for text in `encoding` (a database's
    /// own, see `schema::copy_option_encoding`) COPY's `ENCODING`. Binary
    /// COPY's text is in the session's encoding, which no option changes.
    pub fn options_in(self, encoding: Option<&str>) -> Vec<String> {
        let mut options: Vec<String> = self.options().iter().map(|o| o.to_string()).collect();
        if let (Some(enc), CopyFormat::Text) = (encoding, self) {
            options.push(format!("ENCODING {}", crate::schema::ddl::literal(enc)));
        }
        options
    }
}

impl std::str::FromStr for CopyFormat {
    type Err = String;
    fn from_str(s: &str) -> std::result::Result<Self, String> {
        match s {
            "text" => Ok(CopyFormat::Text),
            "binary" => Ok(CopyFormat::Binary),
            _ => Err(format!("`{s}` is not text or binary")),
        }
    }
}

/// What restore sends before the tuples of a binary COPY stream: the
/// signature, no flags, no header extension.
pub const BINARY_HEADER: &[u8; 19] = b"PGCOPY\n\xff\r\n\0\0\0\0\0\0\0\0\0";
/// What ends a binary COPY stream: a field count of -1.
pub const BINARY_TRAILER: &[u8; 2] = b"\xff\xff";

/// Follows the binary COPY format across arbitrary slices of it: skips the
/// header and trailer and reports where each tuple ends.
#[derive(Debug)]
pub struct TupleFramer {
    state: Frame,
    /// Bytes of the field count or length being read.
    word: [u8; 4],
    have: usize,
    header: Vec<u8>,
    error: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq)]
enum Frame {
    Header,
    Extension(u64),
    Count,
    Length(u16),
    Data(u16, u64),
    Done,
}

impl TupleFramer {
    /// For a whole COPY output stream, header first.
    pub fn stream() -> TupleFramer {
        TupleFramer::at(Frame::Header)
    }

    /// For a table entry's data: tuples only, no header, no trailer.
    pub fn tuples() -> TupleFramer {
        TupleFramer::at(Frame::Count)
    }

    fn at(state: Frame) -> TupleFramer {
        TupleFramer {
            state,
            word: [0; 4],
            have: 0,
            header: Vec::new(),
            error: None,
        }
    }

    /// Whether the data so far ends at a tuple boundary (or the trailer).
    pub fn at_boundary(&self) -> bool {
        self.error.is_none() && self.have == 0 && matches!(self.state, Frame::Count | Frame::Done)
    }

    /// The first malformation seen, if any.
    pub fn error(&self) -> Option<&str> {
        self.error.as_deref()
    }

    /// Parses `data`; appends the tuple bytes to `out` (when given) and, for
    /// each tuple completed, its end as an offset in `out` (or a count).
    /// Returns the tuples completed.
    pub fn feed(
        &mut self,
        data: &[u8],
        mut out: Option<&mut Vec<u8>>,
        ends: &mut Vec<usize>,
    ) -> u64 {
        let mut done = 0;
        let mut i = 0;
        let emit = |out: &mut Option<&mut Vec<u8>>, bytes: &[u8]| {
            if let Some(o) = out.as_deref_mut() {
                o.extend_from_slice(bytes);
            }
        };
        while i < data.len() && self.error.is_none() {
            match self.state {
                Frame::Header => {
                    let take = (19 - self.header.len()).min(data.len() - i);
                    self.header.extend_from_slice(&data[i..i + take]);
                    i += take;
                    if self.header.len() == 19 {
                        if &self.header[..11] != b"PGCOPY\n\xff\r\n\0" {
                            self.error = Some("binary COPY data has no PGCOPY signature".into());
                            break;
                        }
                        let ext = u32::from_be_bytes([
                            self.header[15],
                            self.header[16],
                            self.header[17],
                            self.header[18],
                        ]);
                        self.state = if ext == 0 {
                            Frame::Count
                        } else {
                            Frame::Extension(ext.into())
                        };
                    }
                }
                Frame::Extension(left) => {
                    let take = left.min((data.len() - i) as u64);
                    i += take as usize;
                    self.state = if take == left {
                        Frame::Count
                    } else {
                        Frame::Extension(left - take)
                    };
                }
                Frame::Count => {
                    self.word[self.have] = data[i];
                    self.have += 1;
                    i += 1;
                    if self.have == 2 {
                        self.have = 0;
                        let n = i16::from_be_bytes([self.word[0], self.word[1]]);
                        if n == -1 {
                            self.state = Frame::Done;
                        } else if n < 0 {
                            self.error = Some(format!("binary COPY tuple with {n} fields"));
                        } else {
                            emit(&mut out, &self.word[..2]);
                            if n == 0 {
                                done += 1;
                                ends.push(out.as_deref().map_or(0, Vec::len));
                            } else {
                                self.state = Frame::Length(n as u16);
                            }
                        }
                    }
                }
                Frame::Length(fields) => {
                    self.word[self.have] = data[i];
                    self.have += 1;
                    i += 1;
                    if self.have == 4 {
                        self.have = 0;
                        emit(&mut out, &self.word);
                        let len = i32::from_be_bytes(self.word);
                        if len < -1 {
                            self.error = Some(format!("binary COPY field of length {len}"));
                        } else if len <= 0 {
                            self.state = self.field_done(fields, &mut done, &out, ends);
                        } else {
                            self.state = Frame::Data(fields, len as u64);
                        }
                    }
                }
                Frame::Data(fields, left) => {
                    let take = left.min((data.len() - i) as u64) as usize;
                    emit(&mut out, &data[i..i + take]);
                    i += take;
                    if take as u64 == left {
                        self.state = self.field_done(fields, &mut done, &out, ends);
                    } else {
                        self.state = Frame::Data(fields, left - take as u64);
                    }
                }
                Frame::Done => {
                    self.error = Some("binary COPY data after its trailer".into());
                }
            }
        }
        done
    }

    fn field_done(
        &self,
        fields: u16,
        done: &mut u64,
        out: &Option<&mut Vec<u8>>,
        ends: &mut Vec<usize>,
    ) -> Frame {
        if fields > 1 {
            return Frame::Length(fields - 1);
        }
        *done += 1;
        ends.push(out.as_deref().map_or(0, Vec::len));
        Frame::Count
    }
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
            binary: None,
        }
    }

    /// A chunker for `format`'s COPY output (header and trailer included,
    /// for binary).
    pub fn for_format(format: CopyFormat, target: usize) -> Chunker {
        let mut c = Chunker::new(target);
        if format == CopyFormat::Binary {
            c.binary = Some((TupleFramer::stream(), Vec::new()));
        }
        c
    }

    /// Adds bytes; returns the chunks that are complete.
    pub fn push(&mut self, data: &[u8]) -> Vec<RowChunk> {
        if self.binary.is_some() {
            return self.push_binary(data);
        }
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

    /// Binary: the framer appends tuple bytes to `buf` and notes where
    /// tuples end; a full buffer is cut after its last whole tuple, or at
    /// the target inside a tuple longer than a chunk (as for text).
    fn push_binary(&mut self, data: &[u8]) -> Vec<RowChunk> {
        let mut out = Vec::new();
        let Some((framer, ends)) = self.binary.as_mut() else {
            return out;
        };
        framer.feed(data, Some(&mut self.buf), ends);
        // One message can hold a value many chunks long: the chunks are
        // copied out from a moving start and the buffer is shifted once, so
        // the work stays linear in the value's size (cutting the buffer at
        // each chunk copied the rest every time, and each chunk kept the
        // whole allocation).
        let mut start = 0;
        while self.buf.len() - start >= self.target {
            let cut = ends
                .iter()
                .rev()
                .find(|&&e| e <= self.target)
                .copied()
                .unwrap_or(self.target);
            let rows = ends.iter().take_while(|&&e| e <= cut).count();
            ends.drain(..rows);
            for e in ends.iter_mut() {
                *e -= cut;
            }
            out.push(RowChunk {
                data: self.buf[start..start + cut].to_vec(),
                rows: rows as u64,
            });
            start += cut;
        }
        if start > 0 {
            self.buf.drain(..start);
            if self.buf.capacity() > 2 * self.target {
                self.buf.shrink_to(self.target);
            }
        }
        out
    }

    /// The last, possibly short, chunk. An unterminated row at the end means
    /// the stream was cut.
    pub fn finish(self) -> Result<Option<RowChunk>> {
        if let Some((framer, ends)) = &self.binary {
            if let Some(e) = framer.error() {
                return Err(Error::Format(e.to_string()));
            }
            if framer.state != Frame::Done {
                return Err(Error::Format(
                    "binary COPY output ended before its trailer".into(),
                ));
            }
            if self.buf.is_empty() {
                return Ok(None);
            }
            let rows = ends.len() as u64;
            return Ok(Some(RowChunk {
                data: self.buf,
                rows,
            }));
        }
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
pub async fn copy_out<F, Fut>(
    client: &Client,
    sql: &str,
    format: CopyFormat,
    target: usize,
    mut sink: F,
) -> Result<()>
where
    F: FnMut(RowChunk) -> Fut,
    Fut: std::future::Future<Output = Result<()>>,
{
    let stream = client
        .copy_out(sql)
        .await
        .map_err(|e| Error::pg(format!("starting `{sql}`"), e))?;
    futures::pin_mut!(stream);
    let mut chunker = Chunker::for_format(format, target);
    while let Some(part) = stream.next().await {
        let part = part.map_err(|e| Error::pg(format!("reading `{sql}`"), e))?;
        // A message is a row, which may be a value of hundreds of MB: it
        // goes to the chunker a chunk's worth at a time, so each chunk
        // leaves for the (bounded) pipeline before the next is cut, instead
        // of the whole row being copied into chunks held at once.
        for piece in part.chunks(target.max(1)) {
            for chunk in chunker.push(piece) {
                sink(chunk).await?;
            }
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

    /// A binary COPY tuple: field count, then each field's length and bytes
    /// (`None`: NULL).
    fn tuple(fields: &[Option<&[u8]>]) -> Vec<u8> {
        let mut t = (fields.len() as i16).to_be_bytes().to_vec();
        for f in fields {
            match f {
                None => t.extend_from_slice(&(-1i32).to_be_bytes()),
                Some(b) => {
                    t.extend_from_slice(&(b.len() as i32).to_be_bytes());
                    t.extend_from_slice(b);
                }
            }
        }
        t
    }

    fn binary_stream(tuples: &[Vec<u8>], extension: &[u8]) -> Vec<u8> {
        let mut s = b"PGCOPY\n\xff\r\n\0".to_vec();
        s.extend_from_slice(&0u32.to_be_bytes());
        s.extend_from_slice(&(extension.len() as u32).to_be_bytes());
        s.extend_from_slice(extension);
        for t in tuples {
            s.extend_from_slice(t);
        }
        s.extend_from_slice(BINARY_TRAILER);
        s
    }

    #[test]
    fn binary_chunks_hold_whole_tuples_without_header_or_trailer() {
        let long = vec![7u8; 50];
        let tuples = vec![
            tuple(&[Some(b"ab"), None]),
            tuple(&[]),
            tuple(&[Some(&long), Some(b"")]),
            tuple(&[Some(b"x\n"), Some(b"y")]),
        ];
        let stream = binary_stream(&tuples, b"ext");
        let payload: Vec<u8> = tuples.concat();
        // Every way of cutting the stream in two pieces, and byte by byte.
        let mut cuts: Vec<Vec<&[u8]>> = (0..=stream.len())
            .map(|i| vec![&stream[..i], &stream[i..]])
            .collect();
        cuts.push(stream.chunks(1).collect());
        for pieces in cuts {
            let mut c = Chunker::for_format(CopyFormat::Binary, 16);
            let mut out = Vec::new();
            for p in &pieces {
                out.extend(c.push(p));
            }
            out.extend(c.finish().unwrap());
            let all: Vec<u8> = out.iter().flat_map(|c| c.data.clone()).collect();
            assert_eq!(all, payload);
            assert_eq!(out.iter().map(|c| c.rows).sum::<u64>(), 4);
            // Short chunks end at a tuple boundary: the framer agrees.
            let mut f = TupleFramer::tuples();
            let mut ends = Vec::new();
            for c in &out {
                assert!(c.data.len() <= 16);
                assert_eq!(f.feed(&c.data, None, &mut ends), c.rows);
                assert!(c.data.len() == 16 || f.at_boundary());
            }
            assert!(f.at_boundary());
        }
    }

    /// A value many chunks long, in one message (as the server sends a
    /// row): chunks of the target size that hold only their own bytes
    /// (each used to keep the whole message's allocation, so memory grew
    /// with the square of the value's size).
    #[test]
    fn a_long_binary_value_is_cut_without_keeping_its_buffer() {
        let long = vec![3u8; 1 << 20];
        let tuples = vec![tuple(&[Some(b"a")]), tuple(&[Some(&long)]), tuple(&[None])];
        let stream = binary_stream(&tuples, b"");
        let mut c = Chunker::for_format(CopyFormat::Binary, 1024);
        let mut out = c.push(&stream);
        assert!(out.len() >= (1 << 20) / 1024);
        assert!(out
            .iter()
            .all(|c| c.data.len() <= 1024 && c.data.capacity() <= 1024));
        assert!(c.buf.capacity() <= 2 * 1024);
        out.extend(c.finish().unwrap());
        let all: Vec<u8> = out.iter().flat_map(|c| c.data.clone()).collect();
        assert_eq!(all, tuples.concat());
        assert_eq!(out.iter().map(|c| c.rows).sum::<u64>(), 3);
    }

    #[test]
    fn malformed_binary_copy_is_an_error() {
        let good = binary_stream(&[tuple(&[Some(b"a")])], b"");
        for bad in [
            b"PGCOPY\n\xff\r\n\x01garbage-garbage".to_vec(),
            good[..good.len() - 1].to_vec(),
            [&good[..], b"x"].concat(),
            binary_stream(&[b"\0\x01\xff\xff\xff\xf0".to_vec()], b""),
        ] {
            let mut c = Chunker::for_format(CopyFormat::Binary, 8);
            let _ = c.push(&bad);
            assert!(c.finish().is_err(), "{bad:?}");
        }
    }

    #[test]
    fn an_unterminated_row_at_the_end_is_an_error() {
        let mut c = Chunker::new(4);
        assert!(c.push(b"ab").is_empty());
        assert!(c.finish().is_err());
    }
}
