//! COPY text rows to COPY binary tuples, for restore.
//!
//! Loading COPY text makes the server run every value through its type's
//! input function, which for timestamps, dates and floats costs more than
//! the rest of the load. For the common built-in types this module converts
//! the text rows a backup holds into binary tuples, which the server takes
//! in with its cheap receive functions.
//!
//! The server must end up storing exactly what loading the text would have
//! stored, so the conversion is strict: it accepts the forms
//! `COPY ... TO STDOUT` writes (`DateStyle=ISO`, `extra_float_digits=3`,
//! `bytea_output=hex`) and calls anything else an error, on which the
//! caller loads the table's text instead. An error costs speed; a lenient
//! guess could cost data.

// The input is archive data, which may be damaged or hostile: any byte
// string must give Ok or Err, never a panic or an overflow.
#![deny(
    clippy::arithmetic_side_effects,
    clippy::indexing_slicing,
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::cast_possible_truncation,
    clippy::cast_possible_wrap,
    clippy::cast_sign_loss
)]

use memchr::{memchr, memchr2, memchr3};

/// A column type the transcoder can convert, by built-in type OID.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Bool,
    Bytea,
    Int8,
    Int2,
    Int4,
    Text,
    Oid,
    Json,
    Float4,
    Float8,
    Date,
    Timestamp,
    Timestamptz,
    Uuid,
    Jsonb,
}

impl Kind {
    /// The kind for a built-in type OID: bool 16, bytea 17, int8 20, int2 21, int4 23,
    /// text 25, oid 26, json 114, float4 700, float8 701, bpchar 1042 (-> Text),
    /// varchar 1043 (-> Text), date 1082, timestamp 1114, timestamptz 1184, uuid 2950, jsonb 3802.
    /// None for anything else (the table then stays in text format).
    pub fn from_type_oid(oid: u32) -> Option<Kind> {
        // bpchar and varchar receive functions apply the column's typmod
        // just as their input functions do, so plain text bytes suffice.
        Some(match oid {
            16 => Kind::Bool,
            17 => Kind::Bytea,
            20 => Kind::Int8,
            21 => Kind::Int2,
            23 => Kind::Int4,
            25 | 1042 | 1043 => Kind::Text,
            26 => Kind::Oid,
            114 => Kind::Json,
            700 => Kind::Float4,
            701 => Kind::Float8,
            1082 => Kind::Date,
            1114 => Kind::Timestamp,
            1184 => Kind::Timestamptz,
            2950 => Kind::Uuid,
            3802 => Kind::Jsonb,
            _ => return None,
        })
    }
}

/// A value or row the transcoder will not convert. `column` is the index
/// into the transcoder's kinds (for a row with too many fields, the number
/// of kinds). `what` describes the problem, never the value: values may be
/// secrets and errors end up in logs.
#[derive(Debug, thiserror::Error, PartialEq)]
#[error("{}cannot convert {what} to binary", column_of(*.column))]
pub struct TranscodeError {
    /// [`ROW`] when the row as a whole is the problem.
    pub column: usize,
    pub what: String,
}

/// [`TranscodeError::column`] of an error about a whole row (its length, its
/// end), which no column is to blame for (QA: "column 0" named `id`).
pub const ROW: usize = usize::MAX;

fn column_of(column: usize) -> String {
    if column == ROW {
        String::new()
    } else {
        format!("column {column}: ")
    }
}

/// Converts a stream of COPY text rows, cut anywhere between calls, into binary tuples.
pub struct Transcoder {
    kinds: Vec<Kind>,
    /// `padded[i]`: column `i` is `character(n)`, sent without its blank
    /// padding, which the server adds back (see `pg::unpad`).
    padded: Vec<bool>,
    /// The start of a row cut at the end of the data fed so far.
    partial: Vec<u8>,
    /// Unescaped field values, reused from field to field.
    scratch: Vec<u8>,
}

/// Buffers above this size are dropped once used rather than kept for the
/// next row, so that one huge value does not pin its memory for the rest of
/// the stream.
const KEEP_CAPACITY: usize = 1 << 20;

/// The longest row the transcoder holds while it waits for the row's end.
/// A row's binary tuple needs each field's length before its bytes, so a
/// row is converted whole; a longer one (a bytea of hundreds of MB) would
/// be held several times over (its text, its tuple, the buffers they grew
/// through). Past this the conversion gives up and the caller loads the
/// table's text, which streams: memory stays bounded by the chunks in
/// flight, as pg_restore's does, whatever the values' size.
pub const MAX_ROW: usize = 16 << 20;

impl Transcoder {
    /// `kinds`: one per COPY column, in order. `padded`: the indexes of
    /// the `character(n)` columns among them.
    pub fn new(kinds: Vec<Kind>, padded: &[usize]) -> Transcoder {
        let mut flags = vec![false; kinds.len()];
        for &i in padded {
            if let Some(f) = flags.get_mut(i) {
                *f = true;
            }
        }
        Transcoder {
            kinds,
            padded: flags,
            partial: Vec::new(),
            scratch: Vec::new(),
        }
    }

    /// Converts the complete rows in `data` (each ends with '\n'), appending tuples to `out`;
    /// keeps a row cut at the end of `data` for the next call. On error `out` may hold a partial
    /// result; the caller abandons the whole stream (it then falls back to loading the text).
    pub fn feed(&mut self, data: &[u8], out: &mut Vec<u8>) -> Result<(), TranscodeError> {
        let mut rest = data;
        if !self.partial.is_empty() {
            // Only the new data is searched for the newline: a value of
            // hundreds of MB arrives over many calls.
            let Some(end) = memchr(b'\n', rest) else {
                self.partial.extend_from_slice(rest);
                return self.within_limit(0);
            };
            let (head, tail) = rest
                .split_at_checked(end.saturating_add(1))
                .unwrap_or((rest, &[]));
            // The limit is the row's whole length, the newline's chunk
            // included (QA: rows of up to 20 MiB were converted).
            self.within_limit(end)?;
            self.partial.extend_from_slice(head);
            let row = std::mem::take(&mut self.partial);
            let result = convert_row(&self.kinds, &self.padded, &mut self.scratch, &row, out);
            if row.capacity() <= KEEP_CAPACITY {
                self.partial = row;
                self.partial.clear();
            }
            // The row's one newline is its last byte: it converts whole or
            // fails.
            if result?.is_none() {
                return Err(error(ROW, "a row cut off at the end of the data"));
            }
            rest = tail;
        }
        while let Some(used) = convert_row(&self.kinds, &self.padded, &mut self.scratch, rest, out)?
        {
            rest = rest.get(used..).unwrap_or_default();
        }
        self.partial.extend_from_slice(rest);
        if self.scratch.capacity() > KEEP_CAPACITY {
            self.scratch = Vec::new();
        }
        self.within_limit(0)
    }

    /// Err once the row waiting for its end, with `more` bytes of it yet
    /// to add, is longer than [`MAX_ROW`].
    fn within_limit(&self, more: usize) -> Result<(), TranscodeError> {
        if self.partial.len().saturating_add(more) > MAX_ROW {
            return Err(error(ROW, "a row over 16 MiB (it streams as text)"));
        }
        Ok(())
    }

    /// The stream's end: Err if a cut row is left over.
    pub fn finish(self) -> Result<(), TranscodeError> {
        if self.partial.is_empty() {
            Ok(())
        } else {
            Err(error(ROW, "a row cut off at the end of the data"))
        }
    }
}

fn error(column: usize, what: &str) -> TranscodeError {
    TranscodeError {
        column,
        what: what.to_string(),
    }
}

/// Appends the tuple for the row at the start of `data` and returns its
/// length with its newline; None, with `out` as it was, if the row's newline
/// is not in `data`. Each field is found by one search for the tab or
/// newline that ends it, so a row's bytes are scanned once.
fn convert_row(
    kinds: &[Kind],
    padded: &[bool],
    scratch: &mut Vec<u8>,
    data: &[u8],
    out: &mut Vec<u8>,
) -> Result<Option<usize>, TranscodeError> {
    let count =
        i16::try_from(kinds.len()).map_err(|_| error(ROW, "a row of over 32767 columns"))?;
    // A table without columns has an empty line per row, not one empty field.
    if kinds.is_empty() {
        return match memchr(b'\n', data) {
            None => Ok(None),
            Some(0) => {
                out.extend_from_slice(&count.to_be_bytes());
                Ok(Some(1))
            }
            Some(_) => Err(error(0, "a row with more fields than columns")),
        };
    }
    let at = out.len();
    out.extend_from_slice(&count.to_be_bytes());
    let last = kinds.len().saturating_sub(1);
    let mut used = 0usize;
    for (column, &kind) in kinds.iter().enumerate() {
        let line = data.get(used..).unwrap_or_default();
        let Some(end) = field_end(kind, line) else {
            out.truncate(at);
            return Ok(None);
        };
        let (field, tail) = line.split_at_checked(end).unwrap_or((line, &[]));
        let newline = tail.first() == Some(&b'\n');
        if newline && column < last {
            // Named by the first column without a field.
            return Err(error(
                column.saturating_add(1),
                "a row with fewer fields than columns",
            ));
        }
        if !newline && column == last {
            return Err(error(kinds.len(), "a row with more fields than columns"));
        }
        let trim = padded.get(column).copied().unwrap_or(false);
        convert_field(kind, trim, field, scratch, out).map_err(|what| error(column, what))?;
        used = used.saturating_add(end).saturating_add(1);
    }
    Ok(Some(used))
}

/// Where the field at the start of `line` ends: its tab or the row's
/// newline (None if `line` holds neither). Values of the scalar kinds are a
/// few bytes long, which a plain loop passes faster than a call to memchr.
fn field_end(kind: Kind, line: &[u8]) -> Option<usize> {
    match kind {
        Kind::Text | Kind::Json | Kind::Jsonb | Kind::Bytea => memchr2(b'\t', b'\n', line),
        _ => line.iter().position(|&b| b == b'\t' || b == b'\n'),
    }
}

/// Appends one field: its length, then its value in the type's binary
/// (send) format.
fn convert_field(
    kind: Kind,
    trim: bool,
    raw: &[u8],
    scratch: &mut Vec<u8>,
    out: &mut Vec<u8>,
) -> Result<(), &'static str> {
    // NULL is the raw field `\N`; the escaped `\\N` is the text `\N`.
    if raw == b"\\N" {
        out.extend_from_slice(&(-1i32).to_be_bytes());
        return Ok(());
    }
    // A blank-padded value's padding is most of it: drop it before the
    // conversion rather than convert it and drop it after.
    let raw = if trim {
        raw.get(..crate::pg::unpad::trim_text(raw)).unwrap_or(raw)
    } else {
        raw
    };
    let len_at = out.len();
    out.extend_from_slice(&[0; 4]);
    let start = out.len();
    convert_value(kind, raw, scratch, out)?;
    // An escaped blank (`\ `, which COPY never writes) survives the raw
    // trim; the value's trailing blanks go all the same.
    if trim {
        let kept = out.get(start..).map_or(0, crate::pg::unpad::trim_spaces);
        out.truncate(start.saturating_add(kept));
    }
    let len = out
        .len()
        .checked_sub(start)
        .and_then(|len| i32::try_from(len).ok())
        .ok_or("a value of 2 GiB or more")?;
    if let Some(slot) = out.get_mut(len_at..start) {
        slot.copy_from_slice(&len.to_be_bytes());
    }
    Ok(())
}

fn convert_value(
    kind: Kind,
    raw: &[u8],
    scratch: &mut Vec<u8>,
    out: &mut Vec<u8>,
) -> Result<(), &'static str> {
    match kind {
        // The binary form of json is its text, of jsonb a version byte and
        // its text; the receive functions parse and check it as input does.
        Kind::Text | Kind::Json => return text(raw, out),
        Kind::Jsonb => {
            out.push(1);
            return text(raw, out);
        }
        Kind::Bytea => return bytea(raw, scratch, out),
        _ => {}
    }
    // The remaining types never need escapes in COPY output, and none of
    // their parsers takes a backslash: convert the raw field, and only if
    // that fails and it holds an escape, undo the escapes as the server
    // would and try again.
    let at = out.len();
    let first = scalar(kind, raw, out);
    if first.is_err() && memchr(b'\\', raw).is_some() {
        out.truncate(at);
        scratch.clear();
        unescape(raw, scratch)?;
        return scalar(kind, scratch, out);
    }
    first
}

/// Appends the binary form of a value of a kind without escapes (all but
/// text, json, jsonb and bytea).
fn scalar(kind: Kind, value: &[u8], out: &mut Vec<u8>) -> Result<(), &'static str> {
    match kind {
        Kind::Bool => out.push(match value {
            b"t" => 1,
            b"f" => 0,
            _ => return Err("a bool other than t or f"),
        }),
        Kind::Int2 => {
            let n = signed(value).and_then(|n| i16::try_from(n).ok());
            out.extend_from_slice(&n.ok_or("an invalid or out-of-range int2")?.to_be_bytes());
        }
        Kind::Int4 => {
            let n = signed(value).and_then(|n| i32::try_from(n).ok());
            out.extend_from_slice(&n.ok_or("an invalid or out-of-range int4")?.to_be_bytes());
        }
        Kind::Int8 => {
            let n = signed(value).ok_or("an invalid or out-of-range int8")?;
            out.extend_from_slice(&n.to_be_bytes());
        }
        Kind::Oid => {
            // oidin also takes negative numbers, but oidout never writes them.
            let n = unsigned(value).and_then(|n| u32::try_from(n).ok());
            out.extend_from_slice(&n.ok_or("an invalid or out-of-range oid")?.to_be_bytes());
        }
        Kind::Float4 => {
            let bits = float4(value).ok_or("an invalid or out-of-range float4")?;
            out.extend_from_slice(&bits.to_be_bytes());
        }
        Kind::Float8 => {
            let bits = float8(value).ok_or("an invalid or out-of-range float8")?;
            out.extend_from_slice(&bits.to_be_bytes());
        }
        Kind::Uuid => out.extend_from_slice(&uuid(value).ok_or("an invalid uuid")?),
        Kind::Date => {
            let days = date(value).ok_or("an invalid or out-of-range date")?;
            out.extend_from_slice(&days.to_be_bytes());
        }
        Kind::Timestamp => {
            let us = timestamp(value, false).ok_or("an invalid or out-of-range timestamp")?;
            out.extend_from_slice(&us.to_be_bytes());
        }
        Kind::Timestamptz => {
            let us = timestamp(value, true).ok_or("an invalid or out-of-range timestamptz")?;
            out.extend_from_slice(&us.to_be_bytes());
        }
        // Converted by convert_value itself; never passed here.
        Kind::Text | Kind::Json | Kind::Jsonb | Kind::Bytea => {
            return Err("a kind that is not a scalar")
        }
    }
    Ok(())
}

/// Appends the unescaped field as text, which must be valid UTF-8
/// (the session's client_encoding): the receive function converts it to the
/// server encoding just as COPY converts its text input.
fn text(raw: &[u8], out: &mut Vec<u8>) -> Result<(), &'static str> {
    // Most fields have no escape: one search, then the copy.
    if memchr3(b'\\', b'\0', b'\r', raw).is_none() {
        std::str::from_utf8(raw).map_err(|_| "text that is not valid UTF-8")?;
        out.extend_from_slice(raw);
        return Ok(());
    }
    // A raw CR ends a line for COPY FROM (or is an error there), and NUL is
    // never valid text; COPY TO escapes the one and cannot hold the other.
    if memchr2(b'\0', b'\r', raw).is_some() {
        return Err("text with a raw NUL or carriage return");
    }
    let start = out.len();
    unescape(raw, out)?;
    match out.get(start..).map(std::str::from_utf8) {
        Some(Ok(_)) => Ok(()),
        _ => Err("text that is not valid UTF-8"),
    }
}

/// Appends the bytes of a bytea in hex format (`\x` and pairs of hex
/// digits, after unescaping). The old escape format is left to the server.
fn bytea(raw: &[u8], scratch: &mut Vec<u8>, out: &mut Vec<u8>) -> Result<(), &'static str> {
    // COPY writes `\\x` and then plain hex digits; decode those straight
    // from the field rather than copying a value that may be huge.
    let hex = match raw.strip_prefix(b"\\\\x") {
        Some(hex) if memchr(b'\\', hex).is_none() => hex,
        _ => {
            scratch.clear();
            unescape(raw, scratch)?;
            scratch
                .strip_prefix(b"\\x")
                .ok_or("a bytea not in hex format")?
        }
    };
    let pairs = hex.chunks_exact(2);
    if !pairs.remainder().is_empty() {
        return Err("a bytea with an odd number of hex digits");
    }
    // Decoded in place, with one check at the end: a non-digit's table
    // entry has its top bit set, and so does the OR of all entries.
    let start = out.len();
    out.resize(start.saturating_add(pairs.len()), 0);
    let mut seen = 0u8;
    for (byte, pair) in out
        .get_mut(start..)
        .unwrap_or_default()
        .iter_mut()
        .zip(pairs)
    {
        if let [hi, lo] = pair {
            let (hi, lo) = (hex_value(*hi), hex_value(*lo));
            seen |= hi | lo;
            *byte = ((hi & 0x0f) << 4) | (lo & 0x0f);
        }
    }
    if seen & NOT_HEX_BIT != 0 {
        return Err("a bytea with a non-hex digit");
    }
    Ok(())
}

/// Appends `raw` with COPY text escapes undone, as the server's
/// CopyReadAttributesText does.
fn unescape(raw: &[u8], out: &mut Vec<u8>) -> Result<(), &'static str> {
    let mut rest = raw;
    while let Some(at) = memchr(b'\\', rest) {
        let (run, escape) = rest.split_at_checked(at).ok_or("a broken escape")?;
        out.extend_from_slice(run);
        let Some((&c, tail)) = escape.get(1..).and_then(<[u8]>::split_first) else {
            return Err("a field ending in a backslash");
        };
        rest = tail;
        let byte = match c {
            b'b' => 0x08,
            b'f' => 0x0c,
            b'n' => b'\n',
            b'r' => b'\r',
            b't' => b'\t',
            b'v' => 0x0b,
            b'0'..=b'7' => {
                let mut value = u32::from(c & 7);
                for _ in 0..2 {
                    match rest.split_first() {
                        Some((&d @ b'0'..=b'7', tail)) => {
                            value = (value << 3) | u32::from(d & 7);
                            rest = tail;
                        }
                        _ => break,
                    }
                }
                escaped_byte(value)?
            }
            b'x' => match rest
                .split_first()
                .and_then(|(&h, tail)| Some((hex_digit(h, true)?, tail)))
            {
                Some((high, tail)) => {
                    rest = tail;
                    let mut value = u32::from(high);
                    if let Some((&l, tail)) = rest.split_first() {
                        if let Some(low) = hex_digit(l, true) {
                            value = (value << 4) | u32::from(low);
                            rest = tail;
                        }
                    }
                    escaped_byte(value)?
                }
                // `\x` without a hex digit is a plain `x` to the server.
                None => b'x',
            },
            // `\.` is COPY's end-of-data marker, which COPY FROM may take
            // as the end of the data (or reject) depending on the version.
            b'.' => return Err("an end-of-data marker"),
            other => other,
        };
        out.push(byte);
    }
    out.extend_from_slice(rest);
    Ok(())
}

/// The byte an octal or hex escape stands for. NUL and non-ASCII bytes are
/// refused: COPY FROM puts escaped bytes into the value as they are, in the
/// server encoding, while the receive function would treat them as
/// client_encoding and convert them. COPY TO never writes such escapes.
fn escaped_byte(value: u32) -> Result<u8, &'static str> {
    match u8::try_from(value & 0xff) {
        Ok(byte @ 1..=0x7f) => Ok(byte),
        _ => Err("an escape for a NUL or non-ASCII byte"),
    }
}

/// Each byte's value as a hex digit; `NOT_HEX` for a byte that is none,
/// `UPPER` marked on `A`-`F`. A table: a restore decodes every byte of
/// every bytea through it.
// Built at compile time, where an index out of range or a truncating cast
// fails the build rather than a restore.
#[allow(
    clippy::indexing_slicing,
    clippy::cast_possible_truncation,
    clippy::arithmetic_side_effects
)]
const HEX: [u8; 256] = {
    let mut table = [NOT_HEX; 256];
    let mut i = 0;
    while i < 10 {
        table[b'0' as usize + i] = i as u8;
        i += 1;
    }
    let mut i = 0;
    while i < 6 {
        table[b'a' as usize + i] = 10 + i as u8;
        table[b'A' as usize + i] = UPPER | (10 + i as u8);
        i += 1;
    }
    table
};
const NOT_HEX: u8 = 0xff;
const NOT_HEX_BIT: u8 = 0x80;
const UPPER: u8 = 0x10;

/// `b`'s entry in [`HEX`].
fn hex_value(b: u8) -> u8 {
    HEX.get(usize::from(b)).copied().unwrap_or(NOT_HEX)
}

fn hex_digit(b: u8, upper_too: bool) -> Option<u8> {
    match hex_value(b) {
        NOT_HEX => None,
        d if d & UPPER == 0 => Some(d),
        d if upper_too => Some(d & 0x0f),
        _ => None,
    }
}

fn hex_pair(hi: u8, lo: u8, upper_too: bool) -> Option<u8> {
    Some((hex_digit(hi, upper_too)? << 4) | hex_digit(lo, upper_too)?)
}

/// The value of a run of ASCII digits (no sign), None if empty or too big.
fn unsigned(digits: &[u8]) -> Option<u64> {
    if digits.is_empty() {
        return None;
    }
    digits.iter().try_fold(0u64, |n, &d| {
        n.checked_mul(10)?
            .checked_add(u64::from(char::from(d).to_digit(10)?))
    })
}

/// `-?digits` as int8 writes it (int input also takes spaces, `+`, and
/// from PostgreSQL 16 on `_` and 0x/0o/0b prefixes; output never has them).
fn signed(value: &[u8]) -> Option<i64> {
    match value.strip_prefix(b"-") {
        Some(digits) => 0i64.checked_sub_unsigned(unsigned(digits)?),
        None => i64::try_from(unsigned(value)?).ok(),
    }
}

/// Checks `-?D+(.D+)?(e[+-]?D+)?`, the shape of float output, and says
/// whether the digits before the exponent hold anything but zeros.
fn float_syntax(value: &[u8]) -> Option<bool> {
    let mut c = Cursor(value);
    c.eat(b'-');
    let whole = c.digits();
    if whole.is_empty() {
        return None;
    }
    let mut nonzero = whole.iter().any(|&d| d != b'0');
    if c.eat(b'.') {
        let fraction = c.digits();
        if fraction.is_empty() {
            return None;
        }
        nonzero |= fraction.iter().any(|&d| d != b'0');
    }
    if c.eat(b'e') {
        if !c.eat(b'+') {
            c.eat(b'-');
        }
        if c.digits().is_empty() {
            return None;
        }
    }
    c.0.is_empty().then_some(nonzero)
}

// Not f64::NAN.to_bits(), whose bits Rust does not promise: these are the
// quiet NaNs C's NAN gives, which is what float4in and float8in store.
const FLOAT8_NAN: u64 = 0x7ff8_0000_0000_0000;
const FLOAT4_NAN: u32 = 0x7fc0_0000;

/// The bits float8in stores for `value`. Rust's parse rounds correctly, as
/// strtod does; float8in refuses results that overflow to infinity or
/// underflow to zero (subnormals are fine), and so does this.
fn float8(value: &[u8]) -> Option<u64> {
    match value {
        b"NaN" => return Some(FLOAT8_NAN),
        b"Infinity" => return Some(f64::INFINITY.to_bits()),
        b"-Infinity" => return Some(f64::NEG_INFINITY.to_bits()),
        _ => {}
    }
    let nonzero = float_syntax(value)?;
    let x: f64 = std::str::from_utf8(value).ok()?.parse().ok()?;
    if x.is_infinite() || (x == 0.0 && nonzero) {
        return None;
    }
    Some(x.to_bits())
}

/// As [`float8`] for float4in, which (since PostgreSQL 12) parses with
/// strtof, so rounds once, straight to single precision, as Rust does.
fn float4(value: &[u8]) -> Option<u32> {
    match value {
        b"NaN" => return Some(FLOAT4_NAN),
        b"Infinity" => return Some(f32::INFINITY.to_bits()),
        b"-Infinity" => return Some(f32::NEG_INFINITY.to_bits()),
        _ => {}
    }
    let nonzero = float_syntax(value)?;
    let x: f32 = std::str::from_utf8(value).ok()?.parse().ok()?;
    if x.is_infinite() || (x == 0.0 && nonzero) {
        return None;
    }
    Some(x.to_bits())
}

/// A uuid as uuid_out writes it: 8-4-4-4-12 lowercase hex digits.
fn uuid(value: &[u8]) -> Option<[u8; 16]> {
    const DASHES: [usize; 4] = [8, 13, 18, 23];
    if value.len() != 36 || DASHES.iter().any(|&at| value.get(at) != Some(&b'-')) {
        return None;
    }
    let mut digits = value
        .iter()
        .enumerate()
        .filter(|(at, _)| !DASHES.contains(at))
        .map(|(_, &b)| b);
    let mut bytes = [0u8; 16];
    for byte in &mut bytes {
        *byte = hex_pair(digits.next()?, digits.next()?, false)?;
    }
    Some(bytes)
}

/// A parser over the bytes of one value.
struct Cursor<'a>(&'a [u8]);

impl<'a> Cursor<'a> {
    fn eat(&mut self, b: u8) -> bool {
        self.eat_all(&[b])
    }

    fn eat_all(&mut self, s: &[u8]) -> bool {
        match self.0.strip_prefix(s) {
            Some(rest) => {
                self.0 = rest;
                true
            }
            None => false,
        }
    }

    /// The run of ASCII digits at the cursor, possibly empty.
    fn digits(&mut self) -> &'a [u8] {
        let n = self.0.iter().take_while(|b| b.is_ascii_digit()).count();
        let (digits, rest) = self.0.split_at_checked(n).unwrap_or((&[], self.0));
        self.0 = rest;
        digits
    }

    /// Exactly two digits, as every date and time field but the year has.
    fn two_digits(&mut self) -> Option<i64> {
        let digits = self.digits();
        if digits.len() != 2 {
            return None;
        }
        i64::try_from(unsigned(digits)?).ok()
    }

    /// `YYYY-MM-DD`, the year as written (1 or more, AD or BC unknown yet).
    fn date(&mut self) -> Option<(i64, i64, i64)> {
        let year = self.digits();
        // Years have at least four digits, zero-padded, and more only when
        // needed; no valid year has more than seven.
        if year.len() < 4 || year.len() > 7 || (year.len() > 4 && year.first() == Some(&b'0')) {
            return None;
        }
        let year = i64::try_from(unsigned(year)?).ok()?;
        if !self.eat(b'-') {
            return None;
        }
        let month = self.two_digits()?;
        if !self.eat(b'-') {
            return None;
        }
        let day = self.two_digits()?;
        Some((year, month, day))
    }

    /// ` BC` at the end of the value.
    fn bc(&mut self) -> bool {
        self.eat_all(b" BC")
    }
}

const POSTGRES_EPOCH_JDATE: i64 = 2_451_545;
/// Julian day of the first date past the date range (5874898-01-01).
const DATE_END_JULIAN: i64 = 2_147_483_494;
const USECS_PER_DAY: i64 = 86_400_000_000;
const USECS_PER_SEC: i64 = 1_000_000;
/// 4714-11-24 00:00:00 BC, the first valid timestamp.
const MIN_TIMESTAMP: i64 = -211_813_488_000_000_000;
/// 294277-01-01 00:00:00, the first timestamp past the range.
const END_TIMESTAMP: i64 = 9_223_371_331_200_000_000;
/// The largest hour in a UTC offset that timestamp input takes.
const MAX_TZDISP_HOUR: i64 = 15;

/// PostgreSQL's date2j: the Julian day number of a proleptic Gregorian
/// date, with 1 BC as year 0.
fn date2j(year: i64, month: i64, day: i64) -> Option<i64> {
    let (y, m) = if month > 2 {
        (year.checked_add(4800)?, month.checked_add(1)?)
    } else {
        (year.checked_add(4799)?, month.checked_add(13)?)
    };
    let century = y.checked_div(100)?;
    y.checked_mul(365)?
        .checked_sub(32167)?
        .checked_add(y.checked_div(4)?)?
        .checked_sub(century)?
        .checked_add(century.checked_div(4)?)?
        .checked_add(m.checked_mul(7834)?.checked_div(256)?)?
        .checked_add(day)
}

fn is_leap(year: i64) -> bool {
    year.checked_rem(4) == Some(0)
        && (year.checked_rem(100) != Some(0) || year.checked_rem(400) == Some(0))
}

/// Checks a date as written and returns its Julian day, applying the checks
/// date and timestamp input make before computing anything: no year zero,
/// a real day of the month (leap years proleptic, on the astronomical
/// year), and IS_VALID_JULIAN.
fn julian_day(year: i64, month: i64, day: i64, bc: bool) -> Option<i64> {
    if year < 1 {
        return None;
    }
    let year = if bc { 1i64.checked_sub(year)? } else { year };
    let days_in_month = match month {
        1 | 3 | 5 | 7 | 8 | 10 | 12 => 31,
        4 | 6 | 9 | 11 => 30,
        2 if is_leap(year) => 29,
        2 => 28,
        _ => return None,
    };
    if day < 1 || day > days_in_month {
        return None;
    }
    let after_start = year > -4713 || (year == -4713 && month >= 11);
    let before_end = year < 5_874_898 || (year == 5_874_898 && month < 6);
    if !(after_start && before_end) {
        return None;
    }
    date2j(year, month, day)
}

/// A date as date_out writes it with DateStyle ISO, as days since 2000-01-01.
fn date(value: &[u8]) -> Option<i32> {
    match value {
        b"infinity" => return Some(i32::MAX),
        b"-infinity" => return Some(i32::MIN),
        _ => {}
    }
    let mut c = Cursor(value);
    let (year, month, day) = c.date()?;
    let bc = c.bc();
    if !c.0.is_empty() {
        return None;
    }
    let julian = julian_day(year, month, day, bc)?;
    if !(0..DATE_END_JULIAN).contains(&julian) {
        return None;
    }
    i32::try_from(julian.checked_sub(POSTGRES_EPOCH_JDATE)?).ok()
}

/// A timestamp as timestamp_out (or, `with_zone`, timestamptz_out) writes
/// it with DateStyle ISO, as microseconds since 2000-01-01 00:00:00 (UTC).
fn timestamp(value: &[u8], with_zone: bool) -> Option<i64> {
    match value {
        b"infinity" => return Some(i64::MAX),
        b"-infinity" => return Some(i64::MIN),
        _ => {}
    }
    let mut c = Cursor(value);
    let (year, month, day) = c.date()?;
    if !c.eat(b' ') {
        return None;
    }
    let hour = c.two_digits()?;
    if !c.eat(b':') {
        return None;
    }
    let minute = c.two_digits()?;
    if !c.eat(b':') {
        return None;
    }
    let second = c.two_digits()?;
    // Input takes 24:00:00 and leap second 60, but output never has them.
    if hour > 23 || minute > 59 || second > 59 {
        return None;
    }
    let mut micros = 0;
    if c.eat(b'.') {
        let digits = c.digits();
        // Output has at most six digits, trailing zeros dropped; input
        // would round a seventh.
        let scale = match digits.len() {
            1 => 100_000,
            2 => 10_000,
            3 => 1_000,
            4 => 100,
            5 => 10,
            6 => 1,
            _ => return None,
        };
        micros = i64::try_from(unsigned(digits)?).ok()?.checked_mul(scale)?;
    }
    let offset = if with_zone { c.utc_offset()? } else { 0 };
    let bc = c.bc();
    if !c.0.is_empty() {
        return None;
    }
    let days = julian_day(year, month, day, bc)?.checked_sub(POSTGRES_EPOCH_JDATE)?;
    let seconds = hour
        .checked_mul(3600)?
        .checked_add(minute.checked_mul(60)?)?
        .checked_add(second)?
        .checked_sub(offset)?;
    let result = days
        .checked_mul(USECS_PER_DAY)?
        .checked_add(seconds.checked_mul(USECS_PER_SEC)?)?
        .checked_add(micros)?;
    (MIN_TIMESTAMP..END_TIMESTAMP)
        .contains(&result)
        .then_some(result)
}

impl Cursor<'_> {
    /// `+HH`, `+HH:MM` or `+HH:MM:SS` (or `-`), as EncodeTimezone writes a
    /// UTC offset, in seconds east of Greenwich.
    fn utc_offset(&mut self) -> Option<i64> {
        let east = if self.eat(b'+') {
            true
        } else if self.eat(b'-') {
            false
        } else {
            return None;
        };
        let hours = self.two_digits()?;
        let mut minutes = 0;
        let mut seconds = 0;
        if self.eat(b':') {
            minutes = self.two_digits()?;
            if self.eat(b':') {
                seconds = self.two_digits()?;
            }
        }
        if hours > MAX_TZDISP_HOUR || minutes > 59 || seconds > 59 {
            return None;
        }
        let offset = hours
            .checked_mul(3600)?
            .checked_add(minutes.checked_mul(60)?)?
            .checked_add(seconds)?;
        if east {
            Some(offset)
        } else {
            offset.checked_neg()
        }
    }
}

#[cfg(test)]
#[allow(
    clippy::arithmetic_side_effects,
    clippy::indexing_slicing,
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::cast_possible_truncation,
    clippy::cast_possible_wrap,
    clippy::cast_sign_loss
)]
mod tests {
    use super::*;

    const ALL: [Kind; 15] = [
        Kind::Bool,
        Kind::Bytea,
        Kind::Int8,
        Kind::Int2,
        Kind::Int4,
        Kind::Text,
        Kind::Oid,
        Kind::Json,
        Kind::Float4,
        Kind::Float8,
        Kind::Date,
        Kind::Timestamp,
        Kind::Timestamptz,
        Kind::Uuid,
        Kind::Jsonb,
    ];

    fn convert(kinds: &[Kind], text: &[u8]) -> Result<Vec<u8>, TranscodeError> {
        let mut t = Transcoder::new(kinds.to_vec(), &[]);
        let mut out = Vec::new();
        t.feed(text, &mut out)?;
        t.finish()?;
        Ok(out)
    }

    /// The binary value of a one-field row holding `field` (raw bytes),
    /// None for NULL; checks the tuple's framing on the way.
    fn value_bytes(kind: Kind, field: &[u8]) -> Result<Option<Vec<u8>>, TranscodeError> {
        let mut row = field.to_vec();
        row.push(b'\n');
        let out = convert(&[kind], &row)?;
        assert_eq!(out[..2], [0, 1]);
        let len = i32::from_be_bytes(out[2..6].try_into().unwrap());
        if len == -1 {
            assert_eq!(out.len(), 6);
            return Ok(None);
        }
        assert_eq!(out.len(), 6 + len as usize);
        Ok(Some(out[6..].to_vec()))
    }

    fn ok(kind: Kind, field: &str) -> Vec<u8> {
        value_bytes(kind, field.as_bytes())
            .unwrap_or_else(|e| panic!("{kind:?} {field:?}: {e}"))
            .unwrap_or_else(|| panic!("{kind:?} {field:?}: NULL"))
    }

    fn assert_rejected(kind: Kind, field: &str) {
        assert!(
            value_bytes(kind, field.as_bytes()).is_err(),
            "{kind:?} {field:?} was accepted"
        );
    }

    #[test]
    fn kinds_by_type_oid() {
        let known = [
            (16, Kind::Bool),
            (17, Kind::Bytea),
            (20, Kind::Int8),
            (21, Kind::Int2),
            (23, Kind::Int4),
            (25, Kind::Text),
            (26, Kind::Oid),
            (114, Kind::Json),
            (700, Kind::Float4),
            (701, Kind::Float8),
            (1042, Kind::Text),
            (1043, Kind::Text),
            (1082, Kind::Date),
            (1114, Kind::Timestamp),
            (1184, Kind::Timestamptz),
            (2950, Kind::Uuid),
            (3802, Kind::Jsonb),
        ];
        for (oid, kind) in known {
            assert_eq!(Kind::from_type_oid(oid), Some(kind), "{oid}");
        }
        // name, numeric, time, timetz, interval, text[], tsvector
        for oid in [0, 19, 1700, 1083, 1266, 1186, 1009, 3614, u32::MAX] {
            assert_eq!(Kind::from_type_oid(oid), None, "{oid}");
        }
    }

    #[test]
    fn date2j_as_postgres() {
        assert_eq!(date2j(2000, 1, 1), Some(POSTGRES_EPOCH_JDATE));
        assert_eq!(date2j(-4713, 11, 24), Some(0));
        assert_eq!(date2j(5_874_898, 1, 1), Some(DATE_END_JULIAN));
        // TIMESTAMP_END_JULIAN
        assert_eq!(date2j(294_277, 1, 1), Some(109_203_528));
        // Julian day 0 is 1 January 4713 BC in the Julian calendar, which is
        // 24 November 4714 BC in the proleptic Gregorian one; 38 days later
        // (7 left in November, 31 in December) is 1 January 4713 BC.
        assert_eq!(date2j(-4712, 1, 1), Some(38));
    }

    #[test]
    fn dates() {
        // Days from 2000-01-01; the AD ones agree with any proleptic
        // Gregorian calendar (Python's date.toordinal() - 730120), all
        // with PostgreSQL's date_send.
        let known = [
            ("2000-01-01", 0),
            ("1999-12-31", -1),
            ("2000-03-01", 60),
            ("1970-01-01", -10957),
            ("2024-02-29", 8825),
            ("0001-01-01", -730_119),
            // 1 BC is year 0, a leap year: 366 days before 0001-01-01.
            ("0001-01-01 BC", -730_485),
            ("0001-02-29 BC", -730_426),
            ("0005-02-29 BC", -731_887),
            ("4713-01-01 BC", 38 - 2_451_545),
            ("4714-11-24 BC", -2_451_545),
            ("10000-01-01", 2_921_940),
            ("5874897-12-31", 2_145_031_948),
            ("infinity", i32::MAX),
            ("-infinity", i32::MIN),
        ];
        for (text, days) in known {
            assert_eq!(ok(Kind::Date, text), i32::to_be_bytes(days), "{text}");
        }
    }

    #[test]
    fn dates_rejected() {
        for text in [
            "",
            "2000-02-30",
            "1900-02-29",
            "2001-02-29",
            "0004-02-29 BC",
            "2000-04-31",
            "2000-13-01",
            "2000-00-10",
            "2000-01-00",
            "2000-01-32",
            "0000-01-01",
            "0000-01-01 BC",
            "4714-11-23 BC",
            "4714-01-01 BC",
            "4715-12-31 BC",
            "5874898-01-01",
            "9999999-01-01",
            "12345678-01-01",
            "2000-1-01",
            "2000-01-1",
            "200-01-01",
            "02000-01-01",
            "2000/01/01",
            "2000-01-01 AD",
            "2000-01-01 bc",
            "2000-01-01BC",
            "2000-01-01 BC ",
            " 2000-01-01",
            "2000-01-01 00:00:00",
            "Infinity",
            "+infinity",
            "epoch",
            "-2000-01-01",
        ] {
            assert_rejected(Kind::Date, text);
        }
    }

    #[test]
    fn timestamps() {
        let known = [
            ("2000-01-01 00:00:00", 0),
            ("2000-01-01 00:00:00.5", 500_000),
            ("2000-01-01 00:00:00.000001", 1),
            ("2000-01-01 00:00:00.10", 100_000),
            ("1999-12-31 23:59:59", -1_000_000),
            ("1999-12-31 23:59:59.999999", -1),
            ("1970-01-01 00:00:00", -946_684_800_000_000),
            ("2024-02-29 12:34:56.789", 762_525_296_789_000),
            ("0001-01-01 00:00:00 BC", -63_113_904_000_000_000),
            ("4714-11-24 00:00:00 BC", MIN_TIMESTAMP),
            ("294276-12-31 23:59:59.999999", END_TIMESTAMP - 1),
            ("infinity", i64::MAX),
            ("-infinity", i64::MIN),
        ];
        for (text, us) in known {
            assert_eq!(ok(Kind::Timestamp, text), i64::to_be_bytes(us), "{text}");
        }
    }

    #[test]
    fn timestamps_rejected() {
        for text in [
            "",
            "2000-01-01",
            "2000-01-01 24:00:00",
            "2000-01-01 23:60:00",
            "2000-01-01 23:59:60",
            "2000-01-01 0:00:00",
            "2000-01-01 00:00",
            "2000-01-01T00:00:00",
            "2000-01-01  00:00:00",
            "2000-01-01 00:00:00.",
            "2000-01-01 00:00:00.1234567",
            "2000-01-01 00:00:00,5",
            "2000-01-01 00:00:00+00",
            "2000-01-01 00:00:00 BC+00",
            "2000-02-30 00:00:00",
            "0000-01-01 00:00:00",
            "294277-01-01 00:00:00",
            "4714-11-23 23:59:59.999999 BC",
            "5874897-12-31 00:00:00",
            "Infinity",
            "2000-01-01 00:00:00 ",
        ] {
            assert_rejected(Kind::Timestamp, text);
        }
    }

    #[test]
    fn timestamptzs() {
        let known = [
            ("2000-01-01 00:00:00+00", 0),
            ("2000-01-01 05:30:00+05:30", 0),
            ("1999-12-31 16:00:00-08", 0),
            ("2000-01-01 00:19:32+00:19:32", 0),
            ("2000-01-01 00:00:00.5+00", 500_000),
            ("2000-01-01 00:00:00.000001-00:00:01", 1_000_001),
            // Local mean time offsets, as for Europe/Amsterdam and
            // Africa/Monrovia before the 1930s (values from timestamptz_send).
            ("1900-05-01 12:00:00+00:19:32", -3_145_263_572_000_000),
            ("1900-05-01 12:00:00-00:44:30", -3_145_259_730_000_000),
            ("2000-01-01 00:00:00+14", -50_400_000_000),
            ("2000-01-01 00:00:00-15:59:59", 57_599_000_000),
            ("0001-01-01 00:00:00+00 BC", -63_113_904_000_000_000),
            // The local date is before the range, the instant is not.
            ("4714-11-23 23:00:00-01 BC", MIN_TIMESTAMP),
            ("294276-12-31 23:59:59.999999+00", END_TIMESTAMP - 1),
            // The local date is past the range, the instant is not.
            ("294277-01-01 00:00:00+01", END_TIMESTAMP - 3_600_000_000),
            ("infinity", i64::MAX),
            ("-infinity", i64::MIN),
        ];
        for (text, us) in known {
            assert_eq!(ok(Kind::Timestamptz, text), i64::to_be_bytes(us), "{text}");
        }
    }

    #[test]
    fn timestamptzs_rejected() {
        for text in [
            "2000-01-01 00:00:00",
            "2000-01-01 00:00:00 BC",
            "2000-01-01 00:00:00+16",
            "2000-01-01 00:00:00+05:60",
            "2000-01-01 00:00:00+05:30:60",
            "2000-01-01 00:00:00+5",
            "2000-01-01 00:00:00+0530",
            "2000-01-01 00:00:00+05:3",
            "2000-01-01 00:00:00+05:",
            "2000-01-01 00:00:00+05:30:00:00",
            "2000-01-01 00:00:00Z",
            "2000-01-01 00:00:00 UTC",
            "2000-01-01 00:00:00 +00",
            "2000-01-01 00:00:00.5",
            "2000-01-01 00:00:00 BC+00",
            "4714-11-24 00:00:00+01 BC",
            "294276-12-31 23:59:59.999999-00:00:01",
            "294277-01-01 00:00:00+00",
        ] {
            assert_rejected(Kind::Timestamptz, text);
        }
    }

    #[test]
    fn integers() {
        assert_eq!(ok(Kind::Int2, "-32768"), i16::MIN.to_be_bytes());
        assert_eq!(ok(Kind::Int2, "32767"), i16::MAX.to_be_bytes());
        assert_eq!(ok(Kind::Int4, "-2147483648"), i32::MIN.to_be_bytes());
        assert_eq!(ok(Kind::Int4, "2147483647"), i32::MAX.to_be_bytes());
        assert_eq!(ok(Kind::Int4, "0"), [0; 4]);
        assert_eq!(ok(Kind::Int4, "-0"), [0; 4]);
        assert_eq!(ok(Kind::Int4, "-1"), [0xff; 4]);
        assert_eq!(ok(Kind::Int4, "007"), 7i32.to_be_bytes());
        assert_eq!(
            ok(Kind::Int8, "-9223372036854775808"),
            i64::MIN.to_be_bytes()
        );
        assert_eq!(
            ok(Kind::Int8, "9223372036854775807"),
            i64::MAX.to_be_bytes()
        );
        assert_eq!(ok(Kind::Int8, "1"), 1i64.to_be_bytes());
        assert_eq!(ok(Kind::Oid, "0"), [0; 4]);
        assert_eq!(ok(Kind::Oid, "4294967295"), [0xff; 4]);
        assert_eq!(ok(Kind::Oid, "2147483648"), 0x8000_0000u32.to_be_bytes());
        for (kind, text) in [
            (Kind::Int2, "32768"),
            (Kind::Int2, "-32769"),
            (Kind::Int4, "2147483648"),
            (Kind::Int4, "-2147483649"),
            (Kind::Int8, "9223372036854775808"),
            (Kind::Int8, "-9223372036854775809"),
            (Kind::Int8, "99999999999999999999999"),
            (Kind::Oid, "4294967296"),
            (Kind::Oid, "-1"),
            (Kind::Oid, "-0"),
        ] {
            assert_rejected(kind, text);
        }
        for kind in [Kind::Int2, Kind::Int4, Kind::Int8, Kind::Oid] {
            for text in [
                "", "-", "+1", " 1", "1 ", "1.0", "1e3", "0x10", "1_000", "--1", "1-", "١",
            ] {
                assert_rejected(kind, text);
            }
        }
    }

    #[test]
    fn floats() {
        let f8 = |text| u64::from_be_bytes(ok(Kind::Float8, text).try_into().unwrap());
        let f4 = |text| u32::from_be_bytes(ok(Kind::Float4, text).try_into().unwrap());
        // Expected bits from float8send/float4send.
        assert_eq!(f8("0.1"), 0x3fb9_9999_9999_999a);
        assert_eq!(f8("-0"), 0x8000_0000_0000_0000);
        assert_eq!(f8("1e+30"), 0x4629_3e59_39a0_8cea);
        assert_eq!(f8("4.9e-324"), 1);
        assert_eq!(f8("2.2250738585072014e-308"), 0x0010_0000_0000_0000);
        assert_eq!(f8("1.7976931348623157e+308"), 0x7fef_ffff_ffff_ffff);
        assert_eq!(f8("123456789012345678"), 0x437b_69b4_ba63_0f35);
        assert_eq!(f8("0.10000000000000001"), 0x3fb9_9999_9999_999a);
        assert_eq!(f8("NaN"), 0x7ff8_0000_0000_0000);
        assert_eq!(f8("Infinity"), 0x7ff0_0000_0000_0000);
        assert_eq!(f8("-Infinity"), 0xfff0_0000_0000_0000);
        assert_eq!(f8("0e+999"), 0);
        assert_eq!(f4("0.1"), 0x3dcc_cccd);
        assert_eq!(f4("-0"), 0x8000_0000);
        assert_eq!(f4("1e+30"), 0x7149_f2ca);
        assert_eq!(f4("1.4e-45"), 1);
        assert_eq!(f4("1e-45"), 1);
        assert_eq!(f4("1.17549435e-38"), 0x0080_0000);
        assert_eq!(f4("3.4028235e+38"), 0x7f7f_ffff);
        assert_eq!(f4("NaN"), 0x7fc0_0000);
        assert_eq!(f4("Infinity"), 0x7f80_0000);
        assert_eq!(f4("-Infinity"), 0xff80_0000);
        // Underflow to zero and overflow are errors in PostgreSQL.
        for (kind, text) in [
            (Kind::Float8, "1e-400"),
            (Kind::Float8, "2e-324"),
            (Kind::Float8, "1e309"),
            (Kind::Float8, "-1.8e+308"),
            (Kind::Float4, "1e-46"),
            (Kind::Float4, "3.4028236e+38"),
            (Kind::Float4, "1e39"),
        ] {
            assert_rejected(kind, text);
        }
        for kind in [Kind::Float4, Kind::Float8] {
            for text in [
                "",
                "-",
                "inf",
                "-inf",
                "infinity",
                "nan",
                "NAN",
                "+Infinity",
                "+1",
                "1.",
                ".5",
                "-.5",
                "1e",
                "1e+",
                "1E5",
                "0x10",
                " 1",
                "1 ",
                "1_0",
                "1e5.0",
                "--1",
                "1.5.5",
            ] {
                assert_rejected(kind, text);
            }
        }
    }

    #[test]
    fn bools() {
        assert_eq!(ok(Kind::Bool, "t"), [1]);
        assert_eq!(ok(Kind::Bool, "f"), [0]);
        for text in ["", "true", "false", "T", "F", "1", "0", "yes", "on", "t "] {
            assert_rejected(Kind::Bool, text);
        }
    }

    #[test]
    fn byteas() {
        // COPY writes bytea 0xDEAD as `\\xdead`.
        assert_eq!(ok(Kind::Bytea, r"\\xdead"), [0xde, 0xad]);
        assert_eq!(ok(Kind::Bytea, r"\\x"), [0u8; 0]);
        assert_eq!(ok(Kind::Bytea, r"\\x00ff5C"), [0, 0xff, 0x5c]);
        // Other escapes are undone first, wherever they are.
        assert_eq!(ok(Kind::Bytea, r"\134x\x41\061"), [0xa1]);
        assert_eq!(ok(Kind::Bytea, r"\\x\x41\x41"), [0xaa]);
        for text in [
            "",
            r"\x",
            r"\xdead",
            r"\\xdea",
            r"\\xdeag",
            r"\\Xdead",
            r"\\x de ad",
            r"\\xdead\",
            r"\336\255",
            "abc",
            "\\\\\\\\xdead",
            r"\\x\000",
        ] {
            assert_rejected(Kind::Bytea, text);
        }
    }

    #[test]
    fn uuids() {
        assert_eq!(
            ok(Kind::Uuid, "a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11"),
            [
                0xa0, 0xee, 0xbc, 0x99, 0x9c, 0x0b, 0x4e, 0xf8, 0xbb, 0x6d, 0x6b, 0xb9, 0xbd, 0x38,
                0x0a, 0x11
            ]
        );
        assert_eq!(
            ok(Kind::Uuid, "00000000-0000-0000-0000-000000000000"),
            [0; 16]
        );
        for text in [
            "",
            "A0EEBC99-9C0B-4EF8-BB6D-6BB9BD380A11",
            "a0eebc999c0b4ef8bb6d6bb9bd380a11",
            "{a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11}",
            "a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a1",
            "a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a111",
            "a0eebc99-9c0b-4ef8-bb6d6-bb9bd380a11",
            "a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a1g",
            "a0eebc99-9c0b-4ef8-bb6d-6bb9bd38-a11",
        ] {
            assert_rejected(Kind::Uuid, text);
        }
    }

    #[test]
    fn text_kinds() {
        assert_eq!(ok(Kind::Text, "héllo wörld ✓"), "héllo wörld ✓".as_bytes());
        assert_eq!(ok(Kind::Text, ""), b"");
        assert_eq!(
            ok(Kind::Json, r#"{"a": [1, "x\\ty"]}"#),
            br#"{"a": [1, "x\ty"]}"#
        );
        assert_eq!(ok(Kind::Jsonb, r#"{"a": 1}"#), b"\x01{\"a\": 1}");
        assert_eq!(ok(Kind::Jsonb, ""), b"\x01");
        for kind in [Kind::Text, Kind::Json, Kind::Jsonb] {
            for bad in [
                &b"\xff"[..],
                b"a\xc3",
                b"\xed\xa0\x80",
                b"\xc0\xaf",
                b"a\rb",
                b"a\0b",
            ] {
                assert!(value_bytes(kind, bad).is_err(), "{kind:?} {bad:?}");
            }
        }
    }

    #[test]
    fn escapes() {
        // Each as COPY FROM reads it (checked against PostgreSQL 15).
        let known: [(&str, &[u8]); 15] = [
            (r"\b\f\n\r\t\v\\", b"\x08\x0c\n\r\t\x0b\\"),
            (r"a\x4", b"a\x04"),
            (r"\x4g", b"\x04g"),
            (r"\x7F\x7e", b"\x7f\x7e"),
            (r"\101\1012", b"AA2"),
            (r"\7", b"\x07"),
            (r"\1777", b"\x7f7"),
            (r"\q", b"q"),
            (r"\x", b"x"),
            (r"\xg", b"xg"),
            (r"x\Ny", b"xNy"),
            (r"\\N", b"\\N"),
            (r"\Nx", b"Nx"),
            (r"\\x", b"\\x"),
            (r"\é", "é".as_bytes()),
        ];
        for (text, want) in known {
            assert_eq!(ok(Kind::Text, text), want, "{text}");
        }
        // Escapes work in every kind.
        assert_eq!(ok(Kind::Int4, r"\x31\062"), 12i32.to_be_bytes());
        assert_eq!(ok(Kind::Bool, r"\164"), [1]);
        assert_eq!(ok(Kind::Date, r"2000\-01-01"), [0; 4]);
        assert_rejected(Kind::Bool, r"\t");
    }

    #[test]
    fn no_scalar_parser_takes_a_backslash() {
        // convert_value converts a scalar's raw field first and undoes
        // escapes only when that fails: a raw field holding a backslash
        // must never convert as it is.
        let samples = [
            (Kind::Bool, "t"),
            (Kind::Int2, "-12"),
            (Kind::Int4, "123"),
            (Kind::Int8, "-9000"),
            (Kind::Oid, "42"),
            (Kind::Float4, "1.5e-07"),
            (Kind::Float8, "-Infinity"),
            (Kind::Float8, "NaN"),
            (Kind::Date, "2000-01-01 BC"),
            (Kind::Date, "infinity"),
            (Kind::Timestamp, "2000-01-01 12:34:56.789"),
            (Kind::Timestamptz, "2000-01-01 12:34:56+05:30"),
            (Kind::Uuid, "a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11"),
        ];
        for (kind, value) in samples {
            assert!(
                scalar(kind, value.as_bytes(), &mut Vec::new()).is_ok(),
                "{kind:?} {value}"
            );
            for at in 0..=value.len() {
                for (insert, replace) in [(&b"\\"[..], 0), (b"\\\\", 0), (b"\\", 1)] {
                    let mut v = value.as_bytes().to_vec();
                    let end = (at + replace).min(v.len());
                    v.splice(at..end, insert.iter().copied());
                    assert!(scalar(kind, &v, &mut Vec::new()).is_err(), "{kind:?} {v:?}");
                }
            }
        }
    }

    #[test]
    fn escapes_rejected() {
        for kind in ALL {
            for text in [
                // COPY's end-of-data marker, which COPY FROM does not read as `.`
                r"\.", r"a\.b",
                // A dangling backslash: a raw TAB or LF after it would
                // have been data to COPY FROM.
                "\\", r"a\", r"\\\", // NUL and non-ASCII bytes by escape.
                r"\0", r"\000", r"\400", r"\x00", r"\x80", r"\200", r"\377", r"\xff",
            ] {
                assert_rejected(kind, text);
            }
        }
    }

    #[test]
    fn nulls() {
        for kind in ALL {
            assert_eq!(value_bytes(kind, br"\N"), Ok(None), "{kind:?}");
        }
        let out = convert(&[Kind::Text, Kind::Int4, Kind::Text], b"\\N\t\\N\t\\\\N\n").unwrap();
        let mut want = vec![0, 3];
        want.extend_from_slice(&(-1i32).to_be_bytes());
        want.extend_from_slice(&(-1i32).to_be_bytes());
        want.extend_from_slice(&2i32.to_be_bytes());
        want.extend_from_slice(b"\\N");
        assert_eq!(out, want);
        // Only the whole raw field is NULL.
        assert_eq!(ok(Kind::Text, r"\N\N"), b"NN");
        assert_rejected(Kind::Int4, r"\N ");
    }

    #[test]
    fn tuple_layout() {
        let out = convert(
            &[Kind::Int2, Kind::Text, Kind::Bool],
            b"7\tab\tt\n-1\t\\N\tf\n",
        )
        .unwrap();
        assert_eq!(
            out,
            [
                0, 3, 0, 0, 0, 2, 0, 7, 0, 0, 0, 2, b'a', b'b', 0, 0, 0, 1, 1, //
                0, 3, 0, 0, 0, 2, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0, 0, 0, 1, 0,
            ]
        );
        assert_eq!(convert(&[Kind::Text], b""), Ok(Vec::new()));
        assert_eq!(convert(&[Kind::Text], b"\n"), Ok(vec![0, 1, 0, 0, 0, 0]));
        // A table without columns writes an empty line per row.
        assert_eq!(convert(&[], b"\n\n"), Ok(vec![0, 0, 0, 0]));
        assert!(convert(&[], b"x\n").is_err());
        assert!(convert(&[], b"\t\n").is_err());
    }

    #[test]
    fn field_counts() {
        let kinds = [Kind::Int4, Kind::Text];
        assert_eq!(
            convert(&kinds, b"1\n"),
            Err(error(1, "a row with fewer fields than columns"))
        );
        assert_eq!(
            convert(&kinds, b"1\tx\ty\n"),
            Err(error(2, "a row with more fields than columns"))
        );
        assert_eq!(
            convert(&kinds, b"1\tx\t\n"),
            Err(error(2, "a row with more fields than columns"))
        );
        assert!(convert(&kinds, b"1\tx\n2\n").is_err());
        assert!(convert(&kinds, b"\n").is_err());
        assert!(convert(&[Kind::Text, Kind::Text], b"\n").is_err());
        assert!(convert(&[Kind::Text, Kind::Text], b"\t\n").is_ok());
        // The column of a bad value is its index.
        assert_eq!(
            convert(&kinds, b"1\tx\nz\ty\n").map_err(|e| e.column),
            Err(0)
        );
    }

    #[test]
    fn errors_never_show_the_value() {
        let secret = "hunter2";
        for kind in ALL {
            for text in [
                secret.to_string(),
                format!("{secret}\\"),
                format!("\\.{secret}"),
                format!("2000-01-01 {secret}"),
                format!("\\\\x{secret}"),
            ] {
                if let Err(e) = value_bytes(kind, text.as_bytes()) {
                    assert!(!e.to_string().contains(secret), "{e}");
                    assert!(!e.what.contains("hunter"), "{e}");
                }
            }
        }
    }

    /// Rows of every kind, including NULLs, escapes and multibyte text.
    fn sample() -> (Vec<Kind>, Vec<u8>) {
        let kinds = ALL.to_vec();
        let rows = [
            "t\t\\\\xdeadbeef\t-9223372036854775808\t-32768\t2147483647\tline\\none\\ttab é✓\t4294967295\t{\"a\": 1}\t1.4e-45\t0.1\t2000-02-29\t2000-01-01 00:00:00.5\t1900-05-01 12:00:00+00:19:32\ta0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11\t[1, 2]",
            "\\N\t\\N\t\\N\t\\N\t\\N\t\\N\t\\N\t\\N\t\\N\t\\N\t\\N\t\\N\t\\N\t\\N\t\\N",
            "f\t\\\\x\t0\t0\t0\t\t0\tnull\tNaN\t-Infinity\t0001-01-01 BC\t4714-11-24 00:00:00 BC\t2000-01-01 05:30:00+05:30\t00000000-0000-0000-0000-000000000000\t\"\\\\\"",
            "t\t\\\\x00\t1\t-1\t-2147483648\t\\\\N\t1\t[]\t-0\t1e+30\tinfinity\t-infinity\t1999-12-31 16:00:00-08 BC\tffffffff-ffff-ffff-ffff-ffffffffffff\t{}",
        ];
        let mut text = Vec::new();
        for row in rows {
            text.extend_from_slice(row.as_bytes());
            text.push(b'\n');
        }
        (kinds, text)
    }

    #[test]
    fn sample_converts() {
        let (kinds, text) = sample();
        let out = convert(&kinds, &text).unwrap();
        // Four tuples of 15 fields.
        let mut at = 0;
        let mut tuples = 0;
        while at < out.len() {
            assert_eq!(out[at..at + 2], [0, 15]);
            at += 2;
            for _ in 0..15 {
                let len = i32::from_be_bytes(out[at..at + 4].try_into().unwrap());
                at += 4 + len.max(0) as usize;
            }
            tuples += 1;
        }
        assert_eq!((at, tuples), (out.len(), 4));
    }

    #[test]
    fn rows_cut_anywhere() {
        let (kinds, text) = sample();
        let whole = convert(&kinds, &text).unwrap();
        for cut in 0..=text.len() {
            let mut t = Transcoder::new(kinds.clone(), &[]);
            let mut out = Vec::new();
            t.feed(&text[..cut], &mut out).unwrap();
            t.feed(&text[cut..], &mut out).unwrap();
            t.finish().unwrap();
            assert_eq!(out, whole, "cut at {cut}");
        }
        for second in [1, 7, 60, 150] {
            for cut in 0..text.len() {
                let end = (cut + second).min(text.len());
                let mut t = Transcoder::new(kinds.clone(), &[]);
                let mut out = Vec::new();
                t.feed(&text[..cut], &mut out).unwrap();
                t.feed(&text[cut..end], &mut out).unwrap();
                t.feed(&[], &mut out).unwrap();
                t.feed(&text[end..], &mut out).unwrap();
                t.finish().unwrap();
                assert_eq!(out, whole, "cuts at {cut} and {end}");
            }
        }
        let mut t = Transcoder::new(kinds.clone(), &[]);
        let mut out = Vec::new();
        for byte in &text {
            t.feed(std::slice::from_ref(byte), &mut out).unwrap();
        }
        t.finish().unwrap();
        assert_eq!(out, whole, "a byte at a time");
    }

    #[test]
    fn cut_row_at_the_end() {
        let mut t = Transcoder::new(vec![Kind::Int4, Kind::Int4], &[]);
        let mut out = Vec::new();
        t.feed(b"1\t2\n3\t", &mut out).unwrap();
        assert_eq!(out, [0, 2, 0, 0, 0, 4, 0, 0, 0, 1, 0, 0, 0, 4, 0, 0, 0, 2]);
        assert_eq!(
            t.finish(),
            Err(error(ROW, "a row cut off at the end of the data"))
        );
        let mut t = Transcoder::new(vec![Kind::Text], &[]);
        t.feed(b"", &mut out).unwrap();
        t.finish().unwrap();
    }

    #[test]
    fn long_values_over_many_calls() {
        // 8 MB of text and 4 MB of bytea, fed 1000 bytes at a time.
        let text: Vec<u8> = (0..8_000_000u32)
            .map(|i| b"abc\\n"[(i % 5) as usize])
            .collect();
        let mut want_text = Vec::new();
        unescape(&text, &mut want_text).unwrap();
        let bytea: Vec<u8> = (0..4_000_000u32).map(|i| (i % 251) as u8).collect();
        let mut row = text.clone();
        row.extend_from_slice(b"\t\\\\x");
        row.extend_from_slice(hex::encode(&bytea).as_bytes());
        row.push(b'\n');
        let mut t = Transcoder::new(vec![Kind::Text, Kind::Bytea], &[]);
        let mut out = Vec::new();
        for piece in row.chunks(1000) {
            t.feed(piece, &mut out).unwrap();
        }
        t.finish().unwrap();
        let mut want = vec![0, 2];
        want.extend_from_slice(&(want_text.len() as i32).to_be_bytes());
        want.extend_from_slice(&want_text);
        want.extend_from_slice(&(bytea.len() as i32).to_be_bytes());
        want.extend_from_slice(&bytea);
        assert!(out == want);
    }

    #[test]
    fn a_row_over_the_limit_is_not_held() {
        // Fed in pieces as chunks come: the conversion gives up once the
        // row it holds passes MAX_ROW, not at the row's end.
        let piece = vec![b'a'; 1 << 20];
        let mut t = Transcoder::new(vec![Kind::Int4, Kind::Text], &[]);
        let mut out = Vec::new();
        t.feed(b"1\tx\n2\t", &mut out).unwrap();
        let mut fed = 0;
        let err = loop {
            match t.feed(&piece, &mut out) {
                Ok(()) => fed += piece.len(),
                Err(e) => break e,
            }
            assert!(fed <= MAX_ROW, "held {fed} bytes of one row");
        };
        assert_eq!(err.what, "a row over 16 MiB (it streams as text)");
        assert_eq!(fed, MAX_ROW - piece.len());
        // In one piece too (a chunk larger than the limit).
        let mut t = Transcoder::new(vec![Kind::Text], &[]);
        assert!(t.feed(&vec![b'a'; MAX_ROW + 1], &mut out).is_err());
        // Nor a row whose end arrives in the piece that takes it over
        // (QA: rows of up to 20 MiB, a chunk more, were converted).
        let mut t = Transcoder::new(vec![Kind::Text], &[]);
        t.feed(&vec![b'a'; MAX_ROW - 10], &mut out).unwrap();
        let mut last = vec![b'a'; 20];
        last.push(b'\n');
        let err = t.feed(&last, &mut out).unwrap_err();
        assert_eq!(err.column, ROW);
        assert_eq!(
            err.to_string(),
            "cannot convert a row over 16 MiB (it streams as text) to binary"
        );
        // A row of the limit's length converts.
        let mut t = Transcoder::new(vec![Kind::Text], &[]);
        let mut out = Vec::new();
        let row = vec![b'a'; MAX_ROW - 1];
        for p in row.chunks(1 << 20) {
            t.feed(p, &mut out).unwrap();
        }
        t.feed(b"\n", &mut out).unwrap();
        t.finish().unwrap();
        assert_eq!(out.len(), 2 + 4 + MAX_ROW - 1);
    }

    /// Converts without panicking; when it succeeds the tuples are well
    /// formed.
    fn check_no_panic(kinds: &[Kind], text: &[u8]) {
        let mut t = Transcoder::new(kinds.to_vec(), &[]);
        let mut out = Vec::new();
        if t.feed(text, &mut out).is_err() {
            return;
        }
        let _ = t.finish();
        let mut at = 0;
        while at < out.len() {
            assert_eq!(out[at..at + 2], (kinds.len() as i16).to_be_bytes());
            at += 2;
            for _ in kinds {
                let len = i32::from_be_bytes(out[at..at + 4].try_into().unwrap());
                assert!(len >= -1);
                at += 4 + len.max(0) as usize;
            }
        }
        assert_eq!(at, out.len());
    }

    #[test]
    fn short_inputs_never_panic() {
        let alphabet = b"01-: .+\\\tNx9e\n\xc3";
        let mut text = Vec::new();
        for len in 0..=4u32 {
            for mut n in 0..alphabet.len().pow(len) {
                text.clear();
                for _ in 0..len {
                    text.push(alphabet[n % alphabet.len()]);
                    n /= alphabet.len();
                }
                for kind in ALL {
                    check_no_panic(&[kind], &text);
                }
                check_no_panic(&[], &text);
                check_no_panic(&[Kind::Int4, Kind::Text], &text);
            }
        }
    }

    #[test]
    fn mutated_values_never_panic() {
        let (kinds, text) = sample();
        let fields: Vec<&[u8]> = text
            .split(|&b| b == b'\n')
            .flat_map(|row| row.split(|&b| b == b'\t'))
            .filter(|f| !f.is_empty())
            .collect();
        let alphabet = b"0123456789-+:. eEBCNTZxabcdefinty\\\t\n\0\x80\xff";
        let mut rng = 0x2545_f491_4f6c_dd1du64;
        let mut next = move |bound: usize| {
            rng ^= rng << 13;
            rng ^= rng >> 7;
            rng ^= rng << 17;
            (rng % bound as u64) as usize
        };
        let mut value = Vec::new();
        for _ in 0..20_000 {
            value.clear();
            value.extend_from_slice(fields[next(fields.len())]);
            for _ in 0..=next(3) {
                let at = next(value.len() + 1);
                let c = alphabet[next(alphabet.len())];
                match next(3) {
                    0 => value.insert(at, c),
                    1 if at < value.len() => value[at] = c,
                    _ if at < value.len() => {
                        value.remove(at);
                    }
                    _ => {}
                }
            }
            value.push(b'\n');
            for &kind in &kinds {
                check_no_panic(&[kind], &value);
            }
        }
    }

    #[test]
    fn padded_columns_lose_their_trailing_blanks() {
        let mut t = Transcoder::new(vec![Kind::Int4, Kind::Text, Kind::Text], &[1]);
        let mut out = Vec::new();
        // `\\` is an escaped backslash: it stays, the blanks after it go.
        t.feed(b"1\tab \\\\  \tkeep  \n2\t\\N\t\n", &mut out)
            .unwrap();
        t.finish().unwrap();
        let mut want = Vec::new();
        want.extend_from_slice(&3i16.to_be_bytes());
        want.extend_from_slice(&4i32.to_be_bytes());
        want.extend_from_slice(&1i32.to_be_bytes());
        want.extend_from_slice(&4i32.to_be_bytes());
        want.extend_from_slice(b"ab \\");
        want.extend_from_slice(&6i32.to_be_bytes());
        want.extend_from_slice(b"keep  ");
        want.extend_from_slice(&3i16.to_be_bytes());
        want.extend_from_slice(&4i32.to_be_bytes());
        want.extend_from_slice(&2i32.to_be_bytes());
        want.extend_from_slice(&(-1i32).to_be_bytes());
        want.extend_from_slice(&0i32.to_be_bytes());
        assert_eq!(out, want);
    }
}
