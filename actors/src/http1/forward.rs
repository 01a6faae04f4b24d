//! Serialization of the request head forwarded to a backend: hop-by-hop
//! fields removed, framing normalized, and `X-Forwarded-*` / `Forwarded` /
//! `Via` fields describing the client connection added.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use crate::http1::{BodyKind, FieldKind, FieldRun, RequestHead, is_tchar, push_dec, push_field, slice};

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
    /// Header that carries the verified client-certificate identity; the
    /// client's own copies are always dropped (empty: no such header).
    pub identity_header: &'a str,
    /// The verified client's identity, sent in `identity_header`.
    pub identity: Option<&'a str>,
}

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
    let host = head.host_bytes();
    out.extend_from_slice(head.method_bytes());
    out.push(b' ');
    out.extend_from_slice(head.path_bytes());
    out.extend_from_slice(b" HTTP/1.1\r\n");

    if !headers.iter().any(|h| h.kind == FieldKind::Host) {
        push_field(out, b"Host", host.unwrap_or(fwd.default_host.as_bytes()));
    }

    let identity_header = fwd.identity_header.as_bytes();
    let mut cl_written = false;
    let mut fields = FieldRun::new(raw);
    for h in headers {
        let name = slice(raw, &h.name);
        // The fields the proxy regenerates: client copies are dropped (XFF
        // and Forwarded values are merged into the regenerated field).
        let regenerated = matches!(
            h.kind,
            FieldKind::XForwardedFor | FieldKind::XForwardedProto | FieldKind::XForwardedHost | FieldKind::Forwarded
        );
        if h.hop || regenerated || (!identity_header.is_empty() && name.eq_ignore_ascii_case(identity_header)) {
            continue;
        }
        match h.kind {
            FieldKind::ContentLength => {
                fields.flush(out);
                if let (false, Some(n)) = (cl_written, head.content_length()) {
                    out.extend_from_slice(name);
                    out.extend_from_slice(b": ");
                    push_dec(out, n);
                    out.extend_from_slice(b"\r\n");
                    cl_written = true;
                }
            }
            // Equal to the header unless absolute-form, where it is the target's authority.
            FieldKind::Host if host != Some(slice(raw, &h.value)) => {
                fields.flush(out);
                push_field(out, name, host.unwrap_or_default());
            }
            _ => fields.push(out, h),
        }
    }
    fields.flush(out);

    let client = IpText::new(fwd.client_ip);
    out.extend_from_slice(b"X-Forwarded-For: ");
    push_previous(out, head, FieldKind::XForwardedFor);
    out.extend_from_slice(client.as_bytes());
    out.extend_from_slice(b"\r\n");

    // Constant names are written with their separator: one copy less each.
    out.extend_from_slice(b"X-Forwarded-Proto: ");
    out.extend_from_slice(fwd.proto.as_bytes());
    out.extend_from_slice(b"\r\n");
    if let Some(h) = host {
        out.extend_from_slice(b"X-Forwarded-Host: ");
        out.extend_from_slice(h);
        out.extend_from_slice(b"\r\n");
    }

    out.extend_from_slice(b"Forwarded: ");
    push_previous(out, head, FieldKind::Forwarded);
    out.extend_from_slice(b"for=");
    match fwd.client_ip {
        IpAddr::V4(_) => out.extend_from_slice(client.as_bytes()),
        IpAddr::V6(_) => {
            out.extend_from_slice(b"\"[");
            out.extend_from_slice(client.as_bytes());
            out.extend_from_slice(b"]\"");
        }
    }
    out.extend_from_slice(b";proto=");
    push_forwarded_value(out, fwd.proto.as_bytes());
    if let Some(h) = host {
        out.extend_from_slice(b";host=");
        push_forwarded_value(out, h);
    }
    out.extend_from_slice(b"\r\n");

    if let Some(v) = fwd.via {
        out.extend_from_slice(b"Via: ");
        out.extend_from_slice(head.version().via_str().as_bytes());
        out.push(b' ');
        out.extend_from_slice(v.as_bytes());
        out.extend_from_slice(b"\r\n");
    }
    if let Some(id) = fwd.identity
        && !fwd.identity_header.is_empty()
    {
        push_field(out, fwd.identity_header.as_bytes(), id.as_bytes());
    }
    if head.body() == BodyKind::Chunked {
        out.extend_from_slice(b"Transfer-Encoding: chunked\r\n");
    }
    out.extend_from_slice(b"\r\n");
}

/// Appends each non-empty value of the client's `name` fields followed by ", ".
fn push_previous(out: &mut Vec<u8>, head: &RequestHead, kind: FieldKind) {
    let (raw, headers) = head.raw_parts();
    for h in headers.iter().filter(|h| h.kind == kind) {
        let value = slice(raw, &h.value);
        if !value.is_empty() {
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
    if v.iter().any(|&b| b == b'"' || b == b'\\') {
        for &b in v {
            if b == b'"' || b == b'\\' {
                out.push(b'\\');
            }
            out.push(b);
        }
    } else {
        // (A host with a port, the usual case: nothing to escape.)
        out.extend_from_slice(v);
    }
    out.push(b'"');
}

/// An IP address as text, as `Display` writes it (RFC 5952 for IPv6), built
/// on the stack: going through `fmt` cost more than the rest of a small
/// forwarded head.
struct IpText {
    buf: [u8; IpText::MAX],
    len: usize,
}

impl IpText {
    /// `ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff`; IPv4 and IPv4-mapped
    /// (`::ffff:255.255.255.255`) are shorter.
    const MAX: usize = 39;

    fn new(ip: IpAddr) -> Self {
        let mut text = IpText { buf: [0; IpText::MAX], len: 0 };
        match ip {
            IpAddr::V4(ip) => text.push_v4(ip),
            IpAddr::V6(ip) => text.push_v6(ip),
        }
        text
    }

    fn as_bytes(&self) -> &[u8] {
        self.buf.get(..self.len).unwrap_or_default()
    }

    fn push(&mut self, b: u8) {
        if let Some(slot) = self.buf.get_mut(self.len) {
            *slot = b;
            self.len += 1;
        }
    }

    fn push_v4(&mut self, ip: Ipv4Addr) {
        for (i, octet) in ip.octets().into_iter().enumerate() {
            if i > 0 {
                self.push(b'.');
            }
            if octet >= 100 {
                self.push(b'0' + octet / 100);
            }
            if octet >= 10 {
                self.push(b'0' + octet / 10 % 10);
            }
            self.push(b'0' + octet % 10);
        }
    }

    fn push_v6(&mut self, ip: Ipv6Addr) {
        if let Some(v4) = ip.to_ipv4_mapped() {
            b"::ffff:".iter().for_each(|&b| self.push(b));
            self.push_v4(v4);
            return;
        }
        // The longest run of two or more zero segments, the first if tied,
        // is written `::`.
        let segments = ip.segments();
        let (mut zeros, mut run) = (0..0, 0..0);
        for (i, &segment) in segments.iter().enumerate() {
            if segment != 0 {
                continue;
            }
            run = if run.end == i { run.start..i + 1 } else { i..i + 1 };
            if run.len() > zeros.len() {
                zeros = run.clone();
            }
        }
        if zeros.len() < 2 {
            self.push_segments(&segments);
            return;
        }
        self.push_segments(segments.get(..zeros.start).unwrap_or_default());
        self.push(b':');
        self.push(b':');
        self.push_segments(segments.get(zeros.end..).unwrap_or_default());
    }

    /// Colon-separated lowercase hex, without leading zeros.
    fn push_segments(&mut self, segments: &[u16]) {
        const DIGITS: &[u8; 16] = b"0123456789abcdef";
        for (i, &segment) in segments.iter().enumerate() {
            if i > 0 {
                self.push(b':');
            }
            let digits = (16 - segment.leading_zeros()).div_ceil(4).max(1);
            for shift in (0..digits).rev() {
                if let Some(&d) = DIGITS.get(usize::from(segment >> (shift * 4) & 0xf)) {
                    self.push(d);
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use std::net::{Ipv4Addr, Ipv6Addr};

    use super::*;
    use crate::http1::Limits;
    use crate::http1::test_util::XorShift;

    const V4: IpAddr = IpAddr::V4(Ipv4Addr::new(192, 0, 2, 1));
    const V6: IpAddr = IpAddr::V6(Ipv6Addr::LOCALHOST);

    const FWD: Forwarding<'static> = Forwarding {
        client_ip: V4,
        proto: "https",
        default_host: "127.0.0.1:8080",
        via: None,
        identity_header: "",
        identity: None,
    };

    const CASES: &[(&str, &[u8], Forwarding<'static>, &[u8])] = &[
        ("basic get",
            b"GET /x?y HTTP/1.1\r\nHost: example.com\r\nAccept: */*\r\n\r\n",
            FWD,
            b"GET /x?y HTTP/1.1\r\nHost: example.com\r\nAccept: */*\r\n\
X-Forwarded-For: 192.0.2.1\r\nX-Forwarded-Proto: https\r\nX-Forwarded-Host: example.com\r\n\
Forwarded: for=192.0.2.1;proto=https;host=example.com\r\n\r\n"),
        ("hop-by-hop removed, expect kept, chunked re-added",
            b"POST /u HTTP/1.1\r\nHost: a\r\nConnection: keep-alive, X-Hop, Upgrade\r\nKeep-Alive: 300\r\nX-Hop: 1\r\nTE: trailers\r\n\
Upgrade: websocket\r\nProxy-Connection: keep-alive\r\nProxy-Authorization: Basic x\r\nExpect: 100-continue\r\n\
Transfer-Encoding: chunked\r\nX-End: z\r\n\r\n",
            FWD,
            b"POST /u HTTP/1.1\r\nHost: a\r\nExpect: 100-continue\r\nX-End: z\r\n\
X-Forwarded-For: 192.0.2.1\r\nX-Forwarded-Proto: https\r\nX-Forwarded-Host: a\r\n\
Forwarded: for=192.0.2.1;proto=https;host=a\r\nTransfer-Encoding: chunked\r\n\r\n"),
        ("xff and forwarded merged, spoofed proto/host dropped",
            b"GET / HTTP/1.1\r\nX-Forwarded-For: 1.1.1.1\r\nHost: a\r\nx-forwarded-for: 2.2.2.2, 3.3.3.3\r\nX-Forwarded-Proto: http\r\n\
X-Forwarded-Host: evil\r\nForwarded: for=1.1.1.1\r\nforwarded: for=\"[2001:db8::1]\";proto=http\r\nX-Forwarded-For:\r\n\r\n",
            FWD,
            b"GET / HTTP/1.1\r\nHost: a\r\n\
X-Forwarded-For: 1.1.1.1, 2.2.2.2, 3.3.3.3, 192.0.2.1\r\nX-Forwarded-Proto: https\r\nX-Forwarded-Host: a\r\n\
Forwarded: for=1.1.1.1, for=\"[2001:db8::1]\";proto=http, for=192.0.2.1;proto=https;host=a\r\n\r\n"),
        ("ipv6 client, host with port quoted, via",
            b"GET / HTTP/1.1\r\nHost: example.com:8443\r\n\r\n",
            Forwarding { client_ip: V6, via: Some("terminus"), ..FWD },
            b"GET / HTTP/1.1\r\nHost: example.com:8443\r\n\
X-Forwarded-For: ::1\r\nX-Forwarded-Proto: https\r\nX-Forwarded-Host: example.com:8443\r\n\
Forwarded: for=\"[::1]\";proto=https;host=\"example.com:8443\"\r\nVia: 1.1 terminus\r\n\r\n"),
        ("http/1.0 without host",
            b"GET /old HTTP/1.0\r\nUser-Agent: x\r\nConnection: keep-alive\r\n\r\n",
            Forwarding { via: Some("terminus"), ..FWD },
            b"GET /old HTTP/1.1\r\nHost: 127.0.0.1:8080\r\nUser-Agent: x\r\n\
X-Forwarded-For: 192.0.2.1\r\nX-Forwarded-Proto: https\r\n\
Forwarded: for=192.0.2.1;proto=https\r\nVia: 1.0 terminus\r\n\r\n"),
        ("absolute-form rewrites target and host",
            b"GET http://Example.com/p?q HTTP/1.1\r\nhost: example.com\r\nX: 1\r\n\r\n",
            FWD,
            b"GET /p?q HTTP/1.1\r\nhost: Example.com\r\nX: 1\r\n\
X-Forwarded-For: 192.0.2.1\r\nX-Forwarded-Proto: https\r\nX-Forwarded-Host: Example.com\r\n\
Forwarded: for=192.0.2.1;proto=https;host=Example.com\r\n\r\n"),
        ("absolute-form http/1.0 without host, empty path",
            b"GET http://a:81?q HTTP/1.0\r\n\r\n",
            FWD,
            b"GET /?q HTTP/1.1\r\nHost: a:81\r\n\
X-Forwarded-For: 192.0.2.1\r\nX-Forwarded-Proto: https\r\nX-Forwarded-Host: a:81\r\n\
Forwarded: for=192.0.2.1;proto=https;host=\"a:81\"\r\n\r\n"),
        ("duplicate content-length collapsed",
            b"PUT /f HTTP/1.1\r\nHost: a\r\ncontent-length: 05\r\nX: 1\r\nContent-Length: 5, 5\r\n\r\n",
            FWD,
            b"PUT /f HTTP/1.1\r\nHost: a\r\ncontent-length: 5\r\nX: 1\r\n\
X-Forwarded-For: 192.0.2.1\r\nX-Forwarded-Proto: https\r\nX-Forwarded-Host: a\r\n\
Forwarded: for=192.0.2.1;proto=https;host=a\r\n\r\n"),
        ("content-length zero kept",
            b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 0\r\n\r\n",
            FWD,
            b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 0\r\n\
X-Forwarded-For: 192.0.2.1\r\nX-Forwarded-Proto: https\r\nX-Forwarded-Host: a\r\n\
Forwarded: for=192.0.2.1;proto=https;host=a\r\n\r\n"),
        ("connection cannot strip host or content-length",
            b"POST / HTTP/1.1\r\nConnection: Host, Content-Length, close\r\nHost: a\r\nContent-Length: 3\r\n\r\n",
            FWD,
            b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 3\r\n\
X-Forwarded-For: 192.0.2.1\r\nX-Forwarded-Proto: https\r\nX-Forwarded-Host: a\r\n\
Forwarded: for=192.0.2.1;proto=https;host=a\r\n\r\n"),
        ("order, case and obs-text preserved",
            b"GET / HTTP/1.1\r\nuser-AGENT: x\r\nHost: a\r\nCookie: a=1\r\nX-Bin: \xe9\tz\r\ncookie: b=2\r\nVia: 1.1 cdn\r\n\r\n",
            Forwarding { via: Some("terminus"), ..FWD },
            b"GET / HTTP/1.1\r\nuser-AGENT: x\r\nHost: a\r\nCookie: a=1\r\nX-Bin: \xe9\tz\r\ncookie: b=2\r\nVia: 1.1 cdn\r\n\
X-Forwarded-For: 192.0.2.1\r\nX-Forwarded-Proto: https\r\nX-Forwarded-Host: a\r\n\
Forwarded: for=192.0.2.1;proto=https;host=a\r\nVia: 1.1 terminus\r\n\r\n"),
        ("connection options drop the fields they name, whatever the name",
            b"GET / HTTP/1.1\r\nHost: a\r\nClose: 1\r\nConnection: close, x-a,Expect\r\nX-A: 1\r\nexpect: 100-continue\r\nX-B: 2\r\n\r\n",
            FWD,
            b"GET / HTTP/1.1\r\nHost: a\r\nX-B: 2\r\n\
X-Forwarded-For: 192.0.2.1\r\nX-Forwarded-Proto: https\r\nX-Forwarded-Host: a\r\n\
Forwarded: for=192.0.2.1;proto=https;host=a\r\n\r\n"),
        ("ipv6 client, compressed inside",
            b"GET / HTTP/1.1\r\nHost: a\r\n\r\n",
            Forwarding { client_ip: IpAddr::V6(Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 8, 0x800, 0x200c, 0x417a)), ..FWD },
            b"GET / HTTP/1.1\r\nHost: a\r\n\
X-Forwarded-For: 2001:db8::8:800:200c:417a\r\nX-Forwarded-Proto: https\r\nX-Forwarded-Host: a\r\n\
Forwarded: for=\"[2001:db8::8:800:200c:417a]\";proto=https;host=a\r\n\r\n"),
        ("ipv4-mapped ipv6 client, identity header replaced",
            b"GET / HTTP/1.1\r\nHost: a\r\nx-client-id: forged\r\n\r\n",
            Forwarding {
                client_ip: IpAddr::V6(Ipv4Addr::new(10, 0, 0, 255).to_ipv6_mapped()),
                identity_header: "X-Client-Id",
                identity: Some("CN=c"),
                ..FWD
            },
            b"GET / HTTP/1.1\r\nHost: a\r\n\
X-Forwarded-For: ::ffff:10.0.0.255\r\nX-Forwarded-Proto: https\r\nX-Forwarded-Host: a\r\n\
Forwarded: for=\"[::ffff:10.0.0.255]\";proto=https;host=a\r\nX-Client-Id: CN=c\r\n\r\n"),
        ("options asterisk",
            b"OPTIONS * HTTP/1.1\r\nHost: a\r\n\r\n",
            FWD,
            b"OPTIONS * HTTP/1.1\r\nHost: a\r\n\
X-Forwarded-For: 192.0.2.1\r\nX-Forwarded-Proto: https\r\nX-Forwarded-Host: a\r\n\
Forwarded: for=192.0.2.1;proto=https;host=a\r\n\r\n"),
    ];

    #[test]
    fn golden_upstream_requests() {
        let mut head = RequestHead::new();
        let mut out = Vec::new();
        for (name, input, fwd, want) in CASES {
            assert_eq!(head.parse(input, &Limits::default()), Ok(Some(input.len())), "{name}: parse");
            out.clear();
            write_upstream_request(&head, fwd, &mut out);
            assert_eq!(String::from_utf8_lossy(&out), String::from_utf8_lossy(want), "{name}");
            // What we send must itself be a valid request with the same framing.
            let mut again = RequestHead::new();
            assert_eq!(again.parse(&out, &Limits::default()), Ok(Some(out.len())), "{name}: reparse");
            assert_eq!(again.body(), head.body(), "{name}: framing preserved");
            assert!(again.keep_alive(), "{name}: upstream stays keep-alive");
        }
    }

    #[test]
    fn forwarded_value_quoting() {
        const CASES: &[(&str, &[u8], &[u8])] = &[
            ("token", b"https", b"https"),
            ("colon", b"a:1", b"\"a:1\""),
            ("ipv6 literal", b"[::1]:8", b"\"[::1]:8\""),
            ("escapes", b"a\"b\\c", b"\"a\\\"b\\\\c\""),
            ("empty", b"", b"\"\""),
        ];
        for (name, input, want) in CASES {
            let mut out = Vec::new();
            push_forwarded_value(&mut out, input);
            assert_eq!(out, *want, "{name}");
        }
    }

    #[test]
    fn ip_text_matches_display() {
        let table: &[IpAddr] = &[
            IpAddr::V4(Ipv4Addr::UNSPECIFIED),
            IpAddr::V4(Ipv4Addr::BROADCAST),
            IpAddr::V4(Ipv4Addr::new(10, 0, 9, 100)),
            IpAddr::V6(Ipv6Addr::UNSPECIFIED),
            IpAddr::V6(Ipv6Addr::LOCALHOST),
            IpAddr::V6(Ipv6Addr::new(1, 0, 0, 0, 0, 0, 0, 0)),
            IpAddr::V6(Ipv6Addr::new(1, 0, 1, 0, 0, 1, 0, 0)),
            IpAddr::V6(Ipv6Addr::new(0, 0, 1, 0, 0, 0, 0, 1)),
            IpAddr::V6(Ipv6Addr::new(0, 0, 0, 0, 0, 0, 0xc000, 0x0201)),
            IpAddr::V6(Ipv6Addr::new(0, 0, 0, 0, 0, 0xffff, 0, 0)),
            IpAddr::V6(Ipv6Addr::new(0x64, 0xff9b, 0, 0, 0, 0, 0xc000, 0x0201)),
            IpAddr::V6(Ipv6Addr::new(0xffff, 0xffff, 0xffff, 0xffff, 0xffff, 0xffff, 0xffff, 0xffff)),
            IpAddr::V6(Ipv6Addr::new(0xfe80, 0, 0, 0, 0xa, 0xbc, 0xdef, 0x1000)),
        ];
        let mut rng = XorShift(0x5eed_1234_abcd_ef01);
        let random = (0..20_000).map(|_| {
            let r = rng.next_u64();
            if r.is_multiple_of(4) {
                return IpAddr::V4(Ipv4Addr::from((r >> 32) as u32));
            }
            // Mostly zero segments, so that runs of every length and position occur.
            let segments: [u16; 8] = std::array::from_fn(|i| {
                let s = rng.next_u64();
                if (r >> (2 * i)) & 3 == 0 { (s >> (8 * (i % 4))) as u16 } else { 0 }
            });
            IpAddr::V6(Ipv6Addr::from(segments))
        });
        for ip in table.iter().copied().chain(random) {
            assert_eq!(IpText::new(ip).as_bytes(), ip.to_string().as_bytes(), "{ip:?}");
        }
    }

    #[test]
    fn fuzz_no_panic() {
        const ALPHABET: &[u8] = b"Connection: X-Forwarded-For Forwarded Host Content-Length 0123456789,:;\r\n\"[]";
        let mut rng = XorShift(0x0123_4567_89ab_cdef);
        let mut head = RequestHead::new();
        let mut buf = Vec::new();
        let mut out = Vec::new();
        for _ in 0..10_000 {
            rng.fill(&mut buf, ALPHABET);
            buf.splice(0..0, b"POST /p HTTP/1.1\r\nHost: h\r\n".iter().copied());
            buf.extend_from_slice(b"\r\n\r\n");
            if let Ok(Some(_)) = head.parse(&buf, &Limits::default()) {
                out.clear();
                write_upstream_request(&head, &FWD, &mut out);
                assert!(out.ends_with(b"\r\n\r\n"));
            }
        }
    }
}
