//! Parsing of client request heads into a reusable [`RequestHead`].
//!
//! The head bytes are copied into the struct (reusing its capacity) and all
//! accessors return slices of that copy, so steady-state parsing does not
//! allocate. Validation is strict (RFC 9112) to rule out request smuggling.

use std::ops::Range;

use crate::http1::{
    BodyKind, ByteClass, FieldKind, HeaderRange, Http1Error, Limits, MAX_HEADERS_CAP, Version, alphanumeric_and,
    analyze_framing, collect_fields, connection_options, field_storage, first_line, in_class, list_elements,
    map_httparse_error, offset_in, slice, slice_str,
};

/// A parsed request head. Create once with [`RequestHead::new`] and call
/// [`RequestHead::parse`] for each request to reuse its buffers.
#[derive(Debug, Clone)]
pub struct RequestHead {
    raw: Vec<u8>,
    headers: Vec<HeaderRange>,
    method: Range<usize>,
    target: Range<usize>,
    path: Range<usize>,
    host: Option<Range<usize>>,
    version: Version,
    body: BodyKind,
    content_length: Option<u64>,
    absolute_form: bool,
    keep_alive: bool,
    expects_continue: bool,
    wants_upgrade: bool,
    is_head: bool,
}

impl Default for RequestHead {
    fn default() -> Self {
        Self::new()
    }
}

impl RequestHead {
    /// An empty head, ready for [`RequestHead::parse`].
    pub fn new() -> Self {
        RequestHead {
            raw: Vec::new(),
            headers: Vec::new(),
            method: 0..0,
            target: 0..0,
            path: 0..0,
            host: None,
            version: Version::Http11,
            body: BodyKind::Empty,
            content_length: None,
            absolute_form: false,
            keep_alive: false,
            expects_continue: false,
            wants_upgrade: false,
            is_head: false,
        }
    }

    fn clear(&mut self) {
        self.raw.clear();
        self.headers.clear();
        self.method = 0..0;
        self.target = 0..0;
        self.path = 0..0;
        self.host = None;
        self.version = Version::Http11;
        self.body = BodyKind::Empty;
        self.content_length = None;
        self.absolute_form = false;
        self.keep_alive = false;
        self.expects_continue = false;
        self.wants_upgrade = false;
        self.is_head = false;
    }

    /// Parses a request head at the start of `buf`.
    ///
    /// Returns `Ok(None)` if more bytes are needed, or `Ok(Some(n))` when a
    /// head of `n` bytes (including leading empty lines and the final CRLF
    /// CRLF) was parsed and copied into `self`. Fails with
    /// [`Http1Error::HeadTooLarge`] once `buf` holds `max_head_bytes` without
    /// a complete head. An empty `Host` value is rejected as malformed even
    /// where RFC 9110 would tolerate it (we always need an authority).
    /// On error the struct's contents are unspecified.
    pub fn parse(&mut self, buf: &[u8], limits: &Limits) -> Result<Option<usize>, Http1Error> {
        self.clear();
        let incomplete = || {
            if buf.len() >= limits.max_head_bytes { Err(Http1Error::HeadTooLarge) } else { Ok(None) }
        };
        // Never look past the limit, however much the caller buffered.
        let window = buf.get(..limits.max_head_bytes).unwrap_or(buf);
        // RFC 9112 2.2: ignore empty lines received before the request-line.
        let mut start = 0;
        loop {
            match (window.get(start), window.get(start + 1)) {
                (Some(b'\r'), Some(b'\n')) => start += 2,
                (Some(b'\r'), None) | (None, _) => return incomplete(),
                // httparse would skip a bare LF line too.
                (Some(b'\n'), _) => return Err(Http1Error::Malformed { reason: "bare LF" }),
                _ => break,
            }
        }
        let rest = window.get(start..).unwrap_or_default();
        let mut storage = field_storage();
        let cap = limits.max_headers.min(MAX_HEADERS_CAP);
        let fields = storage.get_mut(..cap).unwrap_or_default();
        let mut req = httparse::Request::new(&mut []);
        let len = match req.parse_with_uninit_headers(rest, fields) {
            Ok(httparse::Status::Complete(len)) => len,
            Ok(httparse::Status::Partial) => return incomplete(),
            Err(e) => return Err(map_httparse_error(e, first_line(rest), true)),
        };
        let head = rest.get(..len).unwrap_or_default();
        let (Some(method), Some(target), Some(minor)) = (req.method, req.path, req.version) else {
            return Err(Http1Error::Malformed { reason: "incomplete request line" });
        };
        let bad = Http1Error::Malformed { reason: "request line" };
        self.method = offset_in(head, method.as_bytes()).ok_or(bad.clone())?;
        self.target = offset_in(head, target.as_bytes()).ok_or(bad)?;
        self.version = if minor == 0 { Version::Http10 } else { Version::Http11 };
        collect_fields(head, req.headers, &mut self.headers)?;
        self.raw.extend_from_slice(head);
        self.validate()?;
        Ok(Some(start + len))
    }

    fn validate(&mut self) -> Result<(), Http1Error> {
        let method = slice(&self.raw, &self.method);
        if method == b"CONNECT" {
            return Err(Http1Error::NotImplemented { reason: "CONNECT method" });
        }
        self.is_head = method == b"HEAD";
        let is_options = method == b"OPTIONS";
        self.classify_target(is_options)?;

        // One pass over the fields; errors keep their precedence below.
        let http11 = self.version == Version::Http11;
        let mut disguised = false;
        let mut host_error = None;
        let mut host_header: Option<Range<usize>> = None;
        for h in &self.headers {
            match h.kind {
                FieldKind::Host if host_error.is_none() => {
                    if host_header.is_some() {
                        host_error = Some(Http1Error::DuplicateHost);
                    } else if !valid_authority(slice(&self.raw, &h.value)) {
                        host_error = Some(Http1Error::Malformed { reason: "invalid Host header" });
                    }
                    host_header = Some(h.value.clone());
                }
                // RFC 9110 10.1.1: ignore 100-continue from HTTP/1.0 clients.
                FieldKind::Expect if http11 => {
                    let v = slice(&self.raw, &h.value);
                    if list_elements(v).any(|e| e.eq_ignore_ascii_case(b"100-continue")) {
                        self.expects_continue = true;
                    }
                }
                FieldKind::Upgrade => self.wants_upgrade = true,
                FieldKind::Other => disguised |= is_disguised_framing_name(slice(&self.raw, &h.name)),
                _ => {}
            }
        }
        // A backend that folds `_` into `-` (CGI, some frameworks) would read
        // `Content_Length` as framing the proxy never saw: reject such names.
        if disguised {
            return Err(Http1Error::Malformed { reason: "underscore variant of a framing header" });
        }
        // Host: exactly one for HTTP/1.1, at most one for HTTP/1.0.
        if let Some(e) = host_error {
            return Err(e);
        }
        match (&self.host, &host_header) {
            (Some(authority), Some(header)) => {
                let a = slice(&self.raw, authority);
                if !a.eq_ignore_ascii_case(slice(&self.raw, header)) {
                    return Err(Http1Error::HostMismatch);
                }
            }
            (Some(_), None) if self.version == Version::Http11 => {
                return Err(Http1Error::MissingHost);
            }
            (Some(_), None) => {}
            (None, _) => {
                if host_header.is_none() && self.version == Version::Http11 {
                    return Err(Http1Error::MissingHost);
                }
                self.host = host_header;
            }
        }

        let framing = analyze_framing(&self.raw, &self.headers, true, self.version == Version::Http11)?;
        self.content_length = framing.content_length;
        self.body = match (framing.chunked, framing.content_length) {
            (true, _) => BodyKind::Chunked,
            (false, Some(0) | None) => BodyKind::Empty,
            (false, Some(n)) => BodyKind::Length(n),
        };

        let connection = connection_options(&self.raw, &mut self.headers);
        self.keep_alive = match self.version {
            Version::Http11 => !connection.close,
            Version::Http10 => connection.keep_alive && !connection.close,
        };
        Ok(())
    }

    /// Validates the request-target and sets `path`, `host`, `absolute_form`.
    fn classify_target(&mut self, is_options: bool) -> Result<(), Http1Error> {
        let target = slice(&self.raw, &self.target);
        // A fold rather than `any`: without the early exit it vectorizes.
        if target.iter().fold(false, |bad, &b| bad | !(0x21..=0x7e).contains(&b) | (b == b'#')) {
            return Err(Http1Error::Malformed { reason: "invalid byte in request-target" });
        }
        if target.first() == Some(&b'/') {
            self.path = self.target.clone();
            return Ok(());
        }
        if target == b"*" {
            if !is_options {
                return Err(Http1Error::Malformed { reason: "asterisk-form without OPTIONS" });
            }
            self.path = self.target.clone();
            return Ok(());
        }
        let scheme_len = if starts_with_ci(target, b"http://") {
            7
        } else if starts_with_ci(target, b"https://") {
            8
        } else {
            return Err(Http1Error::Malformed { reason: "unsupported request-target form" });
        };
        let rest = target.get(scheme_len..).unwrap_or_default();
        let auth_len = rest.iter().position(|&b| b == b'/' || b == b'?').unwrap_or(rest.len());
        let authority = rest.get(..auth_len).unwrap_or_default();
        if !valid_authority(authority) {
            return Err(Http1Error::Malformed { reason: "invalid authority in request-target" });
        }
        let auth_start = self.target.start + scheme_len;
        let path_start = auth_start + auth_len;
        self.host = Some(auth_start..path_start);
        self.absolute_form = true;
        if rest.get(auth_len) == Some(&b'/') {
            self.path = path_start..self.target.end;
        } else {
            // Empty path: synthesize "/" + query after the head bytes.
            let synth_start = self.raw.len();
            self.raw.push(b'/');
            self.raw.extend_from_within(path_start..self.target.end);
            self.path = synth_start..self.raw.len();
        }
        Ok(())
    }

    /// The request method, e.g. `"GET"`.
    pub fn method(&self) -> &str {
        slice_str(&self.raw, &self.method)
    }

    /// The raw request-target as received.
    pub fn target(&self) -> &str {
        slice_str(&self.raw, &self.target)
    }

    /// The target in origin-form for the backend (`/p?q`), or `*`.
    pub fn path(&self) -> &str {
        slice_str(&self.raw, &self.path)
    }

    /// The request's HTTP version.
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

    /// The request's authority: from an absolute-form target, else the Host
    /// header; `None` for an HTTP/1.0 request without Host.
    pub fn host(&self) -> Option<&str> {
        self.host.as_ref().map(|r| slice_str(&self.raw, r))
    }

    /// Whether the target was in absolute-form (`http://host/path`).
    pub fn is_absolute_form(&self) -> bool {
        self.absolute_form
    }

    /// How the request body is delimited.
    pub fn body(&self) -> BodyKind {
        self.body
    }

    /// The validated Content-Length, if one was sent (also when it is 0).
    pub fn content_length(&self) -> Option<u64> {
        self.content_length
    }

    /// Whether the client wants the connection kept open after this exchange.
    pub fn keep_alive(&self) -> bool {
        self.keep_alive
    }

    /// Whether the request carries `Expect: 100-continue`.
    pub fn expects_continue(&self) -> bool {
        self.expects_continue
    }

    /// Whether the method is HEAD.
    pub fn is_head(&self) -> bool {
        self.is_head
    }

    /// Whether an `Upgrade` header is present.
    pub fn wants_upgrade(&self) -> bool {
        self.wants_upgrade
    }

    /// Raw field ranges, for the forwarding writer.
    pub(crate) fn raw_parts(&self) -> (&[u8], &[HeaderRange]) {
        (&self.raw, &self.headers)
    }

    /// [`RequestHead::method`] as bytes (a token: no UTF-8 check needed).
    pub(crate) fn method_bytes(&self) -> &[u8] {
        slice(&self.raw, &self.method)
    }

    /// [`RequestHead::target`] as bytes (its length, without a UTF-8 check).
    pub(crate) fn target_bytes(&self) -> &[u8] {
        slice(&self.raw, &self.target)
    }

    /// [`RequestHead::path`] as bytes (checked ASCII by `classify_target`).
    pub(crate) fn path_bytes(&self) -> &[u8] {
        slice(&self.raw, &self.path)
    }

    /// [`RequestHead::host`] as bytes (checked ASCII by `valid_authority`).
    pub(crate) fn host_bytes(&self) -> Option<&[u8]> {
        self.host.as_ref().map(|r| slice(&self.raw, r))
    }
}

/// Whether `name` contains `_` and reads as `Content-Length`
/// or `Transfer-Encoding` once each `_` is taken as `-`.
fn is_disguised_framing_name(name: &[u8]) -> bool {
    const FRAMING: &[&[u8]] = &[b"content-length", b"transfer-encoding"];
    FRAMING.iter().any(|f| {
        f.len() == name.len()
            && name.contains(&b'_')
            && f.iter().zip(name).all(|(&want, &got)| {
                let got = if got == b'_' { b'-' } else { got.to_ascii_lowercase() };
                got == want
            })
    })
}

fn starts_with_ci(s: &[u8], prefix: &[u8]) -> bool {
    s.get(..prefix.len()).is_some_and(|p| p.eq_ignore_ascii_case(prefix))
}

/// `reg-name` bytes (RFC 3986 unreserved, sub-delims and `%`).
const REG_NAME: ByteClass = alphanumeric_and(b"-._~!$&'()*+,;=%");

/// Bytes of an IP literal between brackets (IPv6, IPv4 suffix).
const IP_LITERAL: ByteClass = alphanumeric_and(b":.");

/// `uri-host [ ":" port ]`: a non-empty reg-name or IP literal, optional
/// non-empty port of at most 5 digits. No userinfo.
pub(crate) fn valid_authority(a: &[u8]) -> bool {
    let (host_ok, port) = if let [b'[', rest @ ..] = a {
        let Some(close) = rest.iter().position(|&b| b == b']') else {
            return false;
        };
        let inside = rest.get(..close).unwrap_or_default();
        let ok = !inside.is_empty() && inside.iter().all(|&b| in_class(&IP_LITERAL, b));
        match rest.get(close + 1..).unwrap_or_default() {
            [] => (ok, None),
            [b':', port @ ..] => (ok, Some(port)),
            _ => return false,
        }
    } else {
        let colon = a.iter().position(|&b| b == b':');
        let host = a.get(..colon.unwrap_or(a.len())).unwrap_or_default();
        let ok = !host.is_empty() && host.iter().all(|&b| in_class(&REG_NAME, b));
        (ok, colon.map(|c| a.get(c + 1..).unwrap_or_default()))
    };
    let port_ok = port.is_none_or(|p| !p.is_empty() && p.len() <= 5 && p.iter().all(u8::is_ascii_digit));
    host_ok && port_ok
}

#[cfg(test)]
mod tests {
    use std::mem::discriminant;

    use super::*;
    use crate::http1::test_util::XorShift;

    /// Expected outcome of parsing a complete buffer.
    #[derive(Debug)]
    enum Expected {
        /// Parses, consuming the whole input.
        Accept,
        /// Rejected with an error of this variant.
        Reject(Http1Error),
    }
    use Expected::{Accept, Reject};

    const MALFORMED: Http1Error = Http1Error::Malformed { reason: "" };
    const FRAMING: Http1Error = Http1Error::BadFraming { reason: "" };
    const NOT_IMPL: Http1Error = Http1Error::NotImplemented { reason: "" };

    const CASES: &[(&str, &[u8], Expected)] = &[
        // --- accepted ---
        ("simple get", b"GET / HTTP/1.1\r\nHost: a\r\n\r\n", Accept),
        ("no headers http/1.0", b"GET / HTTP/1.0\r\n\r\n", Accept),
        ("tab in value", b"GET / HTTP/1.1\r\nHost: a\r\nX: a\tb\r\n\r\n", Accept),
        ("obs-text in value", b"GET / HTTP/1.1\r\nHost: a\r\nX: caf\xc3\xa9 \xff\r\n\r\n", Accept),
        (
            "identical duplicate CL",
            b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\nContent-Length: 5\r\n\r\n",
            Accept,
        ),
        ("identical CL list", b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 5, 5\r\n\r\n", Accept),
        ("CL leading zeros", b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 005\r\n\r\n", Accept),
        ("TE Chunked mixed case", b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: Chunked\r\n\r\n", Accept),
        ("absolute-form matching host", b"GET http://Example.com/p?q HTTP/1.1\r\nHost: example.COM\r\n\r\n", Accept),
        ("absolute-form https", b"GET https://a:8443/ HTTP/1.1\r\nHost: a:8443\r\n\r\n", Accept),
        ("absolute-form 1.0 no host", b"GET http://a/x HTTP/1.0\r\n\r\n", Accept),
        ("leading CRLF", b"\r\n\r\nGET / HTTP/1.1\r\nHost: a\r\n\r\n", Accept),
        ("http/1.0 without host", b"GET / HTTP/1.0\r\nUser-Agent: x\r\n\r\n", Accept),
        ("options asterisk", b"OPTIONS * HTTP/1.1\r\nHost: a\r\n\r\n", Accept),
        ("ipv6 host", b"GET / HTTP/1.1\r\nHost: [::1]:8080\r\n\r\n", Accept),
        ("extension method", b"PROPFIND /x HTTP/1.1\r\nHost: a\r\n\r\n", Accept),
        ("empty header value", b"GET / HTTP/1.1\r\nHost: a\r\nX-Empty:\r\n\r\n", Accept),
        ("query with odd chars", b"GET /a?b=c&d=%20|{} HTTP/1.1\r\nHost: a\r\n\r\n", Accept),
        // --- line endings / control bytes ---
        ("bare LF everywhere", b"GET / HTTP/1.1\nHost: a\n\n", Reject(MALFORMED)),
        ("bare LF after header", b"GET / HTTP/1.1\r\nHost: a\n\r\n", Reject(MALFORMED)),
        ("bare LF as final line", b"GET / HTTP/1.1\r\nHost: a\r\n\n", Reject(MALFORMED)),
        ("leading bare LF", b"\nGET / HTTP/1.1\r\nHost: a\r\n\r\n", Reject(MALFORMED)),
        ("bare CR in header", b"GET / HTTP/1.1\r\nHost: a\rX: b\r\n\r\n", Reject(MALFORMED)),
        ("bare CR in request line", b"GET /\r HTTP/1.1\r\nHost: a\r\n\r\n", Reject(MALFORMED)),
        ("obs-fold SP", b"GET / HTTP/1.1\r\nHost: a\r\nX: b\r\n c\r\n\r\n", Reject(MALFORMED)),
        ("obs-fold HTAB", b"GET / HTTP/1.1\r\nHost: a\r\nX: b\r\n\tc\r\n\r\n", Reject(MALFORMED)),
        ("space before first header", b"GET / HTTP/1.1\r\n Host: a\r\n\r\n", Reject(MALFORMED)),
        ("NUL in value", b"GET / HTTP/1.1\r\nHost: a\r\nX: a\0b\r\n\r\n", Reject(MALFORMED)),
        ("NUL in name", b"GET / HTTP/1.1\r\nHost: a\r\nX\0: b\r\n\r\n", Reject(MALFORMED)),
        ("NUL in target", b"GET /\0 HTTP/1.1\r\nHost: a\r\n\r\n", Reject(MALFORMED)),
        ("DEL in value", b"GET / HTTP/1.1\r\nHost: a\r\nX: a\x7fb\r\n\r\n", Reject(MALFORMED)),
        ("0x01 in value", b"GET / HTTP/1.1\r\nHost: a\r\nX: \x01\r\n\r\n", Reject(MALFORMED)),
        ("0x1f in name", b"GET / HTTP/1.1\r\nHost: a\r\nX\x1fY: b\r\n\r\n", Reject(MALFORMED)),
        ("vertical tab in value", b"GET / HTTP/1.1\r\nHost: a\r\nX: a\x0bb\r\n\r\n", Reject(MALFORMED)),
        ("tab in target", b"GET /a\tb HTTP/1.1\r\nHost: a\r\n\r\n", Reject(MALFORMED)),
        // httparse alone ends a line at a bare LF anywhere: each line is checked.
        ("bare LF ends request line, no headers", b"GET / HTTP/1.0\n\r\n", Reject(MALFORMED)),
        ("bare LF final line, no headers", b"GET / HTTP/1.0\r\n\n", Reject(MALFORMED)),
        ("bare LF ends request line", b"GET / HTTP/1.1\nHost: a\r\n\r\n", Reject(MALFORMED)),
        ("bare LF between headers", b"GET / HTTP/1.1\r\nHost: a\nX: 1\r\n\r\n", Reject(MALFORMED)),
        ("bare LF after empty value", b"GET / HTTP/1.1\r\nHost: a\r\nX:\nY: 1\r\n\r\n", Reject(MALFORMED)),
        ("bare LF after trailing OWS", b"GET / HTTP/1.1\r\nHost: a\r\nX: 1 \nY: 1\r\n\r\n", Reject(MALFORMED)),
        ("bare LF final line then CRLF", b"GET / HTTP/1.1\r\nHost: a\r\n\n\r\n", Reject(MALFORMED)),
        ("leading CRLF then bare LF", b"\r\n\nGET / HTTP/1.1\r\nHost: a\r\n\r\n", Reject(MALFORMED)),
        ("CR CR LF final line", b"GET / HTTP/1.1\r\nHost: a\r\n\r\r\n", Reject(MALFORMED)),
        ("DEL in name", b"GET / HTTP/1.1\r\nHost: a\r\nX\x7f: b\r\n\r\n", Reject(MALFORMED)),
        ("DEL in method", b"GE\x7fT / HTTP/1.1\r\nHost: a\r\n\r\n", Reject(MALFORMED)),
        // --- header names ---
        ("space before colon", b"GET / HTTP/1.1\r\nHost : a\r\n\r\n", Reject(MALFORMED)),
        ("tab before colon", b"GET / HTTP/1.1\r\nHost\t: a\r\n\r\n", Reject(MALFORMED)),
        ("empty header name", b"GET / HTTP/1.1\r\nHost: a\r\n: b\r\n\r\n", Reject(MALFORMED)),
        ("invalid char in name", b"GET / HTTP/1.1\r\nHost: a\r\nX(y): b\r\n\r\n", Reject(MALFORMED)),
        ("obs-text in name", b"GET / HTTP/1.1\r\nHost: a\r\nX\xe9: b\r\n\r\n", Reject(MALFORMED)),
        ("no colon", b"GET / HTTP/1.1\r\nHost: a\r\nNoColon\r\n\r\n", Reject(MALFORMED)),
        // --- request line ---
        ("invalid char in method", b"G{T / HTTP/1.1\r\nHost: a\r\n\r\n", Reject(MALFORMED)),
        ("empty method", b" / HTTP/1.1\r\nHost: a\r\n\r\n", Reject(MALFORMED)),
        ("double space", b"GET  / HTTP/1.1\r\nHost: a\r\n\r\n", Reject(MALFORMED)),
        ("trailing space", b"GET / HTTP/1.1 \r\nHost: a\r\n\r\n", Reject(MALFORMED)),
        ("target relative", b"GET foo HTTP/1.1\r\nHost: a\r\n\r\n", Reject(MALFORMED)),
        ("asterisk for GET", b"GET * HTTP/1.1\r\nHost: a\r\n\r\n", Reject(MALFORMED)),
        ("authority-form for GET", b"GET a:80 HTTP/1.1\r\nHost: a:80\r\n\r\n", Reject(MALFORMED)),
        ("CONNECT", b"CONNECT a:443 HTTP/1.1\r\nHost: a:443\r\n\r\n", Reject(NOT_IMPL)),
        ("space in target", b"GET /a b HTTP/1.1\r\nHost: a\r\n\r\n", Reject(MALFORMED)),
        ("fragment in target", b"GET /a#b HTTP/1.1\r\nHost: a\r\n\r\n", Reject(MALFORMED)),
        ("non-ascii target", b"GET /caf\xc3\xa9 HTTP/1.1\r\nHost: a\r\n\r\n", Reject(MALFORMED)),
        ("ftp scheme", b"GET ftp://a/ HTTP/1.1\r\nHost: a\r\n\r\n", Reject(MALFORMED)),
        ("userinfo in target", b"GET http://u@a/ HTTP/1.1\r\nHost: a\r\n\r\n", Reject(MALFORMED)),
        ("empty authority", b"GET http:///x HTTP/1.1\r\nHost: a\r\n\r\n", Reject(MALFORMED)),
        // --- versions ---
        ("HTTP/2.0", b"GET / HTTP/2.0\r\nHost: a\r\n\r\n", Reject(Http1Error::UnsupportedVersion)),
        ("HTTP/0.9", b"GET / HTTP/0.9\r\nHost: a\r\n\r\n", Reject(Http1Error::UnsupportedVersion)),
        ("HTTP/1.2", b"GET / HTTP/1.2\r\nHost: a\r\n\r\n", Reject(Http1Error::UnsupportedVersion)),
        ("version garbage", b"GET / HTTX/1.1\r\nHost: a\r\n\r\n", Reject(MALFORMED)),
        ("version lowercase", b"GET / http/1.1\r\nHost: a\r\n\r\n", Reject(MALFORMED)),
        ("version no minor", b"GET / HTTP/2\r\nHost: a\r\n\r\n", Reject(MALFORMED)),
        ("version missing", b"GET /\r\nHost: a\r\n\r\n", Reject(MALFORMED)),
        // --- Host ---
        ("missing host", b"GET / HTTP/1.1\r\nX: a\r\n\r\n", Reject(Http1Error::MissingHost)),
        ("duplicate host", b"GET / HTTP/1.1\r\nHost: a\r\nHost: a\r\n\r\n", Reject(Http1Error::DuplicateHost)),
        ("duplicate host 1.0", b"GET / HTTP/1.0\r\nhost: a\r\nHOST: b\r\n\r\n", Reject(Http1Error::DuplicateHost)),
        ("empty host", b"GET / HTTP/1.1\r\nHost:\r\n\r\n", Reject(MALFORMED)),
        ("host with space", b"GET / HTTP/1.1\r\nHost: a b\r\n\r\n", Reject(MALFORMED)),
        ("host with slash", b"GET / HTTP/1.1\r\nHost: a/b\r\n\r\n", Reject(MALFORMED)),
        ("host with userinfo", b"GET / HTTP/1.1\r\nHost: u@a\r\n\r\n", Reject(MALFORMED)),
        ("host bad port", b"GET / HTTP/1.1\r\nHost: a:8x\r\n\r\n", Reject(MALFORMED)),
        ("host empty port", b"GET / HTTP/1.1\r\nHost: a:\r\n\r\n", Reject(MALFORMED)),
        ("host unclosed ipv6", b"GET / HTTP/1.1\r\nHost: [::1\r\n\r\n", Reject(MALFORMED)),
        ("absolute-form host mismatch", b"GET http://a/ HTTP/1.1\r\nHost: b\r\n\r\n", Reject(Http1Error::HostMismatch)),
        (
            "absolute-form port mismatch",
            b"GET http://a:81/ HTTP/1.1\r\nHost: a\r\n\r\n",
            Reject(Http1Error::HostMismatch),
        ),
        ("absolute-form 1.1 no host", b"GET http://a/ HTTP/1.1\r\n\r\n", Reject(Http1Error::MissingHost)),
        // --- Content-Length ---
        (
            "CL and TE",
            b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n",
            Reject(FRAMING),
        ),
        (
            "TE and CL",
            b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\nContent-Length: 0\r\n\r\n",
            Reject(FRAMING),
        ),
        ("CL plus", b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: +5\r\n\r\n", Reject(FRAMING)),
        ("CL minus", b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: -1\r\n\r\n", Reject(FRAMING)),
        ("CL hex", b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 0x10\r\n\r\n", Reject(FRAMING)),
        ("CL inner space", b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length:  5 5\r\n\r\n", Reject(FRAMING)),
        ("CL differing list", b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 5,6\r\n\r\n", Reject(FRAMING)),
        ("CL empty", b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length:\r\n\r\n", Reject(FRAMING)),
        ("CL empty element", b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 5,\r\n\r\n", Reject(FRAMING)),
        (
            "CL differing headers",
            b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\n",
            Reject(FRAMING),
        ),
        ("CL overflow", b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 18446744073709551616\r\n\r\n", Reject(FRAMING)),
        ("CL float", b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 5.0\r\n\r\n", Reject(FRAMING)),
        // --- Transfer-Encoding ---
        ("TE in http/1.0", b"POST / HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n", Reject(FRAMING)),
        ("TE gzip only", b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: gzip\r\n\r\n", Reject(FRAMING)),
        ("TE identity only", b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: identity\r\n\r\n", Reject(FRAMING)),
        (
            "TE chunked then gzip",
            b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked, gzip\r\n\r\n",
            Reject(FRAMING),
        ),
        (
            "TE final in second header",
            b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\nTransfer-Encoding: gzip\r\n\r\n",
            Reject(FRAMING),
        ),
        ("TE empty", b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding:\r\n\r\n", Reject(FRAMING)),
        ("TE empty element", b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: ,chunked\r\n\r\n", Reject(FRAMING)),
        (
            "TE chunked with params",
            b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked;q=1\r\n\r\n",
            Reject(FRAMING),
        ),
        ("TE xchunked", b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: xchunked\r\n\r\n", Reject(FRAMING)),
        (
            "TE gzip then chunked",
            b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: gzip, chunked\r\n\r\n",
            Reject(NOT_IMPL),
        ),
        (
            "TE deflate then chunked",
            b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: deflate ,\tchunked\r\n\r\n",
            Reject(NOT_IMPL),
        ),
        (
            "TE compress then chunked",
            b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: compress\r\nTransfer-Encoding: chunked\r\n\r\n",
            Reject(NOT_IMPL),
        ),
        (
            "TE identity then chunked",
            b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: identity, chunked\r\n\r\n",
            Reject(NOT_IMPL),
        ),
        (
            "TE chunked twice",
            b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked, chunked\r\n\r\n",
            Reject(NOT_IMPL),
        ),
        (
            "TE chunked in two headers",
            b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\nTransfer-Encoding: CHUNKED\r\n\r\n",
            Reject(NOT_IMPL),
        ),
        // --- smuggling techniques (PortSwigger, "HTTP Desync Attacks"; RFC 9112 6.1, 6.3, 11.2) ---
        ("TE trailing OWS", b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked \t\r\n\r\n", Accept),
        ("TE leading HTAB", b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding:\tchunked\r\n\r\n", Accept),
        (
            "TE vertical tab before value",
            b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding:\x0bchunked\r\n\r\n",
            Reject(MALFORMED),
        ),
        (
            "TE form feed after value",
            b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\x0c\r\n\r\n",
            Reject(MALFORMED),
        ),
        ("TE quoted", b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: \"chunked\"\r\n\r\n", Reject(FRAMING)),
        ("TE with parameter", b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked;q=1\r\n\r\n", Reject(FRAMING)),
        ("TE xchunked suffix", b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunkedx\r\n\r\n", Reject(FRAMING)),
        ("TE comma only", b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: ,\r\n\r\n", Reject(FRAMING)),
        (
            "TE chunked then identity header",
            b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\nTransfer-Encoding: identity\r\n\r\n",
            Reject(FRAMING),
        ),
        (
            "TE identity then chunked",
            b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: identity, chunked\r\n\r\n",
            Reject(NOT_IMPL),
        ),
        (
            "TE gzip then chunked",
            b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: gzip, chunked\r\n\r\n",
            Reject(NOT_IMPL),
        ),
        (
            "CL then TE (CL.TE)",
            b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 6\r\nTransfer-Encoding: chunked\r\n\r\n",
            Reject(FRAMING),
        ),
        (
            "TE then CL 0 (TE.CL)",
            b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\nContent-Length: 0\r\n\r\n",
            Reject(FRAMING),
        ),
        (
            "TE space before colon",
            b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding : chunked\r\n\r\n",
            Reject(MALFORMED),
        ),
        ("TE underscore", b"POST / HTTP/1.1\r\nHost: a\r\nTransfer_Encoding: chunked\r\n\r\n", Reject(MALFORMED)),
        ("CL underscore", b"POST / HTTP/1.1\r\nHost: a\r\nContent_Length: 5\r\n\r\n", Reject(MALFORMED)),
        ("CL underscore mixed case", b"GET / HTTP/1.1\r\nHost: a\r\ncONTENT_lENGTH: 0\r\n\r\n", Reject(MALFORMED)),
        ("other underscore header", b"GET / HTTP/1.1\r\nHost: a\r\nX_Api_Key: 1\r\n\r\n", Accept),
        ("CL trailing OWS", b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 5 \r\n\r\n", Accept),
        ("CL with NUL", b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 5\x00\r\n\r\n", Reject(MALFORMED)),
        ("CL exponent", b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 1e3\r\n\r\n", Reject(FRAMING)),
        ("CL quoted", b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: \"5\"\r\n\r\n", Reject(FRAMING)),
        ("CL underscore digits", b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 1_0\r\n\r\n", Reject(FRAMING)),
        ("CL unicode digit", b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: \xd9\xa5\r\n\r\n", Reject(FRAMING)),
        (
            "CL header in two case variants",
            b"POST / HTTP/1.1\r\nHost: a\r\ncontent-length: 5\r\nCONTENT-LENGTH: 6\r\n\r\n",
            Reject(FRAMING),
        ),
        ("request line tabs", b"GET\t/\tHTTP/1.1\r\nHost: a\r\n\r\n", Reject(MALFORMED)),
        ("request line leading space", b" GET / HTTP/1.1\r\nHost: a\r\n\r\n", Reject(MALFORMED)),
        ("request line CR only", b"GET / HTTP/1.1\rHost: a\r\n\r\n", Reject(MALFORMED)),
        ("header name slash", b"GET / HTTP/1.1\r\nHost: a\r\nX/Y: 1\r\n\r\n", Reject(MALFORMED)),
        ("header name paren", b"GET / HTTP/1.1\r\nHost: a\r\nX(: 1\r\n\r\n", Reject(MALFORMED)),
        ("header name quote", b"GET / HTTP/1.1\r\nHost: a\r\nX\": 1\r\n\r\n", Reject(MALFORMED)),
        ("header name at", b"GET / HTTP/1.1\r\nHost: a\r\nX@Y: 1\r\n\r\n", Reject(MALFORMED)),
        ("method with slash", b"GE/T / HTTP/1.1\r\nHost: a\r\n\r\n", Reject(MALFORMED)),
        ("method non-ascii", b"G\xc3\x89T / HTTP/1.1\r\nHost: a\r\n\r\n", Reject(MALFORMED)),
        ("target DEL", b"GET /a\x7fb HTTP/1.1\r\nHost: a\r\n\r\n", Reject(MALFORMED)),
        ("target high byte", b"GET /\x80 HTTP/1.1\r\nHost: a\r\n\r\n", Reject(MALFORMED)),
        ("target with CR inside", b"GET /a\rb HTTP/1.1\r\nHost: a\r\n\r\n", Reject(MALFORMED)),
        (
            "absolute-form port differs",
            b"GET http://a:8080/ HTTP/1.1\r\nHost: a\r\n\r\n",
            Reject(Http1Error::HostMismatch),
        ),
        (
            "absolute-form host differs",
            b"GET http://evil/ HTTP/1.1\r\nHost: good\r\n\r\n",
            Reject(Http1Error::HostMismatch),
        ),
        ("absolute-form userinfo", b"GET http://good@evil/ HTTP/1.1\r\nHost: evil\r\n\r\n", Reject(MALFORMED)),
        ("absolute-form backslash authority", b"GET http://a\\b/ HTTP/1.1\r\nHost: a\r\n\r\n", Reject(MALFORMED)),
        ("absolute-form query only", b"GET http://a?x HTTP/1.1\r\nHost: a\r\n\r\n", Accept),
        ("host unbracketed ipv6", b"GET / HTTP/1.1\r\nHost: ::1\r\n\r\n", Reject(MALFORMED)),
        ("host two values", b"GET / HTTP/1.1\r\nHost: a, b\r\n\r\n", Reject(MALFORMED)),
        ("host trailing NUL", b"GET / HTTP/1.1\r\nHost: a\x00\r\n\r\n", Reject(MALFORMED)),
        ("host port too long", b"GET / HTTP/1.1\r\nHost: a:123456\r\n\r\n", Reject(MALFORMED)),
        ("whitespace line between headers", b"GET / HTTP/1.1\r\nHost: a\r\n \r\nX: 1\r\n\r\n", Reject(MALFORMED)),
        ("header without value after LF", b"GET / HTTP/1.1\r\nHost: a\r\nX\r\n\r\n", Reject(MALFORMED)),
    ];

    /// (name, input, limits, expected parse result).
    type LimitCase<'a> = (&'a str, &'a [u8], Limits, Result<Option<usize>, Http1Error>);

    #[test]
    fn accept_and_reject_table() {
        let mut head = RequestHead::new();
        let limits = Limits::default();
        for (name, input, expected) in CASES {
            let got = head.parse(input, &limits);
            match (expected, got) {
                (Accept, Ok(Some(n))) => assert_eq!(n, input.len(), "{name}: consumed"),
                (Reject(want), Err(e)) => {
                    assert_eq!(discriminant(want), discriminant(&e), "{name}: got {e:?}");
                    assert_eq!(want.status(), e.status(), "{name}: status");
                }
                (expected, got) => panic!("{name}: expected {expected:?}, got {got:?}"),
            }
        }
    }

    /// Expected accessor values for an accepted request.
    struct Want {
        method: &'static str,
        target: &'static str,
        path: &'static str,
        version: Version,
        host: Option<&'static str>,
        body: BodyKind,
        keep_alive: bool,
        expects_continue: bool,
        wants_upgrade: bool,
        is_head: bool,
    }

    const GET: Want = Want {
        method: "GET",
        target: "/",
        path: "/",
        version: Version::Http11,
        host: Some("a"),
        body: BodyKind::Empty,
        keep_alive: true,
        expects_continue: false,
        wants_upgrade: false,
        is_head: false,
    };

    const ACCESSOR_CASES: &[(&str, &[u8], Want)] = &[
        ("plain", b"GET / HTTP/1.1\r\nHost: a\r\n\r\n", GET),
        (
            "absolute path+query",
            b"GET http://Ex.com/p?q HTTP/1.1\r\nHost: ex.com\r\n\r\n",
            Want { target: "http://Ex.com/p?q", path: "/p?q", host: Some("Ex.com"), ..GET },
        ),
        (
            "absolute empty path",
            b"GET http://a HTTP/1.1\r\nHost: a\r\n\r\n",
            Want { target: "http://a", path: "/", ..GET },
        ),
        (
            "absolute query only",
            b"GET HTTP://a?x=1 HTTP/1.1\r\nHost: a\r\n\r\n",
            Want { target: "HTTP://a?x=1", path: "/?x=1", ..GET },
        ),
        (
            "options asterisk",
            b"OPTIONS * HTTP/1.1\r\nHost: a\r\n\r\n",
            Want { method: "OPTIONS", target: "*", path: "*", ..GET },
        ),
        (
            "http/1.0 no host",
            b"GET /x HTTP/1.0\r\n\r\n",
            Want { target: "/x", path: "/x", version: Version::Http10, host: None, keep_alive: false, ..GET },
        ),
        (
            "http/1.0 keep-alive",
            b"GET / HTTP/1.0\r\nHost: a\r\nConnection: Keep-Alive\r\n\r\n",
            Want { version: Version::Http10, ..GET },
        ),
        (
            "http/1.0 keep-alive and close",
            b"GET / HTTP/1.0\r\nConnection: keep-alive\r\nConnection: close\r\n\r\n",
            Want { version: Version::Http10, host: None, keep_alive: false, ..GET },
        ),
        (
            "close token in list",
            b"GET / HTTP/1.1\r\nHost: a\r\nConnection: foo , CLOSE\r\n\r\n",
            Want { keep_alive: false, ..GET },
        ),
        (
            "close in second connection header",
            b"GET / HTTP/1.1\r\nHost: a\r\nConnection: foo\r\nConnection: close\r\n\r\n",
            Want { keep_alive: false, ..GET },
        ),
        ("closed is not close", b"GET / HTTP/1.1\r\nHost: a\r\nConnection: closed\r\n\r\n", GET),
        (
            "content length",
            b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 12\r\n\r\n",
            Want { method: "POST", body: BodyKind::Length(12), ..GET },
        ),
        (
            "content length zero",
            b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 0\r\n\r\n",
            Want { method: "POST", ..GET },
        ),
        (
            "chunked",
            b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding:  chunked \r\n\r\n",
            Want { method: "POST", body: BodyKind::Chunked, ..GET },
        ),
        (
            "expect continue",
            b"PUT / HTTP/1.1\r\nHost: a\r\nExpect: 100-Continue\r\nContent-Length: 3\r\n\r\n",
            Want { method: "PUT", body: BodyKind::Length(3), expects_continue: true, ..GET },
        ),
        (
            "upgrade",
            b"GET / HTTP/1.1\r\nHost: a\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\r\n",
            Want { wants_upgrade: true, ..GET },
        ),
        (
            "expect from http/1.0 ignored",
            b"PUT / HTTP/1.0\r\nExpect: 100-continue\r\n\r\n",
            Want { method: "PUT", version: Version::Http10, host: None, keep_alive: false, ..GET },
        ),
        ("expect other", b"PUT / HTTP/1.1\r\nHost: a\r\nExpect: 200-ok\r\n\r\n", Want { method: "PUT", ..GET }),
        ("head", b"HEAD / HTTP/1.1\r\nHost: a\r\n\r\n", Want { method: "HEAD", is_head: true, ..GET }),
        ("lowercase head is another method", b"head / HTTP/1.1\r\nHost: a\r\n\r\n", Want { method: "head", ..GET }),
    ];

    #[test]
    fn accessors_table() {
        let mut head = RequestHead::new();
        for (name, input, want) in ACCESSOR_CASES {
            let got = head.parse(input, &Limits::default());
            assert_eq!(got, Ok(Some(input.len())), "{name}: parse");
            assert_eq!(head.method(), want.method, "{name}: method");
            assert_eq!(head.target(), want.target, "{name}: target");
            assert_eq!(head.path(), want.path, "{name}: path");
            assert_eq!(head.version(), want.version, "{name}: version");
            assert_eq!(head.host(), want.host, "{name}: host");
            assert_eq!(head.body(), want.body, "{name}: body");
            assert_eq!(head.keep_alive(), want.keep_alive, "{name}: keep_alive");
            assert_eq!(head.expects_continue(), want.expects_continue, "{name}: expects_continue");
            assert_eq!(head.wants_upgrade(), want.wants_upgrade, "{name}: wants_upgrade");
            assert_eq!(head.is_head(), want.is_head, "{name}: is_head");
        }
    }

    #[test]
    fn headers_keep_order_case_and_bytes() {
        let input = b"GET / HTTP/1.1\r\nHost: a\r\nX-Mixed-CASE:  v1 \r\nx-tab: a\tb\r\nX-Bin: \xe9\xff\r\nx-mixed-case: v2\r\n\r\n";
        let mut head = RequestHead::new();
        assert_eq!(head.parse(input, &Limits::default()), Ok(Some(input.len())));
        let got: Vec<(&str, &[u8])> = head.headers().collect();
        let want: &[(&str, &[u8])] = &[
            ("Host", b"a"),
            ("X-Mixed-CASE", b"v1"),
            ("x-tab", b"a\tb"),
            ("X-Bin", b"\xe9\xff"),
            ("x-mixed-case", b"v2"),
        ];
        assert_eq!(got, want);
        const LOOKUPS: &[(&str, Option<&[u8]>)] =
            &[("x-mixed-case", Some(b"v1")), ("HOST", Some(b"a")), ("x-bin", Some(b"\xe9\xff")), ("missing", None)];
        for (name, want) in LOOKUPS {
            assert_eq!(head.header(name), *want, "lookup {name}");
        }
    }

    #[test]
    fn pipelined_requests() {
        const CASES: &[(&str, &[u8], &[usize])] = &[
            ("two gets", b"GET /1 HTTP/1.1\r\nHost: a\r\n\r\nGET /2 HTTP/1.1\r\nHost: a\r\n\r\n", &[28, 28]),
            ("with body bytes", b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 2\r\n\r\nhi", &[47]),
            (
                "second has leading CRLF",
                b"GET / HTTP/1.1\r\nHost: a\r\n\r\n\r\nGET / HTTP/1.1\r\nHost: a\r\n\r\n",
                &[27, 29],
            ),
        ];
        let mut head = RequestHead::new();
        for (name, input, lengths) in CASES {
            let mut rest: &[u8] = input;
            for (i, &len) in lengths.iter().enumerate() {
                assert_eq!(head.parse(rest, &Limits::default()), Ok(Some(len)), "{name}: request {i}");
                rest = &rest[len..];
            }
        }
    }

    #[test]
    fn incomplete_at_every_split_point() {
        const CASES: &[(&str, &[u8])] = &[
            ("get", b"GET /index.html HTTP/1.1\r\nHost: example.com\r\nAccept: */*\r\n\r\n"),
            ("leading crlf", b"\r\n\r\nGET / HTTP/1.1\r\nHost: a\r\n\r\n"),
            ("http/1.0 no headers", b"GET / HTTP/1.0\r\n\r\n"),
            ("absolute", b"POST http://a/x HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n"),
        ];
        let mut head = RequestHead::new();
        for (name, input) in CASES {
            for i in 0..input.len() {
                assert_eq!(head.parse(&input[..i], &Limits::default()), Ok(None), "{name}: prefix {i}");
            }
            assert_eq!(head.parse(input, &Limits::default()), Ok(Some(input.len())), "{name}: full");
        }
    }

    #[test]
    fn head_limits() {
        let req = b"GET / HTTP/1.1\r\nHost: a\r\n\r\n"; // 27 bytes
        let many: Vec<u8> = {
            let mut v = b"GET / HTTP/1.1\r\nHost: a\r\n".to_vec();
            for i in 0..100 {
                v.extend_from_slice(format!("X-{i}: v\r\n").as_bytes());
            }
            v.extend_from_slice(b"\r\n");
            v
        };
        let limits = |max_head_bytes, max_headers| Limits { max_head_bytes, max_headers };
        let cases: &[LimitCase] = &[
            ("exactly at limit", req, limits(27, 10), Ok(Some(27))),
            ("one over limit", req, limits(26, 10), Err(Http1Error::HeadTooLarge)),
            ("incomplete under limit", &req[..20], limits(21, 10), Ok(None)),
            ("incomplete at limit", &req[..20], limits(20, 10), Err(Http1Error::HeadTooLarge)),
            ("CRLF flood", &[b'\r', b'\n'].repeat(64), limits(100, 10), Err(Http1Error::HeadTooLarge)),
            ("headers at limit", req, limits(100, 1), Ok(Some(27))),
            (
                "too many headers",
                b"GET / HTTP/1.1\r\nHost: a\r\nX: 1\r\n\r\n",
                limits(100, 1),
                Err(Http1Error::TooManyHeaders),
            ),
            ("101 headers default", &many, Limits::default(), Err(Http1Error::TooManyHeaders)),
            ("101 headers, cap 128", &many, limits(16384, 1000), Ok(Some(many.len()))),
            (
                "bad bytes past limit not scanned",
                b"GET / HTTP/1.1\r\nX: \0",
                limits(16, 10),
                Err(Http1Error::HeadTooLarge),
            ),
            (
                "head before limit, body after",
                b"GET / HTTP/1.1\r\nHost: a\r\n\r\n\0\0\0\0",
                limits(27, 10),
                Ok(Some(27)),
            ),
            ("zero headers allowed", b"GET / HTTP/1.0\r\n\r\n", limits(100, 0), Ok(Some(18))),
        ];
        let mut head = RequestHead::new();
        for (name, input, limits, want) in cases {
            assert_eq!(&head.parse(input, limits), want, "{name}");
            if let Err(e) = want {
                assert_eq!(e.status(), 431, "{name}: status");
            }
        }
    }

    #[test]
    fn reuse_keeps_capacity() {
        let big = b"GET /a/long/path HTTP/1.1\r\nHost: example.com\r\nX-A: 1\r\nX-B: 2\r\nX-C: 3\r\n\r\n";
        let small = b"GET / HTTP/1.1\r\nHost: a\r\n\r\n";
        let mut head = RequestHead::new();
        assert!(head.parse(big, &Limits::default()).is_ok());
        let (raw_cap, hdr_cap) = (head.raw.capacity(), head.headers.capacity());
        for (name, input) in [("small", &small[..]), ("big", &big[..]), ("small again", &small[..])] {
            assert!(head.parse(input, &Limits::default()).is_ok(), "{name}");
            assert_eq!(head.raw.capacity(), raw_cap, "{name}: raw capacity");
            assert_eq!(head.headers.capacity(), hdr_cap, "{name}: headers capacity");
        }
        assert_eq!(head.headers().count(), 1);
        assert_eq!(head.host(), Some("a"));
    }

    #[test]
    fn authority_byte_classes() {
        let reg_name = |b: u8| b.is_ascii_alphanumeric() || b"-._~!$&'()*+,;=%".contains(&b);
        let ip_literal = |b: u8| b.is_ascii_alphanumeric() || b == b':' || b == b'.';
        for b in 0..=u8::MAX {
            assert_eq!(in_class(&REG_NAME, b), reg_name(b), "reg-name {b:#04x}");
            assert_eq!(in_class(&IP_LITERAL, b), ip_literal(b), "ip literal {b:#04x}");
        }
    }

    #[test]
    fn fuzz_no_panic() {
        const ALPHABET: &[u8] = b"GET POST / HTTP/1.1\r\n:Host Content-Length Transfer-Encoding chunked,0123456789 \t";
        let mut rng = XorShift(0x9e37_79b9_7f4a_7c15);
        let mut head = RequestHead::new();
        let mut buf = Vec::new();
        let limits = Limits { max_head_bytes: 150, max_headers: 8 };
        for i in 0..10_000u32 {
            rng.fill(&mut buf, ALPHABET);
            if i.is_multiple_of(2) {
                // Make it look more like a request so that deeper code runs.
                buf.splice(0..0, b"POST / HTTP/1.1\r\nHost: a\r\n".iter().copied());
                buf.extend_from_slice(b"\r\n\r\n");
            }
            let _ = head.parse(&buf, &limits);
            let _ = head.parse(&buf, &Limits::default());
        }
    }
}
