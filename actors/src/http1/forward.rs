//! Serialization of the request head forwarded to a backend: hop-by-hop
//! fields removed, framing normalized, and `X-Forwarded-*` / `Forwarded` /
//! `Via` fields describing the client connection added.

use std::io::Write as _;
use std::net::IpAddr;

use crate::http1::{is_hop_by_hop, is_tchar, push_dec, push_field, slice, BodyKind, RequestHead};

/// Information about the client connection added to forwarded requests.
#[derive(Debug, Clone, Copy)]
pub struct Forwarding<'a> {
    /// The client's IP address.
    pub client_ip: IpAddr,
    /// The protocol the client used, e.g. `"https"`.
    pub proto: &'a str,
    /// `Host` to send when the client sent none (HTTP/1.0), e.g. the backend address.
    pub default_host: &'a str,
    /// `Some(name)` adds `Via: {client version} {name}`.
    pub via: Option<&'a str>,
}

/// Fields the proxy regenerates; client copies are dropped (XFF and
/// Forwarded values are merged into the regenerated field).
const REGENERATED: &[&[u8]] = &[b"x-forwarded-for", b"x-forwarded-proto", b"x-forwarded-host", b"forwarded"];

/// Appends to `out` the request head to send to the backend for `head`.
///
/// Always `HTTP/1.1` with an origin-form target; keeps end-to-end fields in
/// order and case (including `Expect`), collapses Content-Length to one
/// normalized field, sets Host from an absolute-form target, adds a `Host`
/// first when the client sent none, then appends `X-Forwarded-For`,
/// `X-Forwarded-Proto`, `X-Forwarded-Host`, `Forwarded`, `Via` and
/// `Transfer-Encoding: chunked` for chunked bodies. Never `Connection`.
pub fn write_upstream_request(head: &RequestHead, fwd: &Forwarding<'_>, out: &mut Vec<u8>) {
    let (raw, headers) = head.raw_parts();
    let host = head.host();
    out.extend_from_slice(head.method().as_bytes());
    out.push(b' ');
    out.extend_from_slice(head.path().as_bytes());
    out.extend_from_slice(b" HTTP/1.1\r\n");

    let has_host_field = headers.iter().any(|h| slice(raw, &h.name).eq_ignore_ascii_case(b"host"));
    if !has_host_field {
        push_field(out, b"Host", host.unwrap_or(fwd.default_host).as_bytes());
    }

    let mut cl_written = false;
    for h in headers {
        let name = slice(raw, &h.name);
        if is_hop_by_hop(name, raw, headers) || REGENERATED.iter().any(|r| name.eq_ignore_ascii_case(r)) {
            continue;
        }
        if name.eq_ignore_ascii_case(b"content-length") {
            if let (false, Some(n)) = (cl_written, head.content_length()) {
                out.extend_from_slice(name);
                out.extend_from_slice(b": ");
                push_dec(out, n);
                out.extend_from_slice(b"\r\n");
                cl_written = true;
            }
            continue;
        }
        if name.eq_ignore_ascii_case(b"host") {
            // Equal to the header unless absolute-form, where it is the target's authority.
            push_field(out, name, host.unwrap_or_default().as_bytes());
            continue;
        }
        push_field(out, name, slice(raw, &h.value));
    }

    out.extend_from_slice(b"X-Forwarded-For: ");
    push_previous(out, head, b"x-forwarded-for");
    let _ = write!(out, "{}", fwd.client_ip);
    out.extend_from_slice(b"\r\n");

    push_field(out, b"X-Forwarded-Proto", fwd.proto.as_bytes());
    if let Some(h) = host {
        push_field(out, b"X-Forwarded-Host", h.as_bytes());
    }

    out.extend_from_slice(b"Forwarded: ");
    push_previous(out, head, b"forwarded");
    out.extend_from_slice(b"for=");
    match fwd.client_ip {
        IpAddr::V4(ip) => {
            let _ = write!(out, "{ip}");
        }
        IpAddr::V6(ip) => {
            let _ = write!(out, "\"[{ip}]\"");
        }
    }
    out.extend_from_slice(b";proto=");
    push_forwarded_value(out, fwd.proto.as_bytes());
    if let Some(h) = host {
        out.extend_from_slice(b";host=");
        push_forwarded_value(out, h.as_bytes());
    }
    out.extend_from_slice(b"\r\n");

    if let Some(v) = fwd.via {
        out.extend_from_slice(b"Via: ");
        out.extend_from_slice(head.version().via_str().as_bytes());
        out.push(b' ');
        out.extend_from_slice(v.as_bytes());
        out.extend_from_slice(b"\r\n");
    }
    if head.body() == BodyKind::Chunked {
        out.extend_from_slice(b"Transfer-Encoding: chunked\r\n");
    }
    out.extend_from_slice(b"\r\n");
}

/// Appends each non-empty value of the client's `name` fields followed by ", ".
fn push_previous(out: &mut Vec<u8>, head: &RequestHead, name: &[u8]) {
    let (raw, headers) = head.raw_parts();
    for h in headers {
        let value = slice(raw, &h.value);
        if !value.is_empty() && slice(raw, &h.name).eq_ignore_ascii_case(name) {
            out.extend_from_slice(value);
            out.extend_from_slice(b", ");
        }
    }
}

/// Appends a `Forwarded` parameter value: a token as is, else a quoted-string.
fn push_forwarded_value(out: &mut Vec<u8>, v: &[u8]) {
    if !v.is_empty() && v.iter().all(|&b| is_tchar(b)) {
        out.extend_from_slice(v);
        return;
    }
    out.push(b'"');
    for &b in v {
        if b == b'"' || b == b'\\' {
            out.push(b'\\');
        }
        out.push(b);
    }
    out.push(b'"');
}
