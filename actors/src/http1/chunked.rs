//! Streaming decoder and encoder helpers for the chunked transfer coding
//! (RFC 9112 section 7.1).
//!
//! [`ChunkedDecoder`] is an incremental state machine: it can be fed any
//! split of the encoded body and yields ranges of the input that hold chunk
//! payload, never copying data. Chunk extensions are validated and dropped;
//! trailer fields are validated and kept (minus framing/hop-by-hop fields).

use std::ops::Range;

use crate::http1::{is_tchar, push_hex, Http1Error};

/// Maximum length of a chunk-size line (size plus extensions).
const MAX_CHUNK_LINE: usize = 4096;

/// Maximum number of hex digits in a chunk size.
const MAX_SIZE_DIGITS: u8 = 16;

/// Trailer fields that are never kept: they could alter framing or routing
/// if a downstream recipient merged trailers into the header section.
const DROPPED_TRAILERS: &[&[u8]] = &[
    b"content-length",
    b"transfer-encoding",
    b"host",
    b"connection",
    b"keep-alive",
    b"te",
    b"trailer",
    b"upgrade",
    b"proxy-connection",
];

/// Decoder state.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    /// Reading the hex digits of a chunk size.
    Size,
    /// Inside chunk extensions, after `;`.
    Ext,
    /// Saw CR ending the chunk-size line; expecting LF.
    SizeLf,
    /// Inside chunk data.
    Data,
    /// Expecting the CR after chunk data.
    DataCr,
    /// Expecting the LF after chunk data.
    DataLf,
    /// Inside (or at the start of) a trailer line.
    Trailer,
    /// Saw CR in the trailer section; expecting LF.
    TrailerLf,
    /// The last chunk and trailer section were fully received.
    Done,
}

/// What a call to [`ChunkedDecoder::decode`] produced.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decoded {
    /// All input was consumed; more is needed.
    NeedMore,
    /// A non-empty range of the input holding chunk payload bytes.
    Data(Range<usize>),
    /// The body is complete; trailers are available.
    Done,
}

/// Incremental decoder for a chunked message body.
#[derive(Debug, Clone)]
pub struct ChunkedDecoder {
    state: State,
    size: u64,
    digits: u8,
    line_len: usize,
    remaining: u64,
    max_trailer_bytes: usize,
    trailer_bytes: usize,
    trailers: Vec<u8>,
    line_start: usize,
}

impl ChunkedDecoder {
    /// A decoder accepting at most `max_trailer_bytes` of trailer fields.
    pub fn new(max_trailer_bytes: usize) -> Self {
        ChunkedDecoder {
            state: State::Size,
            size: 0,
            digits: 0,
            line_len: 0,
            remaining: 0,
            max_trailer_bytes,
            trailer_bytes: 0,
            trailers: Vec::new(),
            line_start: 0,
        }
    }

    /// Resets the decoder for a new body, keeping buffer capacity.
    pub fn reset(&mut self) {
        self.state = State::Size;
        self.size = 0;
        self.digits = 0;
        self.line_len = 0;
        self.remaining = 0;
        self.trailer_bytes = 0;
        self.trailers.clear();
        self.line_start = 0;
    }

    /// Whether the whole body has been decoded.
    pub fn is_done(&self) -> bool {
        self.state == State::Done
    }

    /// The trailer field lines received (each `Name: value\r\n`), complete
    /// once [`Decoded::Done`] was returned.
    pub fn trailers(&self) -> &[u8] {
        &self.trailers
    }

    /// Consumes a prefix of `input`. Returns how many bytes were consumed
    /// and what they were. [`Decoded::NeedMore`] means all of `input` was
    /// consumed. After [`Decoded::Done`], nothing more is consumed.
    pub fn decode(&mut self, input: &[u8]) -> Result<(usize, Decoded), Http1Error> {
        let mut i = 0;
        loop {
            match self.state {
                State::Done => return Ok((i, Decoded::Done)),
                State::Data => {
                    let avail = input.len().saturating_sub(i);
                    if avail == 0 {
                        return Ok((i, Decoded::NeedMore));
                    }
                    let take = self.remaining.min(avail as u64);
                    self.remaining -= take;
                    if self.remaining == 0 {
                        self.state = State::DataCr;
                    }
                    let end = i + take as usize;
                    return Ok((end, Decoded::Data(i..end)));
                }
                _ => {
                    let Some(&b) = input.get(i) else {
                        return Ok((i, Decoded::NeedMore));
                    };
                    i += 1;
                    self.step(b)?;
                }
            }
        }
    }

    /// Advances the state machine by one framing byte.
    fn step(&mut self, b: u8) -> Result<(), Http1Error> {
        match self.state {
            State::Size => {
                if let Some(v) = hex_value(b) {
                    self.digits += 1;
                    if self.digits > MAX_SIZE_DIGITS {
                        return Err(bad("chunk size too long"));
                    }
                    self.size = (self.size << 4) | u64::from(v);
                    self.line_len += 1;
                } else if self.digits == 0 {
                    return Err(bad("invalid chunk size"));
                } else if b == b';' {
                    self.line_len += 1;
                    self.state = State::Ext;
                } else if b == b'\r' {
                    self.state = State::SizeLf;
                } else {
                    return Err(bad("invalid chunk size"));
                }
            }
            State::Ext => match b {
                b'\r' => self.state = State::SizeLf,
                b'\n' => return Err(bad("bare LF in chunk extension")),
                b'\t' => self.bump_line()?,
                0x00..=0x1f | 0x7f => return Err(bad("control byte in chunk extension")),
                _ => self.bump_line()?,
            },
            State::SizeLf => {
                if b != b'\n' {
                    return Err(bad("bare CR in chunk-size line"));
                }
                if self.size == 0 {
                    self.state = State::Trailer;
                    self.line_len = 0;
                    self.line_start = self.trailers.len();
                } else {
                    self.remaining = self.size;
                    self.state = State::Data;
                }
            }
            State::DataCr => {
                if b != b'\r' {
                    return Err(bad("missing CRLF after chunk data"));
                }
                self.state = State::DataLf;
            }
            State::DataLf => {
                if b != b'\n' {
                    return Err(bad("missing CRLF after chunk data"));
                }
                self.state = State::Size;
                self.size = 0;
                self.digits = 0;
                self.line_len = 0;
            }
            State::Trailer => match b {
                b'\r' => self.state = State::TrailerLf,
                b'\n' => return Err(bad("bare LF in trailer section")),
                b' ' | b'\t' if self.line_len == 0 => return Err(bad("obs-fold in trailer")),
                b'\t' => self.push_trailer_byte(b)?,
                0x00..=0x1f | 0x7f => return Err(bad("control byte in trailer")),
                _ => self.push_trailer_byte(b)?,
            },
            State::TrailerLf => {
                if b != b'\n' {
                    return Err(bad("bare CR in trailer section"));
                }
                if self.line_len == 0 {
                    self.state = State::Done;
                } else {
                    self.finish_trailer_line()?;
                    self.state = State::Trailer;
                }
            }
            State::Data | State::Done => {}
        }
        Ok(())
    }

    fn bump_line(&mut self) -> Result<(), Http1Error> {
        self.line_len += 1;
        if self.line_len > MAX_CHUNK_LINE {
            return Err(bad("chunk-size line too long"));
        }
        Ok(())
    }

    fn push_trailer_byte(&mut self, b: u8) -> Result<(), Http1Error> {
        self.trailer_bytes += 1;
        if self.trailer_bytes > self.max_trailer_bytes {
            return Err(Http1Error::TrailersTooLarge);
        }
        self.line_len += 1;
        self.trailers.push(b);
        Ok(())
    }

    /// Validates the trailer line just received and keeps or drops it.
    fn finish_trailer_line(&mut self) -> Result<(), Http1Error> {
        self.trailer_bytes += 2;
        if self.trailer_bytes > self.max_trailer_bytes {
            return Err(Http1Error::TrailersTooLarge);
        }
        let line = self.trailers.get(self.line_start..).unwrap_or_default();
        let Some(colon) = line.iter().position(|&b| b == b':') else {
            return Err(bad("trailer line without colon"));
        };
        let name = line.get(..colon).unwrap_or_default();
        if name.is_empty() || !name.iter().all(|&b| is_tchar(b)) {
            return Err(bad("invalid trailer field name"));
        }
        if DROPPED_TRAILERS.iter().any(|d| name.eq_ignore_ascii_case(d)) {
            self.trailers.truncate(self.line_start);
        } else {
            self.trailers.extend_from_slice(b"\r\n");
        }
        self.line_start = self.trailers.len();
        self.line_len = 0;
        Ok(())
    }
}

fn bad(reason: &'static str) -> Http1Error {
    Http1Error::BadChunk { reason }
}

fn hex_value(b: u8) -> Option<u8> {
    match b {
        b'0'..=b'9' => Some(b - b'0'),
        b'a'..=b'f' => Some(b - b'a' + 10),
        b'A'..=b'F' => Some(b - b'A' + 10),
        _ => None,
    }
}

/// Appends a chunk-size line `"{len:x}\r\n"`. The caller then writes `len`
/// data bytes and `"\r\n"`. `len` must not be 0 (that is the last chunk).
pub fn write_chunk_header(len: usize, out: &mut Vec<u8>) {
    push_hex(out, len as u64);
    out.extend_from_slice(b"\r\n");
}

/// Appends a whole chunk (size line, `data`, CRLF); nothing if `data` is empty.
pub fn write_chunk(data: &[u8], out: &mut Vec<u8>) {
    if data.is_empty() {
        return;
    }
    write_chunk_header(data.len(), out);
    out.extend_from_slice(data);
    out.extend_from_slice(b"\r\n");
}

/// Appends the last chunk: `"0\r\n"`, the trailer field lines, `"\r\n"`.
pub fn write_last_chunk(trailers: &[u8], out: &mut Vec<u8>) {
    out.extend_from_slice(b"0\r\n");
    out.extend_from_slice(trailers);
    out.extend_from_slice(b"\r\n");
}
