//! Trims the blank padding of `character(n)` values from COPY data on its
//! way to the server.
//!
//! A `character(n)` value is stored padded with spaces to `n` characters,
//! and COPY writes it out padded. On input the server pads it again (and
//! must count its characters to do so), so a value sent without its
//! trailing spaces is stored byte for byte as the padded one. Sending it
//! trimmed saves the socket, COPY's line scan and that count: pgbench's
//! `filler character(84)` makes 84 of an accounts row's 95 bytes.
//!
//! This holds only where the target column is `character(n)` with a length,
//! so restore trims only tables it created itself (`PlannedTable::unpad`).
//! Plain `bpchar` without a length keeps trailing spaces as given and is
//! never trimmed.

use super::copy::CopyFormat;

/// Rewrites a stream of whole-or-partial COPY rows (text lines, or binary
/// tuples without header and trailer), trimming trailing spaces from the
/// chosen fields. Rows may be cut anywhere between calls to [`feed`].
///
/// [`feed`]: Unpadder::feed
#[derive(Debug)]
pub struct Unpadder {
    format: CopyFormat,
    /// `padded[i]`: field `i` is `character(n)`.
    padded: Vec<bool>,
    /// Where a row cut at the end of the last slice stands.
    cut: Option<Cut>,
}

/// The rest of a row cut between slices, which goes out as it comes rather
/// than being held until its end: a row may be a value of hundreds of MB
/// (it was held whole, with the buffers it grew through: 1.8 GB for a
/// 600 MB bytea). Held back is only what a trim needs: a padded value so
/// far (a `character(n)`, a few MB at most) and, in binary, the length word
/// before it, which the trim rewrites.
#[derive(Debug, Default)]
struct Cut {
    /// The field the row is in (text), or in whose length or value (binary).
    field: usize,
    /// Binary: the tuple's field count, once read.
    fields: usize,
    held: Vec<u8>,
    stage: Stage,
}

/// Where a cut binary tuple stands.
#[derive(Debug, Default, Clone, Copy)]
enum Stage {
    /// Reading its field count.
    #[default]
    Count,
    /// Reading field `Cut::field`'s length word (of `Cut::fields`).
    Length,
    /// In a value, `left` bytes to go.
    Value { left: usize, padded: bool },
    /// Not a tuple: everything from here goes through unchanged, for the
    /// server to reject.
    Malformed,
}

impl Unpadder {
    /// `fields`: the indexes, in the COPY column list, of the
    /// `character(n)` columns. `None` when there is nothing to trim.
    pub fn new(format: CopyFormat, fields: &[usize]) -> Option<Unpadder> {
        let last = *fields.iter().max()?;
        let mut padded = vec![false; last + 1];
        for &f in fields {
            padded[f] = true;
        }
        Some(Unpadder {
            format,
            padded,
            cut: None,
        })
    }

    /// Appends `data`'s complete rows, trimmed, to `out`, and as much of a
    /// row cut at its end as can go before the rest arrives.
    pub fn feed(&mut self, mut data: &[u8], out: &mut Vec<u8>) {
        if let Some(mut cut) = self.cut.take() {
            if !self.stream(&mut cut, &mut data, out) {
                self.cut = Some(cut);
                return;
            }
        }
        // Whole rows, the common case, are trimmed in one piece each.
        let mut at = 0;
        while let Some(len) = self.row_end(&data[at..]) {
            self.row(&data[at..at + len], out);
            at += len;
        }
        let mut rest = &data[at..];
        if !rest.is_empty() {
            let mut cut = Cut::default();
            // `rest` holds no whole row: this takes all of it.
            if !self.stream(&mut cut, &mut rest, out) {
                self.cut = Some(cut);
            }
        }
    }

    /// Appends whatever was held of a cut row, unchanged: the stream ended
    /// inside a row, which COPY itself will report.
    pub fn finish(self, out: &mut Vec<u8>) {
        if let Some(cut) = self.cut {
            out.extend_from_slice(&cut.held);
        }
    }

    /// Takes a cut row's next bytes from `data`, sending on what needs no
    /// trim; true once the row is complete (`data` then starts after it).
    fn stream(&self, cut: &mut Cut, data: &mut &[u8], out: &mut Vec<u8>) -> bool {
        match self.format {
            CopyFormat::Text => self.stream_text(cut, data, out),
            CopyFormat::Binary => self.stream_binary(cut, data, out),
        }
    }

    /// A raw tab or newline is always a delimiter: COPY escapes them
    /// inside values.
    fn stream_text(&self, cut: &mut Cut, data: &mut &[u8], out: &mut Vec<u8>) -> bool {
        loop {
            // Past the last padded field, the rest of the row goes as it is.
            let Some(&padded) = self.padded.get(cut.field) else {
                let Some(end) = memchr::memchr(b'\n', data) else {
                    out.extend_from_slice(data);
                    *data = &[];
                    return false;
                };
                out.extend_from_slice(&data[..=end]);
                *data = &data[end + 1..];
                return true;
            };
            let Some(end) = memchr::memchr2(b'\t', b'\n', data) else {
                let into = if padded { &mut cut.held } else { &mut *out };
                into.extend_from_slice(data);
                *data = &[];
                return false;
            };
            match (padded, cut.held.is_empty()) {
                (false, _) => out.extend_from_slice(&data[..end]),
                // The whole value is here: trimmed where it is.
                (true, true) => out.extend_from_slice(&data[..trim_text(&data[..end])]),
                (true, false) => {
                    cut.held.extend_from_slice(&data[..end]);
                    out.extend_from_slice(&cut.held[..trim_text(&cut.held)]);
                    cut.held.clear();
                }
            }
            let delimiter = data[end];
            out.push(delimiter);
            *data = &data[end + 1..];
            if delimiter == b'\n' {
                return true;
            }
            cut.field += 1;
        }
    }

    fn stream_binary(&self, cut: &mut Cut, data: &mut &[u8], out: &mut Vec<u8>) -> bool {
        loop {
            match cut.stage {
                Stage::Malformed => {
                    out.extend_from_slice(data);
                    *data = &[];
                    return false;
                }
                Stage::Count => {
                    if !take_word(&mut cut.held, 2, data) {
                        return false;
                    }
                    let fields = i16::from_be_bytes([cut.held[0], cut.held[1]]);
                    out.append(&mut cut.held);
                    cut.stage = match usize::try_from(fields) {
                        Ok(fields) => {
                            cut.fields = fields;
                            Stage::Length
                        }
                        Err(_) => Stage::Malformed,
                    };
                }
                Stage::Length => {
                    if cut.field == cut.fields {
                        return true;
                    }
                    if !take_word(&mut cut.held, 4, data) {
                        return false;
                    }
                    let len = i32::from_be_bytes(cut.held[..4].try_into().expect("4 bytes"));
                    if len < -1 {
                        out.append(&mut cut.held);
                        cut.stage = Stage::Malformed;
                        continue;
                    }
                    let padded = len > 0 && self.padded.get(cut.field).copied().unwrap_or(false);
                    // A padded value's length is written once it is trimmed.
                    if !padded {
                        out.append(&mut cut.held);
                    }
                    cut.stage = Stage::Value {
                        left: len.max(0) as usize,
                        padded,
                    };
                }
                Stage::Value { left, padded } => {
                    let n = left.min(data.len());
                    let into = if padded { &mut cut.held } else { &mut *out };
                    into.extend_from_slice(&data[..n]);
                    *data = &data[n..];
                    if n < left {
                        cut.stage = Stage::Value {
                            left: left - n,
                            padded,
                        };
                        return false;
                    }
                    if padded {
                        let value = &cut.held[4..];
                        let kept = trim_spaces(value);
                        out.extend_from_slice(&(kept as i32).to_be_bytes());
                        out.extend_from_slice(&value[..kept]);
                        cut.held.clear();
                    }
                    cut.field += 1;
                    cut.stage = Stage::Length;
                }
            }
        }
    }

    /// The length of the first complete row in `data`, with its terminator.
    fn row_end(&self, data: &[u8]) -> Option<usize> {
        match self.format {
            CopyFormat::Text => memchr::memchr(b'\n', data).map(|i| i + 1),
            CopyFormat::Binary => binary_tuple_len(data).ok(),
        }
    }

    /// Appends one complete row, trimmed.
    fn row(&self, row: &[u8], out: &mut Vec<u8>) {
        match self.format {
            CopyFormat::Text => {
                self.stream_text(&mut Cut::default(), &mut &row[..], out);
            }
            CopyFormat::Binary => self.binary_tuple(row, out),
        }
    }

    fn binary_tuple(&self, tuple: &[u8], out: &mut Vec<u8>) {
        // `tuple` is complete and well formed (binary_tuple_len checked).
        let fields = i16::from_be_bytes([tuple[0], tuple[1]]).max(0) as usize;
        out.extend_from_slice(&tuple[..2]);
        let mut at = 2;
        for field in 0..fields {
            let len = i32::from_be_bytes([tuple[at], tuple[at + 1], tuple[at + 2], tuple[at + 3]]);
            let data_at = at + 4;
            let n = len.max(0) as usize;
            if len > 0 && self.padded.get(field).copied().unwrap_or(false) {
                let kept = trim_spaces(&tuple[data_at..data_at + n]);
                out.extend_from_slice(&(kept as i32).to_be_bytes());
                out.extend_from_slice(&tuple[data_at..data_at + kept]);
            } else {
                out.extend_from_slice(&tuple[at..data_at + n]);
            }
            at = data_at + n;
        }
    }
}

/// Moves bytes from `data` into `held` until it is `n` long; true then.
fn take_word(held: &mut Vec<u8>, n: usize, data: &mut &[u8]) -> bool {
    let more = n.saturating_sub(held.len()).min(data.len());
    held.extend_from_slice(&data[..more]);
    *data = &data[more..];
    held.len() == n
}

/// The length of `value` without its trailing spaces.
pub(crate) fn trim_spaces(value: &[u8]) -> usize {
    const SPACES: u64 = u64::from_ne_bytes([b' '; 8]);
    let mut end = value.len();
    // Eight bytes at a time: padding is most of a filler column.
    while end >= 8 {
        let word = u64::from_ne_bytes(value[end - 8..end].try_into().expect("8 bytes"));
        if word != SPACES {
            break;
        }
        end -= 8;
    }
    while end > 0 && value[end - 1] == b' ' {
        end -= 1;
    }
    end
}

/// Like [`trim_spaces`] for a text-format value, keeping a space that a
/// backslash escapes (COPY never writes one, but it would be a space).
pub(crate) fn trim_text(value: &[u8]) -> usize {
    let end = trim_spaces(value);
    if end == value.len() {
        return end;
    }
    let slashes = value[..end]
        .iter()
        .rev()
        .take_while(|&&b| b == b'\\')
        .count();
    if slashes % 2 == 1 {
        end + 1
    } else {
        end
    }
}

/// The length of the first complete binary tuple in `data`; when `data`
/// ends inside it, `Err` with a length `data` must at least reach (a
/// malformed tuple never completes: it is passed on unchanged at the end,
/// for the server to reject).
fn binary_tuple_len(data: &[u8]) -> std::result::Result<usize, usize> {
    const NEVER: usize = usize::MAX;
    let (Some(&a), Some(&b)) = (data.first(), data.get(1)) else {
        return Err(2);
    };
    let fields = i16::from_be_bytes([a, b]);
    if fields < 0 {
        return Err(NEVER);
    }
    let mut at = 2usize;
    for _ in 0..fields {
        let Some(word) = data.get(at..at + 4) else {
            return Err(at + 4);
        };
        let len = i32::from_be_bytes(word.try_into().expect("4 bytes"));
        if len < -1 {
            return Err(NEVER);
        }
        at += 4 + len.max(0) as usize;
        if at > data.len() {
            return Err(at);
        }
    }
    Ok(at)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(format: CopyFormat, fields: &[usize], data: &[u8], cut: &[usize]) -> Vec<u8> {
        let mut u = Unpadder::new(format, fields).unwrap();
        let mut out = Vec::new();
        let mut last = 0;
        for &c in cut.iter().chain(std::iter::once(&data.len())) {
            u.feed(&data[last..c], &mut out);
            last = c;
        }
        u.finish(&mut out);
        out
    }

    fn every_cut(format: CopyFormat, fields: &[usize], data: &[u8], want: &[u8]) {
        assert_eq!(run(format, fields, data, &[]), want);
        for i in 0..=data.len() {
            assert_eq!(run(format, fields, data, &[i]), want, "cut at {i}");
            for j in i..=data.len() {
                assert_eq!(run(format, fields, data, &[i, j]), want, "cut at {i}, {j}");
            }
        }
    }

    #[test]
    fn text_trims_only_the_padded_fields() {
        let data = b"1\tab   \tkeep  \tx         \n2\t\\N\t  \t          \n";
        let want = b"1\tab\tkeep  \tx\n2\t\\N\t  \t\n";
        every_cut(CopyFormat::Text, &[1, 3], data, want);
    }

    #[test]
    fn text_keeps_escapes() {
        // An escaped backslash then spaces: the spaces go. A backslash
        // escaping a space: that space stays. Escaped tabs are not
        // delimiters.
        let data = b"a\\\\  \tb\\  \tc\\t  \n";
        let want = b"a\\\\\tb\\ \tc\\t\n";
        every_cut(CopyFormat::Text, &[0, 1, 2], data, want);
    }

    #[test]
    fn text_short_rows_pass_through() {
        every_cut(CopyFormat::Text, &[3], b"1\t2  \n", b"1\t2  \n");
        // No newline at the end: left for COPY to reject.
        every_cut(CopyFormat::Text, &[0], b"a  \nb  ", b"a\nb  ");
    }

    fn tuple(fields: &[Option<&[u8]>]) -> Vec<u8> {
        let mut t = (fields.len() as i16).to_be_bytes().to_vec();
        for f in fields {
            match f {
                None => t.extend_from_slice(&(-1i32).to_be_bytes()),
                Some(v) => {
                    t.extend_from_slice(&(v.len() as i32).to_be_bytes());
                    t.extend_from_slice(v);
                }
            }
        }
        t
    }

    #[test]
    fn binary_rewrites_lengths() {
        let long = [b' '; 40];
        let mut data = tuple(&[Some(b"\0\0\0\x01"), Some(b"ab   "), None, Some(b"x  ")]);
        data.extend(tuple(&[Some(b"\0\0\0\x02"), Some(&long), Some(b" "), None]));
        data.extend(tuple(&[]));
        let mut want = tuple(&[Some(b"\0\0\0\x01"), Some(b"ab"), None, Some(b"x  ")]);
        want.extend(tuple(&[Some(b"\0\0\0\x02"), Some(b""), Some(b""), None]));
        want.extend(tuple(&[]));
        every_cut(CopyFormat::Binary, &[1, 2], &data, &want);
    }

    #[test]
    fn binary_malformed_passes_through() {
        let mut data = tuple(&[Some(b"a  ")]);
        data.extend_from_slice(b"\xff\xfe\0\0");
        let mut want = tuple(&[Some(b"a")]);
        want.extend_from_slice(b"\xff\xfe\0\0");
        every_cut(CopyFormat::Binary, &[0], &data, &want);
    }

    /// A value many slices long goes out as it comes: only a padded
    /// value is held, and a binary length word until it is whole.
    #[test]
    fn long_values_stream_through() {
        let long = vec![b'v'; 1 << 20];
        let held = |u: &Unpadder| u.cut.as_ref().map_or(0, |c| c.held.len());
        // Text: `pad  \t<1 MiB>\tx  \n`, fields 0 and 2 padded.
        let mut data = b"pad  \t".to_vec();
        data.extend_from_slice(&long);
        data.extend_from_slice(b"\tx  \n");
        let mut u = Unpadder::new(CopyFormat::Text, &[0, 2]).unwrap();
        let mut out = Vec::new();
        for piece in data.chunks(1000) {
            u.feed(piece, &mut out);
            assert!(held(&u) < 1000, "held {}", held(&u));
        }
        u.finish(&mut out);
        let mut want = b"pad\t".to_vec();
        want.extend_from_slice(&long);
        want.extend_from_slice(b"\tx\n");
        assert!(out == want);
        // Binary: the same row as a tuple.
        let data = tuple(&[Some(b"pad  "), Some(&long), Some(b"x  ")]);
        let mut u = Unpadder::new(CopyFormat::Binary, &[0, 2]).unwrap();
        let mut out = Vec::new();
        for piece in data.chunks(1000) {
            u.feed(piece, &mut out);
            assert!(held(&u) < 1000, "held {}", held(&u));
        }
        u.finish(&mut out);
        assert!(out == tuple(&[Some(b"pad"), Some(&long), Some(b"x")]));
    }

    #[test]
    fn binary_malformed_inside_a_tuple_passes_through() {
        let mut data = tuple(&[Some(b"a  "), Some(b"b  ")]);
        data.truncate(2 + 4 + 3);
        data.extend_from_slice(b"\xff\xff\xff\xfe rest");
        let mut want = tuple(&[Some(b"a")]);
        want[1] = 2;
        want.extend_from_slice(b"\xff\xff\xff\xfe rest");
        every_cut(CopyFormat::Binary, &[0, 1], &data, &want);
    }

    #[test]
    fn trim_spaces_handles_every_length() {
        for n in 0..20 {
            for k in 0..20 {
                let mut v = vec![b'x'; n];
                v.extend(std::iter::repeat_n(b' ', k));
                assert_eq!(trim_spaces(&v), n);
            }
        }
    }

    #[test]
    fn nothing_to_trim_is_none() {
        assert!(Unpadder::new(CopyFormat::Text, &[]).is_none());
    }
}
