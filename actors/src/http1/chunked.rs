//! Streaming decoder and encoder helpers for the chunked transfer coding
//! (RFC 9112 section 7.1).
//!
//! [`ChunkedDecoder`] is an incremental state machine: it can be fed any
//! split of the encoded body and yields ranges of the input that hold chunk
//! payload, never copying data. Chunk extensions are validated and dropped;
//! trailer fields are validated and kept (minus framing/hop-by-hop fields).

use std::ops::Range;

use crate::http1::{Http1Error, is_tchar, push_hex};

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
    /// Sum of the chunk sizes announced so far.
    total: u64,
    /// Largest accepted sum of chunk sizes (kept across [`ChunkedDecoder::reset`]).
    max_body: u64,
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
            total: 0,
            max_body: u64::MAX,
        }
    }

    /// Limits the decoded body to `max` bytes (`None`: no limit). A chunk
    /// whose size line would take the body past it fails with
    /// [`Http1Error::BodyTooLarge`] before any of its data is returned.
    /// The limit stays in force across [`ChunkedDecoder::reset`].
    pub fn set_max_body(&mut self, max: Option<u64>) {
        self.max_body = max.unwrap_or(u64::MAX);
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
        self.total = 0;
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
                    self.total = self.total.saturating_add(self.size);
                    if self.total > self.max_body {
                        return Err(Http1Error::BodyTooLarge);
                    }
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::http1::test_util::XorShift;

    /// Decodes `input` fed in pieces of `split` bytes; returns the payload,
    /// the number of bytes consumed and whether Done was reached.
    fn run(dec: &mut ChunkedDecoder, input: &[u8], split: usize) -> Result<(Vec<u8>, usize, bool), Http1Error> {
        let mut data = Vec::new();
        let mut consumed = 0;
        for piece in input.chunks(split.max(1)) {
            let mut rest = piece;
            loop {
                let (n, d) = dec.decode(rest)?;
                consumed += n;
                match d {
                    Decoded::Data(r) => {
                        assert!(!r.is_empty(), "empty data range");
                        data.extend_from_slice(&rest[r]);
                    }
                    Decoded::NeedMore => {
                        assert_eq!(n, rest.len(), "NeedMore must consume everything");
                        break;
                    }
                    Decoded::Done => return Ok((data, consumed, true)),
                }
                rest = &rest[n..];
            }
        }
        Ok((data, consumed, false))
    }

    const SPLITS: &[usize] = &[1, 2, 3, 5, 7, 13, usize::MAX];

    /// (name, encoded body, decoded data, kept trailers).
    type BodyCase = (&'static str, &'static [u8], &'static [u8], &'static [u8]);

    const VALID: &[BodyCase] = &[
        ("simple", b"5\r\nhello\r\n0\r\n\r\n", b"hello", b""),
        ("empty body", b"0\r\n\r\n", b"", b""),
        ("two chunks", b"3\r\nabc\r\n4\r\ndefg\r\n0\r\n\r\n", b"abcdefg", b""),
        ("uppercase hex", b"A\r\n0123456789\r\n0\r\n\r\n", b"0123456789", b""),
        ("lowercase hex", b"a\r\n0123456789\r\n0\r\n\r\n", b"0123456789", b""),
        ("leading zeros", b"0005\r\nhello\r\n0000\r\n\r\n", b"hello", b""),
        ("16 digits", b"000000000000000a\r\n0123456789\r\n0\r\n\r\n", b"0123456789", b""),
        ("extension", b"5;name=value\r\nhello\r\n0\r\n\r\n", b"hello", b""),
        ("extensions quoted", b"5;a=\"x;y \\\" z\";b\r\nhello\r\n0;last=1\r\n\r\n", b"hello", b""),
        ("extension with tab", b"5;\ta=b\r\nhello\r\n0\r\n\r\n", b"hello", b""),
        ("crlf inside data", b"4\r\n\r\n\r\n\r\n0\r\n\r\n", b"\r\n\r\n", b""),
        ("binary data", b"4\r\n\0\xff\n\r\r\n0\r\n\r\n", b"\0\xff\n\r", b""),
        (
            "trailers",
            b"5\r\nhello\r\n0\r\nX-Sum: abc\r\nx-t:\t1 \xe9\r\n\r\n",
            b"hello",
            b"X-Sum: abc\r\nx-t:\t1 \xe9\r\n",
        ),
        (
            "framing trailers dropped",
            b"0\r\nContent-Length: 5\r\nX: y\r\nTransfer-Encoding: chunked\r\nHOST: h\r\n\r\n",
            b"",
            b"X: y\r\n",
        ),
    ];

    #[test]
    fn valid_bodies_at_every_split() {
        let mut dec = ChunkedDecoder::new(1024);
        for (name, input, data, trailers) in VALID {
            for &split in SPLITS {
                dec.reset();
                let got = run(&mut dec, input, split);
                assert_eq!(got, Ok((data.to_vec(), input.len(), true)), "{name}: split {split}");
                assert_eq!(dec.trailers(), *trailers, "{name}: split {split}: trailers");
                assert!(dec.is_done(), "{name}");
            }
        }
    }

    #[test]
    fn body_limit_table() {
        /// (name, limit, body, ok: Some(payload) or None for BodyTooLarge).
        const CASES: &[(&str, Option<u64>, &[u8], Option<&[u8]>)] = &[
            ("no limit", None, b"5\r\nhello\r\n0\r\n\r\n", Some(b"hello")),
            ("exactly at limit", Some(5), b"3\r\nhel\r\n2\r\nlo\r\n0\r\n\r\n", Some(b"hello")),
            ("one over in second chunk", Some(4), b"3\r\nhel\r\n2\r\nlo\r\n0\r\n\r\n", None),
            ("huge announced chunk", Some(1 << 20), b"ffffffffffffffff\r\n", None),
            ("zero limit, empty body", Some(0), b"0\r\n\r\n", Some(b"")),
            ("zero limit, one byte", Some(0), b"1\r\na\r\n0\r\n\r\n", None),
        ];
        let mut dec = ChunkedDecoder::new(64);
        for (name, limit, body, want) in CASES {
            dec.set_max_body(*limit);
            for &split in SPLITS {
                dec.reset();
                let got = run(&mut dec, body, split);
                match want {
                    Some(data) => assert_eq!(got, Ok((data.to_vec(), body.len(), true)), "{name}: split {split}"),
                    None => assert_eq!(got, Err(Http1Error::BodyTooLarge), "{name}: split {split}"),
                }
            }
        }
    }

    #[test]
    fn stops_at_end_of_body() {
        let mut dec = ChunkedDecoder::new(64);
        for (name, input, data, _) in VALID {
            dec.reset();
            let mut buf = input.to_vec();
            buf.extend_from_slice(b"GET / HTTP/1.1\r\n");
            let got = run(&mut dec, &buf, usize::MAX);
            assert_eq!(got, Ok((data.to_vec(), input.len(), true)), "{name}");
            assert_eq!(dec.decode(b"more"), Ok((0, Decoded::Done)), "{name}: after done");
            assert_eq!(dec.decode(b""), Ok((0, Decoded::Done)), "{name}: after done, empty");
        }
    }

    const BAD: Http1Error = Http1Error::BadChunk { reason: "" };

    const INVALID: &[(&str, &[u8], usize /*max trailer bytes*/, Http1Error)] = &[
        ("empty size", b"\r\n", 64, BAD),
        ("space before size", b" 5\r\nhello\r\n0\r\n\r\n", 64, BAD),
        ("space after size", b"5 \r\nhello\r\n0\r\n\r\n", 64, BAD),
        ("tab after size", b"5\t\r\nhello\r\n0\r\n\r\n", 64, BAD),
        ("space before semicolon", b"5 ;a\r\nhello\r\n0\r\n\r\n", 64, BAD),
        ("plus sign", b"+5\r\nhello\r\n0\r\n\r\n", 64, BAD),
        ("minus sign", b"-5\r\nhello\r\n0\r\n\r\n", 64, BAD),
        ("0x prefix", b"0x5\r\nhello\r\n0\r\n\r\n", 64, BAD),
        ("non hex", b"g\r\n", 64, BAD),
        ("garbage after size", b"5x\r\nhello\r\n0\r\n\r\n", 64, BAD),
        ("semicolon without size", b";a\r\n", 64, BAD),
        ("17 digits", b"00000000000000005\r\nhello\r\n0\r\n\r\n", 64, BAD),
        ("u64 overflow", b"1ffffffffffffffff\r\n", 64, BAD),
        ("bare LF after size", b"5\nhello\r\n0\r\n\r\n", 64, BAD),
        ("bare CR after size", b"5\rhello\r\n0\r\n\r\n", 64, BAD),
        ("missing CRLF after data", b"5\r\nhelloX\r\n0\r\n\r\n", 64, BAD),
        ("LF only after data", b"5\r\nhello\n0\r\n\r\n", 64, BAD),
        ("CR only after data", b"5\r\nhello\r0\r\n\r\n", 64, BAD),
        ("data longer than size", b"3\r\nhello\r\n0\r\n\r\n", 64, BAD),
        ("bare LF in extension", b"5;a\nhello\r\n0\r\n\r\n", 64, BAD),
        ("bare LF in quoted extension", b"5;a=\"x\ny\"\r\nhello\r\n0\r\n\r\n", 64, BAD),
        ("control byte in extension", b"5;a\x01\r\nhello\r\n0\r\n\r\n", 64, BAD),
        ("DEL in extension", b"5;a\x7f\r\nhello\r\n0\r\n\r\n", 64, BAD),
        ("bare CR in extension", b"5;a\rb\r\nhello\r\n0\r\n\r\n", 64, BAD),
        ("trailer bare LF", b"0\r\nX: y\n\r\n", 64, BAD),
        ("final bare LF", b"0\r\n\n", 64, BAD),
        ("final bare CR", b"0\r\n\rX", 64, BAD),
        ("trailer bare CR", b"0\r\nX: y\rZ\r\n\r\n", 64, BAD),
        ("trailer obs-fold", b"0\r\nX: y\r\n z\r\n\r\n", 64, BAD),
        ("trailer leading tab", b"0\r\n\tX: y\r\n\r\n", 64, BAD),
        ("trailer no colon", b"0\r\nXY\r\n\r\n", 64, BAD),
        ("trailer empty name", b"0\r\n: y\r\n\r\n", 64, BAD),
        ("trailer space before colon", b"0\r\nX : y\r\n\r\n", 64, BAD),
        ("trailer bad name char", b"0\r\nX(y): z\r\n\r\n", 64, BAD),
        ("trailer NUL", b"0\r\nX: a\0b\r\n\r\n", 64, BAD),
        ("trailers too large", b"0\r\nX-Long: 123456789\r\n\r\n", 10, Http1Error::TrailersTooLarge),
        ("trailers too large by CRLF", b"0\r\nX: 12345\r\n\r\n", 9, Http1Error::TrailersTooLarge),
    ];

    #[test]
    fn invalid_bodies() {
        for (name, input, max_trailers, want) in INVALID {
            for &split in SPLITS {
                let mut dec = ChunkedDecoder::new(*max_trailers);
                match run(&mut dec, input, split) {
                    Err(e) => {
                        assert_eq!(
                            std::mem::discriminant(&e),
                            std::mem::discriminant(want),
                            "{name}: split {split}: {e:?}"
                        );
                        assert_eq!(e.status(), 400, "{name}");
                    }
                    Ok(got) => panic!("{name}: split {split}: expected {want:?}, got {got:?}"),
                }
            }
        }
    }

    #[test]
    fn trailer_limit_boundary() {
        // "X: 12345\r\n" is exactly 10 bytes.
        const CASES: &[(&str, usize, bool)] =
            &[("at limit", 10, true), ("below", 9, false), ("zero, no trailers", 0, false)];
        for &(name, max, ok) in CASES {
            let mut dec = ChunkedDecoder::new(max);
            let got = run(&mut dec, b"0\r\nX: 12345\r\n\r\n", 1);
            assert_eq!(got.is_ok(), ok, "{name}: {got:?}");
        }
        let mut dec = ChunkedDecoder::new(0);
        assert_eq!(run(&mut dec, b"0\r\n\r\n", 1), Ok((Vec::new(), 5, true)), "no trailers with max 0");
    }

    #[test]
    fn extension_line_bounded() {
        let cases: &[(&str, usize, bool)] = &[("fits", MAX_CHUNK_LINE - 2, true), ("too long", MAX_CHUNK_LINE, false)];
        for &(name, ext_len, ok) in cases {
            let mut input = b"5;".to_vec();
            input.extend(std::iter::repeat_n(b'a', ext_len));
            input.extend_from_slice(b"\r\nhello\r\n0\r\n\r\n");
            let mut dec = ChunkedDecoder::new(0);
            let got = run(&mut dec, &input, 100);
            assert_eq!(got.is_ok(), ok, "{name}: {got:?}");
        }
    }

    #[test]
    fn large_chunk_streams_without_buffering() {
        let mut dec = ChunkedDecoder::new(0);
        // A 2^60-byte chunk: Data ranges cover whatever input is available.
        assert_eq!(dec.decode(b"1000000000000000\r\n"), Ok((18, Decoded::NeedMore)));
        assert_eq!(dec.decode(&[7u8; 100]), Ok((100, Decoded::Data(0..100))));
        assert_eq!(dec.decode(b""), Ok((0, Decoded::NeedMore)));
    }

    #[test]
    fn encoder() {
        /// (name, data, trailers, encoded).
        const CASES: &[BodyCase] = &[
            ("one byte", b"x", b"", b"1\r\nx\r\n0\r\n\r\n"),
            ("sixteen bytes", b"0123456789abcdef", b"", b"10\r\n0123456789abcdef\r\n0\r\n\r\n"),
            ("empty chunk skipped", b"", b"X: y\r\n", b"0\r\nX: y\r\n\r\n"),
        ];
        for (name, data, trailers, want) in CASES {
            let mut out = Vec::new();
            write_chunk(data, &mut out);
            write_last_chunk(trailers, &mut out);
            assert_eq!(out, *want, "{name}");
            // Round trip through the decoder.
            let mut dec = ChunkedDecoder::new(64);
            assert_eq!(run(&mut dec, &out, 1), Ok((data.to_vec(), out.len(), true)), "{name}: round trip");
            assert_eq!(dec.trailers(), *trailers, "{name}: trailers");
        }
        let mut out = Vec::new();
        write_chunk_header(255, &mut out);
        assert_eq!(out, b"ff\r\n");
    }

    #[test]
    fn fuzz_no_panic() {
        const ALPHABET: &[u8] = b"0123456789abcdefABCDEF;=\"\\\r\n \tX:-";
        let mut rng = XorShift(0x1234_5678_9abc_def1);
        let mut buf = Vec::new();
        let mut dec = ChunkedDecoder::new(32);
        for _ in 0..10_000 {
            rng.fill(&mut buf, ALPHABET);
            dec.reset();
            let split = (rng.next_u64() % 8) as usize + 1;
            let _ = run(&mut dec, &buf, split);
        }
    }
}
