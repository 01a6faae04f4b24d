//! Parsing of backend response heads into a reusable [`ResponseHead`], and
//! serialization of the heads the proxy sends to clients: relayed responses
//! ([`write_downstream_response`]), 1xx ([`write_informational`]) and the
//! proxy's own error responses ([`write_error_response`]).

use std::ops::Range;

use crate::http1::{
    analyze_framing, collect_headers, connection_has, first_line, is_hop_by_hop, map_httparse_error, push_dec,
    push_field, reason_phrase, scan_head, slice, slice_str, BodyKind, HeaderRange, Http1Error, Limits, Version,
    MAX_HEADERS_CAP,
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
        let Some(end) = scan_head(buf, 0)? else {
            return if buf.len() >= limits.max_head_bytes { Err(Http1Error::HeadTooLarge) } else { Ok(None) };
        };
        if end > limits.max_head_bytes {
            return Err(Http1Error::HeadTooLarge);
        }
        let head = buf.get(..end).unwrap_or_default();
        let mut storage = [httparse::EMPTY_HEADER; MAX_HEADERS_CAP];
        let cap = limits.max_headers.min(MAX_HEADERS_CAP);
        let fields = storage.get_mut(..cap).unwrap_or_default();
        let mut res = httparse::Response::new(fields);
        match res.parse(head) {
            Ok(httparse::Status::Complete(n)) if n == head.len() => {}
            Ok(_) => return Err(Http1Error::Malformed { reason: "inconsistent head end" }),
            Err(e) => return Err(map_httparse_error(e, first_line(head), false)),
        }
        let (Some(minor), Some(code)) = (res.version, res.code) else {
            return Err(Http1Error::Malformed { reason: "incomplete status line" });
        };
        if !(100..=599).contains(&code) {
            return Err(Http1Error::Malformed { reason: "status code out of range" });
        }
        self.status = code;
        self.version = if minor == 0 { Version::Http10 } else { Version::Http11 };
        // "HTTP/1.1 200 reason": httparse guarantees single spaces; the
        // reason phrase may hold obs-text, so take the raw bytes.
        let line_len = first_line(head).len();
        self.reason = if line_len > 13 { 13..line_len } else { line_len..line_len };
        collect_headers(head, res.headers, &mut self.headers)?;
        self.raw.extend_from_slice(head);

        let framing = analyze_framing(&self.raw, &self.headers, false, true)?;
        self.content_length = framing.content_length;
        self.chunked = framing.chunked;
        self.persistent = code != 101
            && match self.version {
                Version::Http11 => !connection_has(&self.raw, &self.headers, b"close"),
                Version::Http10 => {
                    connection_has(&self.raw, &self.headers, b"keep-alive")
                        && !connection_has(&self.raw, &self.headers, b"close")
                }
            };
        Ok(Some(end))
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
    for h in &head.headers {
        let name = slice(&head.raw, &h.name);
        if is_hop_by_hop(name, &head.raw, &head.headers) || name.eq_ignore_ascii_case(b"content-length") {
            continue;
        }
        push_field(out, name, slice(&head.raw, &h.value));
    }
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
    let phrase = reason_phrase(status).as_bytes();
    let mut digits = 1u64;
    let mut s = status / 10;
    while s > 0 {
        digits += 1;
        s /= 10;
    }
    push_status_line(out, status, phrase);
    out.extend_from_slice(b"Content-Type: text/plain\r\nContent-Length: ");
    push_dec(out, digits + 1 + phrase.len() as u64 + 1);
    out.extend_from_slice(b"\r\n");
    if close {
        out.extend_from_slice(b"Connection: close\r\n");
    }
    out.extend_from_slice(b"\r\n");
    push_dec(out, u64::from(status));
    out.push(b' ');
    out.extend_from_slice(phrase);
    out.push(b'\n');
}
