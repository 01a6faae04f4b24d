//! Sans-I/O HTTP/1.1 codec for Terminus (RFC 9110 / RFC 9112).
//!
//! Bytes go in, typed values come out; nothing here does I/O, allocates per
//! request in steady state, or logs. Parsing is deliberately strict: anything
//! ambiguous about message framing is rejected so that it can never reach a
//! backend (request smuggling).
//!
//! - [`RequestHead`] parses client request heads into a reusable struct.
//! - [`ResponseHead`] parses backend response heads into a reusable struct.
//! - [`ChunkedDecoder`] incrementally decodes `Transfer-Encoding: chunked`.
//! - [`write_upstream_request`] and [`write_downstream_response`] serialize
//!   the heads forwarded to the backend and the client.

use std::mem::MaybeUninit;
use std::ops::Range;

mod chunked;
mod error;
mod forward;
mod request;
mod response;

pub use chunked::{ChunkedDecoder, Decoded, write_chunk, write_chunk_header, write_last_chunk};
pub use error::Http1Error;
pub use forward::{Forwarding, write_upstream_request};
pub use request::RequestHead;
pub use response::{
    DownstreamFraming, ResponseHead, write_downstream_response, write_error_response, write_explained_error_response,
    write_informational, write_retry_response,
};

/// Size limits for parsing heads.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// Maximum size of a head in bytes, including the final empty line.
    pub max_head_bytes: usize,
    /// Maximum number of header fields (capped at 128 internally).
    pub max_headers: usize,
}

impl Default for Limits {
    /// 16 KiB heads, 100 header fields.
    fn default() -> Self {
        Limits { max_head_bytes: 16 * 1024, max_headers: 100 }
    }
}

/// HTTP protocol version of a message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Version {
    /// HTTP/1.0.
    Http10,
    /// HTTP/1.1.
    Http11,
}

impl Version {
    /// The version as written on the wire, e.g. `"HTTP/1.1"`.
    pub fn as_str(self) -> &'static str {
        match self {
            Version::Http10 => "HTTP/1.0",
            Version::Http11 => "HTTP/1.1",
        }
    }

    /// The `received-protocol` form used in `Via`, e.g. `"1.1"`.
    pub(crate) fn via_str(self) -> &'static str {
        match self {
            Version::Http10 => "1.0",
            Version::Http11 => "1.1",
        }
    }
}

/// How a message body is delimited.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BodyKind {
    /// No body at all.
    Empty,
    /// Exactly this many bytes (never 0: that is [`BodyKind::Empty`]).
    Length(u64),
    /// `Transfer-Encoding: chunked`.
    Chunked,
    /// The body extends until the connection is closed (responses only).
    CloseDelimited,
}

/// The standard reason phrase for `status`, or `"Unknown"`.
pub fn reason_phrase(status: u16) -> &'static str {
    match status {
        100 => "Continue",
        101 => "Switching Protocols",
        103 => "Early Hints",
        200 => "OK",
        204 => "No Content",
        304 => "Not Modified",
        400 => "Bad Request",
        404 => "Not Found",
        408 => "Request Timeout",
        413 => "Content Too Large",
        414 => "URI Too Long",
        429 => "Too Many Requests",
        431 => "Request Header Fields Too Large",
        500 => "Internal Server Error",
        501 => "Not Implemented",
        502 => "Bad Gateway",
        503 => "Service Unavailable",
        504 => "Gateway Timeout",
        505 => "HTTP Version Not Supported",
        _ => "Unknown",
    }
}

/// Hard cap on the number of header fields parsed (size of the stack array).
pub(crate) const MAX_HEADERS_CAP: usize = 128;

/// What the codec needs to know about a header field's name. Decided once
/// per field while parsing, so that later passes (validation, hop-by-hop
/// removal, forwarding) compare a tag instead of bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum FieldKind {
    /// Any other name.
    Other,
    /// `Host`.
    Host,
    /// `Content-Length`.
    ContentLength,
    /// `Transfer-Encoding`.
    TransferEncoding,
    /// `Connection`.
    Connection,
    /// `Keep-Alive`.
    KeepAlive,
    /// `TE`.
    Te,
    /// `Upgrade`.
    Upgrade,
    /// Any `Proxy-*` name (`Proxy-Connection`, `Proxy-Authorization`, ...).
    ProxyPrefixed,
    /// `Expect`.
    Expect,
    /// `X-Forwarded-For`.
    XForwardedFor,
    /// `X-Forwarded-Proto`.
    XForwardedProto,
    /// `X-Forwarded-Host`.
    XForwardedHost,
    /// `Forwarded`.
    Forwarded,
}

impl FieldKind {
    /// Classifies a field name (case-insensitive). Length and first letter
    /// leave at most one candidate, so most names cost no comparison at all.
    pub(crate) fn of(name: &[u8]) -> FieldKind {
        let is = |want: &[u8]| is_name(name, want);
        // `| 0x20` lowercases a letter, and maps no other byte onto one.
        let first = name.first().map_or(0, |&b| b | 0x20);
        match (name.len(), first) {
            (2, b't') if is(b"te") => FieldKind::Te,
            (4, b'h') if is(b"host") => FieldKind::Host,
            (6, b'e') if is(b"expect") => FieldKind::Expect,
            (7, b'u') if is(b"upgrade") => FieldKind::Upgrade,
            (9, b'f') if is(b"forwarded") => FieldKind::Forwarded,
            (10, b'c') if is(b"connection") => FieldKind::Connection,
            (10, b'k') if is(b"keep-alive") => FieldKind::KeepAlive,
            (14, b'c') if is(b"content-length") => FieldKind::ContentLength,
            (15, b'x') if is(b"x-forwarded-for") => FieldKind::XForwardedFor,
            (16, b'x') if is(b"x-forwarded-host") => FieldKind::XForwardedHost,
            (17, b't') if is(b"transfer-encoding") => FieldKind::TransferEncoding,
            (17, b'x') if is(b"x-forwarded-proto") => FieldKind::XForwardedProto,
            (6.., b'p') if name.get(..6).is_some_and(|p| p.eq_ignore_ascii_case(b"proxy-")) => FieldKind::ProxyPrefixed,
            _ => FieldKind::Other,
        }
    }

    /// Fields that are never forwarded, whatever `Connection` says (framing
    /// is re-emitted separately). `Proxy-Connection` is one of the `Proxy-*`.
    fn is_hop_by_hop(self) -> bool {
        matches!(
            self,
            FieldKind::Connection
                | FieldKind::KeepAlive
                | FieldKind::Te
                | FieldKind::TransferEncoding
                | FieldKind::Upgrade
                | FieldKind::ProxyPrefixed
        )
    }

    /// Fields a `Connection` option may not remove: framing and routing,
    /// which a peer could otherwise strip to desynchronize the backend.
    fn is_protected(self) -> bool {
        matches!(self, FieldKind::Host | FieldKind::ContentLength)
    }
}

/// Whether `name` is `lower` (lowercase letters and `-`) in any ASCII case,
/// compared eight bytes at a time: in `lower`, only letters have bit 0x40,
/// so `(b & 0x40) >> 1` is the case bit to ignore at each letter and no
/// other byte. (The bytes of a name longer than a word are compared in
/// words, the last one overlapping the one before.)
fn is_name(name: &[u8], lower: &[u8]) -> bool {
    const CASE: u64 = 0x4040_4040_4040_4040;
    if name.len() != lower.len() {
        return false;
    }
    if name.len() < 8 {
        return name.iter().zip(lower).all(|(&a, &b)| a | ((b & 0x40) >> 1) == b);
    }
    let word =
        |s: &[u8], at: usize| s.get(at..at + 8).map_or(0, |w| u64::from_le_bytes(w.try_into().unwrap_or_default()));
    let same = |at: usize| {
        let b = word(lower, at);
        word(name, at) | ((b & CASE) >> 1) == b
    };
    let last = name.len() - 8;
    (0..last).step_by(8).all(same) && same(last)
}

/// Byte ranges of one header field inside an owned head buffer.
#[derive(Debug, Clone)]
pub(crate) struct HeaderRange {
    /// Range of the field name.
    pub(crate) name: Range<usize>,
    /// Range of the field value (OWS already trimmed by httparse).
    pub(crate) value: Range<usize>,
    /// The name's classification.
    pub(crate) kind: FieldKind,
    /// Hop-by-hop for this message: a fixed hop-by-hop name, any `Proxy-*`,
    /// or a name listed in `Connection` (except the protected fields).
    /// Final only once [`connection_options`] has run.
    pub(crate) hop: bool,
}

/// Framing information extracted from a head's header fields.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct Framing {
    /// The (single, validated) Content-Length value, if any.
    pub(crate) content_length: Option<u64>,
    /// A valid `Transfer-Encoding: chunked` was present.
    pub(crate) chunked: bool,
}

/// Returns the bytes of `r` inside `raw`, or an empty slice if out of range.
pub(crate) fn slice<'a>(raw: &'a [u8], r: &Range<usize>) -> &'a [u8] {
    raw.get(r.clone()).unwrap_or_default()
}

/// Returns `r` inside `raw` as `&str`, or `""` if out of range or not UTF-8.
pub(crate) fn slice_str<'a>(raw: &'a [u8], r: &Range<usize>) -> &'a str {
    std::str::from_utf8(slice(raw, r)).unwrap_or_default()
}

/// Offset of `sub` inside `base`, when `sub` points into `base`.
pub(crate) fn offset_in(base: &[u8], sub: &[u8]) -> Option<Range<usize>> {
    let start = (sub.as_ptr() as usize).checked_sub(base.as_ptr() as usize)?;
    let end = start.checked_add(sub.len())?;
    (end <= base.len()).then_some(start..end)
}

/// An uninitialized field array for httparse: initializing 128 fields would
/// cost a 4 KiB memset per head.
pub(crate) type FieldStorage<'b> = [MaybeUninit<httparse::Header<'b>>; MAX_HEADERS_CAP];

/// A fresh [`FieldStorage`].
pub(crate) const fn field_storage<'b>() -> FieldStorage<'b> {
    [const { MaybeUninit::uninit() }; MAX_HEADERS_CAP]
}

/// Records httparse's fields as classified ranges relative to `head`, the
/// complete head from its start line through the final empty line, and
/// returns the length of the start line (without its CRLF).
///
/// httparse also ends lines at a bare LF, which some backends read
/// differently: this rejects any line not ended by CRLF. It needs no scan of
/// its own: every LF of a head httparse accepted ends a line, a CR can only
/// precede an LF, and each line ends just before the next field's name, or
/// at the final empty line.
pub(crate) fn collect_fields(
    head: &[u8],
    parsed: &[httparse::Header<'_>],
    out: &mut Vec<HeaderRange>,
) -> Result<usize, Http1Error> {
    let bare_lf = Http1Error::Malformed { reason: "bare LF" };
    if !head.ends_with(b"\r\n\r\n") {
        return Err(bare_lf);
    }
    out.clear();
    out.reserve(parsed.len());
    for h in parsed {
        let name = offset_in(head, h.name.as_bytes());
        let value = offset_in(head, h.value);
        let (Some(name), Some(value)) = (name, value) else {
            return Err(Http1Error::Malformed { reason: "header outside head" });
        };
        if name.start.checked_sub(2).and_then(|cr| head.get(cr)) != Some(&b'\r') {
            return Err(bare_lf);
        }
        let kind = FieldKind::of(h.name.as_bytes());
        out.push(HeaderRange { name, value, kind, hop: kind.is_hop_by_hop() });
    }
    let next_line = out.first().map_or(head.len() - 2, |h| h.name.start);
    Ok(next_line - 2)
}

/// Maps an httparse error; `start_line` is the first line of the head, used
/// to tell an unsupported but well-formed version (505) from garbage (400).
pub(crate) fn map_httparse_error(e: httparse::Error, start_line: &[u8], is_request: bool) -> Http1Error {
    match e {
        httparse::Error::TooManyHeaders => Http1Error::TooManyHeaders,
        httparse::Error::Version => {
            let mut parts = start_line.split(|&b| b == b' ');
            let version = if is_request {
                let v = parts.nth(2);
                if parts.next().is_some() { None } else { v }
            } else {
                parts.next()
            };
            match version {
                Some(v) if looks_like_http_version(v) => Http1Error::UnsupportedVersion,
                _ => Http1Error::Malformed { reason: "invalid HTTP version" },
            }
        }
        httparse::Error::HeaderName => Http1Error::Malformed { reason: "invalid header name" },
        httparse::Error::HeaderValue => Http1Error::Malformed { reason: "invalid header value" },
        httparse::Error::NewLine => Http1Error::Malformed { reason: "invalid line ending" },
        httparse::Error::Status => Http1Error::Malformed { reason: "invalid status code" },
        httparse::Error::Token => Http1Error::Malformed { reason: "invalid token in start line" },
    }
}

/// `HTTP/` DIGIT `.` DIGIT, exactly.
fn looks_like_http_version(v: &[u8]) -> bool {
    matches!(v, [b'H', b'T', b'T', b'P', b'/', a, b'.', b]
        if a.is_ascii_digit() && b.is_ascii_digit())
}

/// The first line of a head (without CRLF).
pub(crate) fn first_line(head: &[u8]) -> &[u8] {
    let end = head.windows(2).position(|w| w == b"\r\n").unwrap_or(head.len());
    head.get(..end).unwrap_or_default()
}

/// Trims optional whitespace (SP / HTAB) on both sides.
pub(crate) fn trim_ows(mut v: &[u8]) -> &[u8] {
    while let [b' ' | b'\t', rest @ ..] = v {
        v = rest;
    }
    while let [rest @ .., b' ' | b'\t'] = v {
        v = rest;
    }
    v
}

/// Non-empty comma-separated list elements of a field value, OWS-trimmed.
pub(crate) fn list_elements(v: &[u8]) -> impl Iterator<Item = &[u8]> {
    v.split(|&b| b == b',').map(trim_ows).filter(|e| !e.is_empty())
}

/// A set of bytes as a 256-entry table: one load per byte tested, where a
/// chain of comparisons costs a branch each.
pub(crate) type ByteClass = [bool; 256];

/// ASCII letters and digits plus the bytes of `extra`.
pub(crate) const fn alphanumeric_and(extra: &[u8]) -> ByteClass {
    let mut class = [false; 256];
    let mut b = 0;
    while b < 256 {
        class[b] = (b as u8).is_ascii_alphanumeric();
        b += 1;
    }
    let mut i = 0;
    while i < extra.len() {
        class[extra[i] as usize] = true;
        i += 1;
    }
    class
}

/// Whether `b` is in `class`.
#[inline]
pub(crate) fn in_class(class: &ByteClass, b: u8) -> bool {
    class.get(usize::from(b)).copied().unwrap_or(false)
}

/// `tchar` from RFC 9110 5.6.2.
const TCHAR: ByteClass = alphanumeric_and(b"!#$%&'*+-.^_`|~");

/// `tchar` from RFC 9110 5.6.2.
#[inline]
pub(crate) fn is_tchar(b: u8) -> bool {
    in_class(&TCHAR, b)
}

/// Parses 1*DIGIT into a u64, rejecting anything else and overflow.
pub(crate) fn parse_dec(v: &[u8]) -> Option<u64> {
    if v.is_empty() {
        return None;
    }
    v.iter().try_fold(0u64, |acc, &b| {
        if b.is_ascii_digit() { acc.checked_mul(10)?.checked_add(u64::from(b - b'0')) } else { None }
    })
}

/// What the `Connection` fields of a message say.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct ConnectionOptions {
    /// `close` is listed.
    pub(crate) close: bool,
    /// `keep-alive` is listed.
    pub(crate) keep_alive: bool,
}

/// Reads the `Connection` fields among `headers` and marks the fields they
/// list as hop-by-hop, except the protected ones (see [`HeaderRange::hop`]).
pub(crate) fn connection_options(raw: &[u8], headers: &mut [HeaderRange]) -> ConnectionOptions {
    let mut opts = ConnectionOptions::default();
    for i in 0..headers.len() {
        let value = match headers.get(i) {
            Some(h) if h.kind == FieldKind::Connection => slice(raw, &h.value),
            _ => continue,
        };
        for option in list_elements(value) {
            opts.close |= is_name(option, b"close");
            opts.keep_alive |= is_name(option, b"keep-alive");
            // Fields of a fixed hop-by-hop or protected kind are settled already.
            let kind = FieldKind::of(option);
            if kind.is_hop_by_hop() || kind.is_protected() {
                continue;
            }
            for h in headers.iter_mut() {
                if !h.hop && slice(raw, &h.name).eq_ignore_ascii_case(option) {
                    h.hop = true;
                }
            }
        }
    }
    opts
}

/// Validates Content-Length / Transfer-Encoding. `te_allowed` is false for
/// HTTP/1.0 requests; `is_request` selects 501 vs 400 for unsupported codings.
pub(crate) fn analyze_framing(
    raw: &[u8],
    headers: &[HeaderRange],
    is_request: bool,
    te_allowed: bool,
) -> Result<Framing, Http1Error> {
    let mut content_length: Option<u64> = None;
    let mut has_cl = false;
    let mut has_te = false;
    let mut last_chunked = false;
    let mut chunked_count = 0usize;
    let mut other_coding = false;
    for h in headers {
        let value = slice(raw, &h.value);
        if h.kind == FieldKind::ContentLength {
            has_cl = true;
            for el in value.split(|&b| b == b',') {
                let n = parse_dec(trim_ows(el)).ok_or(Http1Error::BadFraming { reason: "invalid Content-Length" })?;
                match content_length {
                    Some(prev) if prev != n => {
                        return Err(Http1Error::BadFraming { reason: "conflicting Content-Length" });
                    }
                    _ => content_length = Some(n),
                }
            }
        } else if h.kind == FieldKind::TransferEncoding {
            has_te = true;
            for el in value.split(|&b| b == b',') {
                let el = trim_ows(el);
                if el.is_empty() {
                    return Err(Http1Error::BadFraming { reason: "empty transfer coding" });
                }
                if el.eq_ignore_ascii_case(b"chunked") {
                    chunked_count += 1;
                    last_chunked = true;
                } else {
                    other_coding = true;
                    last_chunked = false;
                }
            }
        }
    }
    if !has_te {
        return Ok(Framing { content_length, chunked: false });
    }
    if has_cl {
        return Err(Http1Error::BadFraming { reason: "both Content-Length and Transfer-Encoding" });
    }
    if !te_allowed {
        return Err(Http1Error::BadFraming { reason: "Transfer-Encoding in HTTP/1.0 request" });
    }
    if !last_chunked {
        return Err(Http1Error::BadFraming { reason: "final transfer coding is not chunked" });
    }
    if other_coding || chunked_count > 1 {
        let reason = "unsupported transfer coding";
        return Err(if is_request { Http1Error::NotImplemented { reason } } else { Http1Error::BadFraming { reason } });
    }
    Ok(Framing { content_length: None, chunked: true })
}

/// Appends `n` in decimal.
pub(crate) fn push_dec(out: &mut Vec<u8>, n: u64) {
    let mut buf = [0u8; 20];
    let mut i = buf.len();
    let mut n = n;
    loop {
        i -= 1;
        if let Some(slot) = buf.get_mut(i) {
            *slot = b'0' + (n % 10) as u8;
        }
        n /= 10;
        if n == 0 || i == 0 {
            break;
        }
    }
    out.extend_from_slice(buf.get(i..).unwrap_or_default());
}

/// Appends `n` in lowercase hexadecimal.
pub(crate) fn push_hex(out: &mut Vec<u8>, n: u64) {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut buf = [0u8; 16];
    let mut i = buf.len();
    let mut n = n;
    loop {
        i -= 1;
        if let (Some(slot), Some(&d)) = (buf.get_mut(i), DIGITS.get((n & 0xf) as usize)) {
            *slot = d;
        }
        n >>= 4;
        if n == 0 || i == 0 {
            break;
        }
    }
    out.extend_from_slice(buf.get(i..).unwrap_or_default());
}

/// Appends `name: value\r\n`.
pub(crate) fn push_field(out: &mut Vec<u8>, name: &[u8], value: &[u8]) {
    out.extend_from_slice(name);
    out.extend_from_slice(b": ");
    out.extend_from_slice(value);
    out.extend_from_slice(b"\r\n");
}

/// Copies fields of a parsed head to the output unchanged, with one copy
/// for each run of neighbouring fields already written as `name: value\r\n`
/// (a relayed head is mostly such a run). Any other spacing is written in
/// that form by [`push_field`]; bytes between copied fields (a dropped
/// field) are never copied. [`FieldRun::flush`] before writing anything else.
pub(crate) struct FieldRun<'a> {
    raw: &'a [u8],
    run: Range<usize>,
}

impl<'a> FieldRun<'a> {
    pub(crate) fn new(raw: &'a [u8]) -> Self {
        Self { raw, run: 0..0 }
    }

    /// Appends the field `h` (through the run when it can join it).
    pub(crate) fn push(&mut self, out: &mut Vec<u8>, h: &HeaderRange) {
        let (name, value) = (&h.name, &h.value);
        let line_end = value.end + 2;
        let canonical = value.start == name.end + 2
            && line_end <= self.raw.len()
            && self.raw[name.end..name.end + 2] == *b": "
            && self.raw[value.end..line_end] == *b"\r\n";
        if !canonical {
            self.flush(out);
            push_field(out, slice(self.raw, name), slice(self.raw, value));
        } else if self.run.end == name.start && !self.run.is_empty() {
            self.run.end = line_end;
        } else {
            self.flush(out);
            self.run = name.start..line_end;
        }
    }

    /// Writes the fields pushed so far.
    pub(crate) fn flush(&mut self, out: &mut Vec<u8>) {
        if !self.run.is_empty() {
            out.extend_from_slice(slice(self.raw, &self.run));
            self.run = 0..0;
        }
    }
}

#[cfg(test)]
pub(crate) mod test_util {
    //! Helpers shared by the test modules.

    /// A tiny xorshift64* PRNG, deterministic, for fuzz-ish tests.
    pub(crate) struct XorShift(pub(crate) u64);

    impl XorShift {
        /// Next pseudo-random 64-bit value.
        pub(crate) fn next_u64(&mut self) -> u64 {
            let mut x = self.0;
            x ^= x >> 12;
            x ^= x << 25;
            x ^= x >> 27;
            self.0 = x;
            x.wrapping_mul(0x2545_f491_4f6c_dd1d)
        }

        /// Fills `out` with a random string biased towards HTTP-ish bytes.
        pub(crate) fn fill(&mut self, out: &mut Vec<u8>, alphabet: &[u8]) {
            out.clear();
            let len = (self.next_u64() % 200) as usize;
            for _ in 0..len {
                let r = self.next_u64();
                let b = if r.is_multiple_of(4) {
                    (r >> 8) as u8
                } else {
                    alphabet[((r >> 8) % alphabet.len() as u64) as usize]
                };
                out.push(b);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_match_in_any_case_and_nothing_else() {
        for lower in ["te", "host", "proxy-", "upgrade", "keep-alive", "content-length", "x-forwarded-proto"] {
            let b = lower.as_bytes();
            assert!(is_name(b, b), "{lower}");
            assert!(is_name(lower.to_ascii_uppercase().as_bytes(), b), "{lower} upper");
            let mixed: Vec<u8> =
                b.iter().enumerate().map(|(i, c)| if i % 3 == 0 { c.to_ascii_uppercase() } else { *c }).collect();
            assert!(is_name(&mixed, b), "{lower} mixed");
            // Every single-byte change is told apart, the case bit of a
            // `-` (a CR) and of a letter (a control byte or a symbol) too.
            for i in 0..b.len() {
                for x in 0..=255u8 {
                    let mut other = b.to_vec();
                    other[i] = x;
                    let same = x == b[i] || (b[i].is_ascii_lowercase() && x == b[i].to_ascii_uppercase());
                    assert_eq!(is_name(&other, b), same, "{lower} with {x:#04x} at {i}");
                }
            }
            assert!(!is_name(&b[1..], b) && !is_name(&[b, b"x"].concat(), b), "{lower} length");
        }
    }

    #[test]
    fn field_runs_copy_neighbours_once_and_normalize_the_rest() {
        let raw = b"X\r\nA: 1\r\nB: 2\r\nskip: s\r\nC: 3\r\nD:4\r\nE: 5\r\n\r\n";
        let mut parsed = [httparse::EMPTY_HEADER; 8];
        let (_, parsed) = match httparse::parse_headers(&raw[3..], &mut parsed) {
            Ok(httparse::Status::Complete(r)) => r,
            other => panic!("{other:?}"),
        };
        let fields: Vec<HeaderRange> = parsed
            .iter()
            .map(|h| HeaderRange {
                name: offset_in(raw, h.name.as_bytes()).unwrap(),
                value: offset_in(raw, h.value).unwrap(),
                kind: FieldKind::Other,
                hop: h.name == "skip",
            })
            .collect();
        let mut out = b"start\r\n".to_vec();
        let mut run = FieldRun::new(raw);
        for h in fields.iter().filter(|h| !h.hop) {
            run.push(&mut out, h);
        }
        run.flush(&mut out);
        assert_eq!(String::from_utf8_lossy(&out), "start\r\nA: 1\r\nB: 2\r\nC: 3\r\nD: 4\r\nE: 5\r\n");
        // A and B were one run: B's line follows A's in `raw`.
        let mut one = Vec::new();
        let mut run = FieldRun::new(raw);
        run.push(&mut one, &fields[0]);
        run.push(&mut one, &fields[1]);
        assert!(one.is_empty(), "nothing written before the flush");
        run.flush(&mut one);
        assert_eq!(one, b"A: 1\r\nB: 2\r\n");
    }

    #[test]
    fn reason_phrases() {
        const CASES: &[(u16, &str)] = &[
            (100, "Continue"),
            (101, "Switching Protocols"),
            (103, "Early Hints"),
            (200, "OK"),
            (204, "No Content"),
            (304, "Not Modified"),
            (400, "Bad Request"),
            (404, "Not Found"),
            (408, "Request Timeout"),
            (413, "Content Too Large"),
            (414, "URI Too Long"),
            (429, "Too Many Requests"),
            (431, "Request Header Fields Too Large"),
            (500, "Internal Server Error"),
            (501, "Not Implemented"),
            (502, "Bad Gateway"),
            (503, "Service Unavailable"),
            (504, "Gateway Timeout"),
            (505, "HTTP Version Not Supported"),
            (299, "Unknown"),
            (0, "Unknown"),
        ];
        for &(code, phrase) in CASES {
            assert_eq!(reason_phrase(code), phrase, "status {code}");
        }
    }

    #[test]
    fn byte_classes() {
        let tchar = |b: u8| {
            b.is_ascii_alphanumeric()
                || matches!(
                    b,
                    b'!' | b'#'
                        | b'$'
                        | b'%'
                        | b'&'
                        | b'\''
                        | b'*'
                        | b'+'
                        | b'-'
                        | b'.'
                        | b'^'
                        | b'_'
                        | b'`'
                        | b'|'
                        | b'~'
                )
        };
        for b in 0..=u8::MAX {
            assert_eq!(is_tchar(b), tchar(b), "{b:#04x}");
        }
    }

    #[test]
    fn field_kinds() {
        const CASES: &[(&str, FieldKind, bool)] = &[
            ("Host", FieldKind::Host, false),
            ("HOST", FieldKind::Host, false),
            ("hosts", FieldKind::Other, false),
            ("te", FieldKind::Te, true),
            ("tE", FieldKind::Te, true),
            ("ta", FieldKind::Other, false),
            ("Expect", FieldKind::Expect, false),
            ("Upgrade", FieldKind::Upgrade, true),
            ("Forwarded", FieldKind::Forwarded, false),
            ("Connection", FieldKind::Connection, true),
            ("Keep-Alive", FieldKind::KeepAlive, true),
            ("Content-Length", FieldKind::ContentLength, false),
            ("Content_Length", FieldKind::Other, false),
            ("Content-Lengthy", FieldKind::Other, false),
            ("X-Forwarded-For", FieldKind::XForwardedFor, false),
            ("x-forwarded-host", FieldKind::XForwardedHost, false),
            ("X-FORWARDED-PROTO", FieldKind::XForwardedProto, false),
            ("Transfer-Encoding", FieldKind::TransferEncoding, true),
            ("Proxy-Connection", FieldKind::ProxyPrefixed, true),
            ("proxy-", FieldKind::ProxyPrefixed, true),
            ("PROXY-Authorization", FieldKind::ProxyPrefixed, true),
            ("proxy", FieldKind::Other, false),
            ("proxyx", FieldKind::Other, false),
            ("", FieldKind::Other, false),
        ];
        for &(name, kind, hop) in CASES {
            assert_eq!(FieldKind::of(name.as_bytes()), kind, "{name:?}");
            assert_eq!(kind.is_hop_by_hop(), hop, "{name:?}: hop-by-hop");
        }
    }

    #[test]
    fn decimal_and_hex() {
        const CASES: &[(&str, u64, &str, &str)] = &[
            ("zero", 0, "0", "0"),
            ("one", 1, "1", "1"),
            ("ten", 10, "10", "a"),
            ("big", 1_234_567_890, "1234567890", "499602d2"),
            ("max", u64::MAX, "18446744073709551615", "ffffffffffffffff"),
        ];
        for &(name, n, dec, hex) in CASES {
            let mut out = Vec::new();
            push_dec(&mut out, n);
            assert_eq!(out, dec.as_bytes(), "{name}: dec");
            out.clear();
            push_hex(&mut out, n);
            assert_eq!(out, hex.as_bytes(), "{name}: hex");
        }
    }

    #[test]
    fn parse_decimal() {
        const CASES: &[(&str, &[u8], Option<u64>)] = &[
            ("simple", b"42", Some(42)),
            ("leading zeros", b"007", Some(7)),
            ("empty", b"", None),
            ("plus", b"+5", None),
            ("minus", b"-1", None),
            ("hex", b"0x10", None),
            ("space", b"5 5", None),
            ("max", b"18446744073709551615", Some(u64::MAX)),
            ("overflow", b"18446744073709551616", None),
        ];
        for &(name, input, expected) in CASES {
            assert_eq!(parse_dec(input), expected, "{name}");
        }
    }
}
