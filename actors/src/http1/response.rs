//! Parsing of backend response heads into a reusable [`ResponseHead`], and
//! serialization of the heads the proxy sends to clients: relayed responses
//! ([`write_downstream_response`]), 1xx ([`write_informational`]) and the
//! proxy's own error responses ([`write_error_response`]).

use std::ops::Range;

use crate::http1::{
    BodyKind, FieldKind, FieldRun, HeaderRange, Http1Error, Limits, MAX_HEADERS_CAP, Version, analyze_framing,
    collect_fields, connection_options, field_storage, first_line, map_httparse_error, push_dec, reason_phrase, slice,
    slice_str,
};

/// A parsed response head. Create once with [`ResponseHead::new`] and call
/// [`ResponseHead::parse`] for each response to reuse its buffers.
#[derive(Debug, Clone)]
pub struct ResponseHead {
    raw: Vec<u8>,
    headers: Vec<HeaderRange>,
    reason: Range<usize>,
    status: u16,
    version: Version,
    content_length: Option<u64>,
    chunked: bool,
    persistent: bool,
}

impl Default for ResponseHead {
    fn default() -> Self {
        Self::new()
    }
}

impl ResponseHead {
    /// An empty head, ready for [`ResponseHead::parse`].
    pub fn new() -> Self {
        ResponseHead {
            raw: Vec::new(),
            headers: Vec::new(),
            reason: 0..0,
            status: 0,
            version: Version::Http11,
            content_length: None,
            chunked: false,
            persistent: false,
        }
    }

    fn clear(&mut self) {
        self.raw.clear();
        self.headers.clear();
        self.reason = 0..0;
        self.status = 0;
        self.version = Version::Http11;
        self.content_length = None;
        self.chunked = false;
        self.persistent = false;
    }

    /// Parses a response head at the start of `buf`.
    ///
    /// Same contract as [`crate::http1::RequestHead::parse`]: `Ok(None)` when
    /// incomplete, `Ok(Some(n))` with the head length, errors on anything
    /// invalid or ambiguous (the proxy answers those with 502).
    pub fn parse(&mut self, buf: &[u8], limits: &Limits) -> Result<Option<usize>, Http1Error> {
        self.clear();
        let window = buf.get(..limits.max_head_bytes).unwrap_or(buf);
        // httparse would skip empty lines before the status line.
        if let Some(b'\r' | b'\n') = window.first() {
            return Err(Http1Error::Malformed { reason: "empty start line" });
        }
        let mut storage = field_storage();
        let cap = limits.max_headers.min(MAX_HEADERS_CAP);
        let fields = storage.get_mut(..cap).unwrap_or_default();
        let mut res = httparse::Response::new(&mut []);
        let len = match httparse::ParserConfig::default().parse_response_with_uninit_headers(&mut res, window, fields) {
            Ok(httparse::Status::Complete(len)) => len,
            Ok(httparse::Status::Partial) => {
                return if buf.len() >= limits.max_head_bytes { Err(Http1Error::HeadTooLarge) } else { Ok(None) };
            }
            Err(e) => return Err(map_httparse_error(e, first_line(window), false)),
        };
        let head = window.get(..len).unwrap_or_default();
        let (Some(minor), Some(code)) = (res.version, res.code) else {
            return Err(Http1Error::Malformed { reason: "incomplete status line" });
        };
        if !(100..=599).contains(&code) {
            return Err(Http1Error::Malformed { reason: "status code out of range" });
        }
        self.status = code;
        self.version = if minor == 0 { Version::Http10 } else { Version::Http11 };
        let line_len = collect_fields(head, res.headers, &mut self.headers)?;
        // "HTTP/1.1 200 reason": httparse guarantees single spaces; the
        // reason phrase may hold obs-text, so take the raw bytes.
        self.reason = if line_len > 13 { 13..line_len } else { line_len..line_len };
        self.raw.extend_from_slice(head);

        let framing = analyze_framing(&self.raw, &self.headers, false, true)?;
        self.content_length = framing.content_length;
        self.chunked = framing.chunked;
        let connection = connection_options(&self.raw, &mut self.headers);
        self.persistent = code != 101
            && match self.version {
                Version::Http11 => !connection.close,
                Version::Http10 => connection.keep_alive && !connection.close,
            };
        Ok(Some(len))
    }

    /// The status code (100..=599).
    pub fn status(&self) -> u16 {
        self.status
    }

    /// The reason phrase, or `""` if absent or not valid UTF-8 (obs-text);
    /// see [`ResponseHead::reason_bytes`].
    pub fn reason(&self) -> &str {
        slice_str(&self.raw, &self.reason)
    }

    /// The raw reason phrase bytes.
    pub fn reason_bytes(&self) -> &[u8] {
        slice(&self.raw, &self.reason)
    }

    /// The response's HTTP version.
    pub fn version(&self) -> Version {
        self.version
    }

    /// Header fields in original order and case.
    pub fn headers(&self) -> impl Iterator<Item = (&str, &[u8])> {
        self.headers.iter().map(|h| (slice_str(&self.raw, &h.name), slice(&self.raw, &h.value)))
    }

    /// The first header named `name` (case-insensitive).
    pub fn header(&self, name: &str) -> Option<&[u8]> {
        self.headers().find(|(n, _)| n.eq_ignore_ascii_case(name)).map(|(_, v)| v)
    }

    /// The validated Content-Length, if one was sent.
    pub fn content_length(&self) -> Option<u64> {
        self.content_length
    }

    /// How the body of this response is delimited (RFC 9112 6.3).
    pub fn body(&self, request_was_head: bool) -> BodyKind {
        if request_was_head || self.is_informational() || matches!(self.status, 204 | 304) {
            return BodyKind::Empty;
        }
        if self.chunked {
            return BodyKind::Chunked;
        }
        match self.content_length {
            Some(0) => BodyKind::Empty,
            Some(n) => BodyKind::Length(n),
            None => BodyKind::CloseDelimited,
        }
    }

    /// Whether the upstream connection can be reused after this response,
    /// assuming the request was not HEAD (see [`ResponseHead::keep_alive_after`]).
    pub fn keep_alive(&self) -> bool {
        self.keep_alive_after(false)
    }

    /// Whether the upstream connection can be reused after this response:
    /// persistent per RFC 9112 9.3 (HTTP/1.1 without `close`, or HTTP/1.0
    /// with `keep-alive`), not a 101, and not close-delimited.
    pub fn keep_alive_after(&self, request_was_head: bool) -> bool {
        self.persistent && self.body(request_was_head) != BodyKind::CloseDelimited
    }

    /// Whether the status is 1xx.
    pub fn is_informational(&self) -> bool {
        (100..=199).contains(&self.status)
    }
}

/// Framing to use toward the client, as decided by [`write_downstream_response`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DownstreamFraming {
    /// How the body must be framed toward the client.
    pub body: BodyKind,
    /// Whether the client connection stays open after this response.
    pub keep_alive: bool,
}

/// Appends `HTTP/1.1 {code} {reason}\r\n`.
fn push_status_line(out: &mut Vec<u8>, status: u16, reason: &[u8]) {
    out.extend_from_slice(b"HTTP/1.1 ");
    push_dec(out, u64::from(status));
    out.push(b' ');
    out.extend_from_slice(reason);
    out.extend_from_slice(b"\r\n");
}

/// Appends the end-to-end header fields of `head` (no hop-by-hop fields, no
/// Content-Length: framing is written by the caller).
fn push_end_to_end(head: &ResponseHead, out: &mut Vec<u8>) {
    let mut fields = FieldRun::new(&head.raw);
    for h in &head.headers {
        if h.hop || h.kind == FieldKind::ContentLength {
            continue;
        }
        fields.push(out, h);
    }
    fields.flush(out);
}

/// Appends to `out` the head of `head` as relayed to the client and returns
/// the framing the caller must use for the body toward the client.
///
/// Hop-by-hop fields are removed; Content-Length is re-emitted normalized
/// (also for HEAD / 304, where it describes the representation, but not for
/// 1xx / 204 where RFC 9110 forbids it). A chunked or close-delimited upstream
/// body is sent chunked to HTTP/1.1 clients and close-delimited to HTTP/1.0
/// clients. `via` appends `Via: {upstream version} {via}`.
pub fn write_downstream_response(
    head: &ResponseHead,
    request_was_head: bool,
    client_version: Version,
    client_keep_alive: bool,
    via: Option<&str>,
    out: &mut Vec<u8>,
) -> DownstreamFraming {
    let (body, framing_allows_keep_alive) = match head.body(request_was_head) {
        BodyKind::Empty => (BodyKind::Empty, true),
        BodyKind::Length(n) => (BodyKind::Length(n), true),
        BodyKind::Chunked | BodyKind::CloseDelimited => match client_version {
            Version::Http11 => (BodyKind::Chunked, true),
            Version::Http10 => (BodyKind::CloseDelimited, false),
        },
    };
    let keep_alive = client_keep_alive && framing_allows_keep_alive;

    push_status_line(out, head.status, head.reason_bytes());
    push_end_to_end(head, out);
    if let Some(v) = via {
        out.extend_from_slice(b"Via: ");
        out.extend_from_slice(head.version.via_str().as_bytes());
        out.push(b' ');
        out.extend_from_slice(v.as_bytes());
        out.extend_from_slice(b"\r\n");
    }
    let cl_allowed = !head.is_informational() && head.status != 204;
    match (head.content_length, body) {
        (Some(n), _) if cl_allowed => {
            out.extend_from_slice(b"Content-Length: ");
            push_dec(out, n);
            out.extend_from_slice(b"\r\n");
        }
        (_, BodyKind::Chunked) => out.extend_from_slice(b"Transfer-Encoding: chunked\r\n"),
        _ => {}
    }
    if !keep_alive {
        out.extend_from_slice(b"Connection: close\r\n");
    } else if client_version == Version::Http10 {
        out.extend_from_slice(b"Connection: keep-alive\r\n");
    }
    out.extend_from_slice(b"\r\n");
    DownstreamFraming { body, keep_alive }
}

/// Appends a 1xx head (status line and end-to-end fields) for relaying
/// `100 Continue` / `103 Early Hints` to HTTP/1.1 clients. Not suitable for
/// `101 Switching Protocols`, whose `Upgrade`/`Connection` it would strip.
pub fn write_informational(head: &ResponseHead, out: &mut Vec<u8>) {
    push_status_line(out, head.status, head.reason_bytes());
    push_end_to_end(head, out);
    out.extend_from_slice(b"\r\n");
}

/// Appends a complete short `text/plain` response generated by the proxy,
/// with `Connection: close` if `close`.
pub fn write_error_response(status: u16, close: bool, out: &mut Vec<u8>) {
    push_local_response(status, close, None, None, out);
}

/// Like [`write_error_response`] with `Connection: close`, the body saying
/// why after the status: `400 Bad Request: {detail}`.
pub fn write_explained_error_response(status: u16, detail: &str, out: &mut Vec<u8>) {
    push_local_response(status, true, None, Some(detail), out);
}

/// Like [`write_error_response`] with `Connection: close`, plus
/// `Retry-After: {retry_after_secs}` (for 429 and 503).
pub fn write_retry_response(status: u16, retry_after_secs: u64, out: &mut Vec<u8>) {
    push_local_response(status, true, Some(retry_after_secs), None, out);
}

fn push_local_response(status: u16, close: bool, retry_after: Option<u64>, detail: Option<&str>, out: &mut Vec<u8>) {
    let phrase = reason_phrase(status).as_bytes();
    let mut digits = 1u64;
    let mut s = status / 10;
    while s > 0 {
        digits += 1;
        s /= 10;
    }
    push_status_line(out, status, phrase);
    out.extend_from_slice(b"Content-Type: text/plain\r\nContent-Length: ");
    let explained = detail.map_or(0, |d| 2 + d.len() as u64);
    push_dec(out, digits + 1 + phrase.len() as u64 + explained + 1);
    out.extend_from_slice(b"\r\n");
    if close {
        out.extend_from_slice(b"Connection: close\r\n");
    }
    if let Some(secs) = retry_after {
        out.extend_from_slice(b"Retry-After: ");
        push_dec(out, secs);
        out.extend_from_slice(b"\r\n");
    }
    out.extend_from_slice(b"\r\n");
    push_dec(out, u64::from(status));
    out.push(b' ');
    out.extend_from_slice(phrase);
    if let Some(detail) = detail {
        out.extend_from_slice(b": ");
        out.extend_from_slice(detail.as_bytes());
    }
    out.push(b'\n');
}

#[cfg(test)]
mod tests {
    use std::mem::discriminant;

    use super::*;
    use crate::http1::test_util::XorShift;

    /// Expected outcome of parsing a complete response head.
    #[derive(Debug)]
    enum Expected {
        /// Parses with this status and reason.
        Accept(u16, &'static [u8]),
        /// Rejected with an error of this variant.
        Reject(Http1Error),
    }
    use Expected::{Accept, Reject};

    const MALFORMED: Http1Error = Http1Error::Malformed { reason: "" };
    const FRAMING: Http1Error = Http1Error::BadFraming { reason: "" };

    const CASES: &[(&str, &[u8], Expected)] = &[
        ("ok", b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\n", Accept(200, b"OK")),
        ("http/1.0", b"HTTP/1.0 404 Not Found\r\n\r\n", Accept(404, b"Not Found")),
        ("empty reason", b"HTTP/1.1 204 \r\n\r\n", Accept(204, b"")),
        ("obs-text reason", b"HTTP/1.1 200 \xc7a va\r\n\r\n", Accept(200, b"\xc7a va")),
        ("tab in reason", b"HTTP/1.1 200 O\tK\r\n\r\n", Accept(200, b"O\tK")),
        ("100", b"HTTP/1.1 100 Continue\r\n\r\n", Accept(100, b"Continue")),
        ("599", b"HTTP/1.1 599 X\r\n\r\n", Accept(599, b"X")),
        ("identical CLs", b"HTTP/1.1 200 OK\r\nContent-Length: 3\r\ncontent-length: 3, 3\r\n\r\n", Accept(200, b"OK")),
        ("obs-fold", b"HTTP/1.1 200 OK\r\nX: a\r\n b\r\n\r\n", Reject(MALFORMED)),
        ("space before colon", b"HTTP/1.1 200 OK\r\nX : a\r\n\r\n", Reject(MALFORMED)),
        ("bare LF", b"HTTP/1.1 200 OK\nX: a\n\n", Reject(MALFORMED)),
        ("bare CR", b"HTTP/1.1 200 OK\r\nX: a\rb\r\n\r\n", Reject(MALFORMED)),
        ("NUL in value", b"HTTP/1.1 200 OK\r\nX: \0\r\n\r\n", Reject(MALFORMED)),
        ("no reason, no space", b"HTTP/1.1 200\r\nContent-Length: 0\r\n\r\n", Accept(200, b"")),
        ("bare LF ends status line", b"HTTP/1.1 200 OK\nContent-Length: 0\r\n\r\n", Reject(MALFORMED)),
        ("bare LF, no headers", b"HTTP/1.1 204 No Content\n\r\n", Reject(MALFORMED)),
        ("bare LF between headers", b"HTTP/1.1 200 OK\r\nX: a\nY: b\r\n\r\n", Reject(MALFORMED)),
        ("bare LF final line", b"HTTP/1.1 200 OK\r\nX: a\r\n\n", Reject(MALFORMED)),
        ("leading bare LF", b"\nHTTP/1.1 200 OK\r\n\r\n", Reject(MALFORMED)),
        ("DEL in reason", b"HTTP/1.1 200 O\x7fK\r\n\r\n", Reject(MALFORMED)),
        ("control in reason", b"HTTP/1.1 200 O\x01K\r\n\r\n", Reject(MALFORMED)),
        ("leading CRLF", b"\r\nHTTP/1.1 200 OK\r\n\r\n", Reject(MALFORMED)),
        ("CL and TE", b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n", Reject(FRAMING)),
        ("CL invalid", b"HTTP/1.1 200 OK\r\nContent-Length: 5a\r\n\r\n", Reject(FRAMING)),
        ("CL conflicting", b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\n", Reject(FRAMING)),
        ("CL negative", b"HTTP/1.1 200 OK\r\nContent-Length: -5\r\n\r\n", Reject(FRAMING)),
        ("TE gzip", b"HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip\r\n\r\n", Reject(FRAMING)),
        ("TE gzip, chunked", b"HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip, chunked\r\n\r\n", Reject(FRAMING)),
        ("TE chunked twice", b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked, chunked\r\n\r\n", Reject(FRAMING)),
        ("status two digits", b"HTTP/1.1 20 OK\r\n\r\n", Reject(MALFORMED)),
        ("status four digits", b"HTTP/1.1 2000 OK\r\n\r\n", Reject(MALFORMED)),
        ("status 099", b"HTTP/1.1 099 X\r\n\r\n", Reject(MALFORMED)),
        ("status 600", b"HTTP/1.1 600 X\r\n\r\n", Reject(MALFORMED)),
        ("status letters", b"HTTP/1.1 2x0 X\r\n\r\n", Reject(MALFORMED)),
        ("HTTP/2.0", b"HTTP/2.0 200 OK\r\n\r\n", Reject(Http1Error::UnsupportedVersion)),
        ("garbage version", b"HTTQ/1.1 200 OK\r\n\r\n", Reject(MALFORMED)),
        ("double space", b"HTTP/1.1  200 OK\r\n\r\n", Reject(MALFORMED)),
    ];

    /// (name, input, limits, expected parse result).
    type LimitCase<'a> = (&'a str, &'a [u8], Limits, Result<Option<usize>, Http1Error>);

    #[test]
    fn parse_table() {
        let mut head = ResponseHead::new();
        for (name, input, expected) in CASES {
            let got = head.parse(input, &Limits::default());
            match (expected, got) {
                (Accept(status, reason), Ok(Some(n))) => {
                    assert_eq!(n, input.len(), "{name}: consumed");
                    assert_eq!(head.status(), *status, "{name}: status");
                    assert_eq!(head.reason_bytes(), *reason, "{name}: reason");
                }
                (Reject(want), Err(e)) => {
                    assert_eq!(discriminant(want), discriminant(&e), "{name}: got {e:?}");
                }
                (expected, got) => panic!("{name}: expected {expected:?}, got {got:?}"),
            }
        }
    }

    #[test]
    fn incomplete_and_limits() {
        let input = b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\n";
        let mut head = ResponseHead::new();
        for i in 0..input.len() {
            assert_eq!(head.parse(&input[..i], &Limits::default()), Ok(None), "prefix {i}");
        }
        let limits = |max_head_bytes| Limits { max_head_bytes, max_headers: 100 };
        let cases: &[LimitCase] = &[
            ("full", input, Limits::default(), Ok(Some(input.len()))),
            ("at limit", input, limits(input.len()), Ok(Some(input.len()))),
            ("over limit", input, limits(input.len() - 1), Err(Http1Error::HeadTooLarge)),
            ("incomplete at limit", &input[..10], limits(10), Err(Http1Error::HeadTooLarge)),
            (
                "too many headers",
                b"HTTP/1.1 200 OK\r\nA: 1\r\nB: 2\r\n\r\n",
                Limits { max_head_bytes: 100, max_headers: 1 },
                Err(Http1Error::TooManyHeaders),
            ),
        ];
        for (name, input, limits, want) in cases {
            assert_eq!(&head.parse(input, limits), want, "{name}");
        }
    }

    const FRAMING_CASES: &[(&str, &[u8], bool /*HEAD*/, BodyKind, bool /*keep-alive*/)] = &[
        ("200 CL", b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\n", false, BodyKind::Length(10), true),
        ("200 CL 0", b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n", false, BodyKind::Empty, true),
        ("200 chunked", b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n", false, BodyKind::Chunked, true),
        ("200 no framing", b"HTTP/1.1 200 OK\r\n\r\n", false, BodyKind::CloseDelimited, false),
        ("200 no framing HEAD", b"HTTP/1.1 200 OK\r\n\r\n", true, BodyKind::Empty, true),
        ("200 CL HEAD", b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\n", true, BodyKind::Empty, true),
        ("200 chunked HEAD", b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n", true, BodyKind::Empty, true),
        ("204", b"HTTP/1.1 204 No Content\r\n\r\n", false, BodyKind::Empty, true),
        ("204 with CL", b"HTTP/1.1 204 No Content\r\nContent-Length: 10\r\n\r\n", false, BodyKind::Empty, true),
        ("304 with CL", b"HTTP/1.1 304 Not Modified\r\nContent-Length: 10\r\n\r\n", false, BodyKind::Empty, true),
        ("100", b"HTTP/1.1 100 Continue\r\n\r\n", false, BodyKind::Empty, true),
        ("103", b"HTTP/1.1 103 Early Hints\r\nLink: </a>\r\n\r\n", false, BodyKind::Empty, true),
        ("101", b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n\r\n", false, BodyKind::Empty, false),
        (
            "close",
            b"HTTP/1.1 200 OK\r\nContent-Length: 1\r\nConnection: Close\r\n\r\n",
            false,
            BodyKind::Length(1),
            false,
        ),
        (
            "close in list",
            b"HTTP/1.1 200 OK\r\nContent-Length: 1\r\nConnection: x, close\r\n\r\n",
            false,
            BodyKind::Length(1),
            false,
        ),
        ("1.0 CL", b"HTTP/1.0 200 OK\r\nContent-Length: 1\r\n\r\n", false, BodyKind::Length(1), false),
        (
            "1.0 CL keep-alive",
            b"HTTP/1.0 200 OK\r\nContent-Length: 1\r\nConnection: keep-alive\r\n\r\n",
            false,
            BodyKind::Length(1),
            true,
        ),
        ("1.0 close delimited", b"HTTP/1.0 200 OK\r\n\r\n", false, BodyKind::CloseDelimited, false),
        (
            "404 chunked",
            b"HTTP/1.1 404 Not Found\r\nTransfer-Encoding: CHUNKED\r\n\r\n",
            false,
            BodyKind::Chunked,
            true,
        ),
    ];

    #[test]
    fn framing_table() {
        let mut head = ResponseHead::new();
        for (name, input, was_head, body, keep_alive) in FRAMING_CASES {
            assert_eq!(head.parse(input, &Limits::default()), Ok(Some(input.len())), "{name}: parse");
            assert_eq!(head.body(*was_head), *body, "{name}: body");
            assert_eq!(head.keep_alive_after(*was_head), *keep_alive, "{name}: keep_alive");
            assert_eq!(head.is_informational(), head.status() < 200, "{name}: informational");
        }
    }

    /// Upstream response heads used by the downstream matrix.
    const UP_LENGTH: &[u8] = b"HTTP/1.1 200 OK\r\nServer: up\r\nContent-Length: 5\r\nX-A: 1\r\n\r\n";
    const UP_CHUNKED: &[u8] = b"HTTP/1.1 200 OK\r\nServer: up\r\nTransfer-Encoding: chunked\r\nX-A: 1\r\n\r\n";
    const UP_CLOSE: &[u8] = b"HTTP/1.0 200 OK\r\nServer: up\r\nX-A: 1\r\n\r\n";
    const UP_204: &[u8] = b"HTTP/1.1 204 No Content\r\nServer: up\r\nContent-Length: 0\r\n\r\n";
    const UP_304: &[u8] = b"HTTP/1.1 304 Not Modified\r\nETag: \"x\"\r\nContent-Length: 99\r\n\r\n";
    const UP_EMPTY: &[u8] = b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n";

    const V10: Version = Version::Http10;
    const V11: Version = Version::Http11;

    /// (name, upstream head, request was HEAD, client version, client keep-alive,
    /// expected output, expected body framing, expected keep-alive).
    type DownstreamCase = (&'static str, &'static [u8], bool, Version, bool, &'static [u8], BodyKind, bool);

    const DOWNSTREAM_CASES: &[DownstreamCase] = &[
        (
            "length 1.1 ka",
            UP_LENGTH,
            false,
            V11,
            true,
            b"HTTP/1.1 200 OK\r\nServer: up\r\nX-A: 1\r\nContent-Length: 5\r\n\r\n",
            BodyKind::Length(5),
            true,
        ),
        (
            "length 1.1 close",
            UP_LENGTH,
            false,
            V11,
            false,
            b"HTTP/1.1 200 OK\r\nServer: up\r\nX-A: 1\r\nContent-Length: 5\r\nConnection: close\r\n\r\n",
            BodyKind::Length(5),
            false,
        ),
        (
            "length 1.0 ka",
            UP_LENGTH,
            false,
            V10,
            true,
            b"HTTP/1.1 200 OK\r\nServer: up\r\nX-A: 1\r\nContent-Length: 5\r\nConnection: keep-alive\r\n\r\n",
            BodyKind::Length(5),
            true,
        ),
        (
            "length 1.0 close",
            UP_LENGTH,
            false,
            V10,
            false,
            b"HTTP/1.1 200 OK\r\nServer: up\r\nX-A: 1\r\nContent-Length: 5\r\nConnection: close\r\n\r\n",
            BodyKind::Length(5),
            false,
        ),
        (
            "chunked 1.1 ka",
            UP_CHUNKED,
            false,
            V11,
            true,
            b"HTTP/1.1 200 OK\r\nServer: up\r\nX-A: 1\r\nTransfer-Encoding: chunked\r\n\r\n",
            BodyKind::Chunked,
            true,
        ),
        (
            "chunked 1.1 close",
            UP_CHUNKED,
            false,
            V11,
            false,
            b"HTTP/1.1 200 OK\r\nServer: up\r\nX-A: 1\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n",
            BodyKind::Chunked,
            false,
        ),
        (
            "chunked 1.0 ka",
            UP_CHUNKED,
            false,
            V10,
            true,
            b"HTTP/1.1 200 OK\r\nServer: up\r\nX-A: 1\r\nConnection: close\r\n\r\n",
            BodyKind::CloseDelimited,
            false,
        ),
        (
            "chunked 1.0 close",
            UP_CHUNKED,
            false,
            V10,
            false,
            b"HTTP/1.1 200 OK\r\nServer: up\r\nX-A: 1\r\nConnection: close\r\n\r\n",
            BodyKind::CloseDelimited,
            false,
        ),
        (
            "close-delimited 1.1 ka",
            UP_CLOSE,
            false,
            V11,
            true,
            b"HTTP/1.1 200 OK\r\nServer: up\r\nX-A: 1\r\nTransfer-Encoding: chunked\r\n\r\n",
            BodyKind::Chunked,
            true,
        ),
        (
            "close-delimited 1.1 close",
            UP_CLOSE,
            false,
            V11,
            false,
            b"HTTP/1.1 200 OK\r\nServer: up\r\nX-A: 1\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n",
            BodyKind::Chunked,
            false,
        ),
        (
            "close-delimited 1.0 ka",
            UP_CLOSE,
            false,
            V10,
            true,
            b"HTTP/1.1 200 OK\r\nServer: up\r\nX-A: 1\r\nConnection: close\r\n\r\n",
            BodyKind::CloseDelimited,
            false,
        ),
        (
            "close-delimited 1.0 close",
            UP_CLOSE,
            false,
            V10,
            false,
            b"HTTP/1.1 200 OK\r\nServer: up\r\nX-A: 1\r\nConnection: close\r\n\r\n",
            BodyKind::CloseDelimited,
            false,
        ),
        (
            "empty 1.1 ka",
            UP_EMPTY,
            false,
            V11,
            true,
            b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n",
            BodyKind::Empty,
            true,
        ),
        (
            "empty 1.0 ka",
            UP_EMPTY,
            false,
            V10,
            true,
            b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\nConnection: keep-alive\r\n\r\n",
            BodyKind::Empty,
            true,
        ),
        (
            "204 drops CL",
            UP_204,
            false,
            V11,
            true,
            b"HTTP/1.1 204 No Content\r\nServer: up\r\n\r\n",
            BodyKind::Empty,
            true,
        ),
        (
            "304 keeps CL",
            UP_304,
            false,
            V11,
            true,
            b"HTTP/1.1 304 Not Modified\r\nETag: \"x\"\r\nContent-Length: 99\r\n\r\n",
            BodyKind::Empty,
            true,
        ),
        (
            "HEAD keeps CL",
            UP_LENGTH,
            true,
            V11,
            true,
            b"HTTP/1.1 200 OK\r\nServer: up\r\nX-A: 1\r\nContent-Length: 5\r\n\r\n",
            BodyKind::Empty,
            true,
        ),
        (
            "HEAD chunked 1.0",
            UP_CHUNKED,
            true,
            V10,
            true,
            b"HTTP/1.1 200 OK\r\nServer: up\r\nX-A: 1\r\nConnection: keep-alive\r\n\r\n",
            BodyKind::Empty,
            true,
        ),
        (
            "HEAD close-delimited 1.1",
            UP_CLOSE,
            true,
            V11,
            true,
            b"HTTP/1.1 200 OK\r\nServer: up\r\nX-A: 1\r\n\r\n",
            BodyKind::Empty,
            true,
        ),
    ];

    #[test]
    fn downstream_matrix() {
        let mut head = ResponseHead::new();
        let mut out = Vec::new();
        for (name, up, was_head, version, ka, want, body, keep_alive) in DOWNSTREAM_CASES {
            assert_eq!(head.parse(up, &Limits::default()), Ok(Some(up.len())), "{name}: parse");
            out.clear();
            let framing = write_downstream_response(&head, *was_head, *version, *ka, None, &mut out);
            assert_eq!(String::from_utf8_lossy(&out), String::from_utf8_lossy(want), "{name}: head");
            assert_eq!(framing, DownstreamFraming { body: *body, keep_alive: *keep_alive }, "{name}: framing");
        }
    }

    /// (name, upstream head, via, expected output).
    type HopCase = (&'static str, &'static [u8], Option<&'static str>, &'static [u8]);

    const HOP_CASES: &[HopCase] = &[
        ("hop-by-hop removed",
            b"HTTP/1.1 200 OK\r\nConnection: keep-alive, X-Hop\r\nKeep-Alive: timeout=5\r\nX-Hop: 1\r\nX-hop: 2\r\nUpgrade: h2c\r\nProxy-Connection: x\r\nProxy-Authenticate: y\r\nTE: trailers\r\nTrailer: X-Sum\r\nX-End: e\r\nContent-Length: 2\r\n\r\n",
            None,
            b"HTTP/1.1 200 OK\r\nTrailer: X-Sum\r\nX-End: e\r\nContent-Length: 2\r\n\r\n"),
        ("connection cannot remove content-length",
            b"HTTP/1.1 200 OK\r\nConnection: Content-Length\r\nContent-Length: 2\r\n\r\n",
            None,
            b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\n"),
        ("CL normalized",
            b"HTTP/1.1 200 OK\r\nContent-Length: 002, 2\r\ncontent-length: 2\r\n\r\n",
            None,
            b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\n"),
        ("via appended after existing",
            b"HTTP/1.1 200 OK\r\nVia: 1.1 cdn\r\nContent-Length: 2\r\n\r\n",
            Some("terminus"),
            b"HTTP/1.1 200 OK\r\nVia: 1.1 cdn\r\nVia: 1.1 terminus\r\nContent-Length: 2\r\n\r\n"),
        ("via from 1.0 upstream",
            b"HTTP/1.0 200 OK\r\nContent-Length: 2\r\nConnection: keep-alive\r\n\r\n",
            Some("terminus"),
            b"HTTP/1.1 200 OK\r\nVia: 1.0 terminus\r\nContent-Length: 2\r\n\r\n"),
        ("odd spacing written as name: value, dropped fields not copied",
            b"HTTP/1.1 200 OK\r\nA:1\r\nB:  2 \r\nC: 3\r\nD: 4\r\nConnection: close\r\nE: 5\r\nF:\r\nG: 7 \r\nContent-Length: 2\r\n\r\n",
            None,
            b"HTTP/1.1 200 OK\r\nA: 1\r\nB: 2\r\nC: 3\r\nD: 4\r\nE: 5\r\nF: \r\nG: 7\r\nContent-Length: 2\r\n\r\n"),
        ("case, order, obs-text kept",
            b"HTTP/1.1 201 Cr\xe9\xe9\r\nset-COOKIE: a=1\r\nX: \xff\tz\r\nSet-Cookie: b=2\r\nContent-Length: 2\r\n\r\n",
            None,
            b"HTTP/1.1 201 Cr\xe9\xe9\r\nset-COOKIE: a=1\r\nX: \xff\tz\r\nSet-Cookie: b=2\r\nContent-Length: 2\r\n\r\n"),
    ];

    #[test]
    fn downstream_headers() {
        let mut head = ResponseHead::new();
        for (name, up, via, want) in HOP_CASES {
            assert_eq!(head.parse(up, &Limits::default()), Ok(Some(up.len())), "{name}: parse");
            let mut out = Vec::new();
            write_downstream_response(&head, false, Version::Http11, true, *via, &mut out);
            assert_eq!(String::from_utf8_lossy(&out), String::from_utf8_lossy(want), "{name}");
        }
    }

    #[test]
    fn informational() {
        const CASES: &[(&str, &[u8], &[u8])] = &[
            ("100", b"HTTP/1.1 100 Continue\r\n\r\n", b"HTTP/1.1 100 Continue\r\n\r\n"),
            (
                "103",
                b"HTTP/1.1 103 Early Hints\r\nLink: </s.css>; rel=preload\r\nConnection: x\r\nX: 1\r\n\r\n",
                b"HTTP/1.1 103 Early Hints\r\nLink: </s.css>; rel=preload\r\n\r\n",
            ),
        ];
        let mut head = ResponseHead::new();
        for (name, up, want) in CASES {
            assert_eq!(head.parse(up, &Limits::default()), Ok(Some(up.len())), "{name}: parse");
            let mut out = Vec::new();
            write_informational(&head, &mut out);
            assert_eq!(String::from_utf8_lossy(&out), String::from_utf8_lossy(want), "{name}");
        }
    }

    #[test]
    fn error_responses() {
        const CASES: &[(&str, u16, bool, &[u8])] = &[
            ("400 close", 400, true,
                b"HTTP/1.1 400 Bad Request\r\nContent-Type: text/plain\r\nContent-Length: 16\r\nConnection: close\r\n\r\n400 Bad Request\n"),
            ("502 keep", 502, false,
                b"HTTP/1.1 502 Bad Gateway\r\nContent-Type: text/plain\r\nContent-Length: 16\r\n\r\n502 Bad Gateway\n"),
            ("431", 431, true,
                b"HTTP/1.1 431 Request Header Fields Too Large\r\nContent-Type: text/plain\r\nContent-Length: 36\r\nConnection: close\r\n\r\n431 Request Header Fields Too Large\n"),
            ("unknown", 599, false,
                b"HTTP/1.1 599 Unknown\r\nContent-Type: text/plain\r\nContent-Length: 12\r\n\r\n599 Unknown\n"),
            ("odd status", 7, false,
                b"HTTP/1.1 7 Unknown\r\nContent-Type: text/plain\r\nContent-Length: 10\r\n\r\n7 Unknown\n"),
        ];
        for (name, status, close, want) in CASES {
            let mut out = b"prefix".to_vec();
            write_error_response(*status, *close, &mut out);
            assert_eq!(String::from_utf8_lossy(&out[6..]), String::from_utf8_lossy(want), "{name}");
            // The generated response must parse back with a matching body length.
            let mut head = ResponseHead::new();
            if (100..=599).contains(status) {
                let n = head.parse(&out[6..], &Limits::default()).ok().flatten().unwrap_or(0);
                assert_eq!(head.body(false), BodyKind::Length((out.len() - 6 - n) as u64), "{name}: length");
            }
        }
    }

    #[test]
    fn explained_error_response() {
        let mut out = Vec::new();
        write_explained_error_response(400, "this port speaks HTTPS", &mut out);
        let want = b"HTTP/1.1 400 Bad Request\r\nContent-Type: text/plain\r\nContent-Length: 40\r\n\
            Connection: close\r\n\r\n400 Bad Request: this port speaks HTTPS\n";
        assert_eq!(String::from_utf8_lossy(&out), String::from_utf8_lossy(want));
        let mut head = ResponseHead::new();
        let n = head.parse(&out, &Limits::default()).ok().flatten().unwrap_or(0);
        assert_eq!(head.body(false), BodyKind::Length((out.len() - n) as u64), "length");
    }

    #[test]
    fn retry_response() {
        let mut out = Vec::new();
        write_retry_response(429, 3, &mut out);
        let want = b"HTTP/1.1 429 Too Many Requests\r\nContent-Type: text/plain\r\nContent-Length: 22\r\n\
            Connection: close\r\nRetry-After: 3\r\n\r\n429 Too Many Requests\n";
        assert_eq!(String::from_utf8_lossy(&out), String::from_utf8_lossy(want));
    }

    #[test]
    fn fuzz_no_panic() {
        const ALPHABET: &[u8] =
            b"HTTP/1.1 200 OK\r\n:Content-Length Transfer-Encoding chunked,0123456789 \tConnection close";
        let mut rng = XorShift(0xdead_beef_cafe_f00d);
        let mut head = ResponseHead::new();
        let mut buf = Vec::new();
        let mut out = Vec::new();
        for i in 0..10_000u32 {
            rng.fill(&mut buf, ALPHABET);
            if i.is_multiple_of(2) {
                buf.splice(0..0, b"HTTP/1.1 200 OK\r\n".iter().copied());
                buf.extend_from_slice(b"\r\n\r\n");
            }
            if let Ok(Some(_)) = head.parse(&buf, &Limits { max_head_bytes: 200, max_headers: 8 }) {
                out.clear();
                let _ = head.body(i.is_multiple_of(3));
                let _ = head.keep_alive();
                write_downstream_response(&head, i.is_multiple_of(3), V10, true, Some("t"), &mut out);
                write_informational(&head, &mut out);
            }
        }
    }
}
