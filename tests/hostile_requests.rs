//! Malformed and ambiguous requests get a clear status, the connection is
//! closed, and nothing reaches the backend.

mod common;

use common::{Backend, TestProxy};

/// (name, raw request, expected status)
const REJECTED: &[(&str, &[u8], u16)] = &[
    (
        "CL and TE together",
        b"POST /upload HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
        400,
    ),
    (
        "conflicting CL",
        b"POST /upload HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\nhello!",
        400,
    ),
    ("CL list with different values", b"POST /upload HTTP/1.1\r\nHost: a\r\nContent-Length: 5, 6\r\n\r\nhello!", 400),
    ("signed CL", b"POST /upload HTTP/1.1\r\nHost: a\r\nContent-Length: +5\r\n\r\nhello", 400),
    ("hex CL", b"POST /upload HTTP/1.1\r\nHost: a\r\nContent-Length: 0x5\r\n\r\nhello", 400),
    ("TE not ending in chunked", b"POST /upload HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked, gzip\r\n\r\n", 400),
    ("unknown transfer coding", b"POST /upload HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: gzip, chunked\r\n\r\n", 501),
    ("TE in HTTP/1.0", b"POST /upload HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n", 400),
    ("obs-fold", b"GET / HTTP/1.1\r\nHost: a\r\nX-Long: one\r\n two\r\n\r\n", 400),
    ("bare LF", b"GET / HTTP/1.1\nHost: a\n\n", 400),
    ("bare CR in value", b"GET / HTTP/1.1\r\nHost: a\r\nX-A: b\rc\r\n\r\n", 400),
    ("NUL in value", b"GET / HTTP/1.1\r\nHost: a\r\nX-A: b\0c\r\n\r\n", 400),
    ("control byte in name", b"GET / HTTP/1.1\r\nHost: a\r\nX\x01A: b\r\n\r\n", 400),
    ("space before colon", b"GET / HTTP/1.1\r\nHost: a\r\nX-A : b\r\n\r\n", 400),
    ("missing Host", b"GET / HTTP/1.1\r\nX-A: b\r\n\r\n", 400),
    ("duplicate Host", b"GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n", 400),
    ("absolute-form disagreeing with Host", b"GET http://evil.test/ HTTP/1.1\r\nHost: a\r\n\r\n", 400),
    ("space in target", b"GET /a b HTTP/1.1\r\nHost: a\r\n\r\n", 400),
    ("invalid method token", b"G(T / HTTP/1.1\r\nHost: a\r\n\r\n", 400),
    ("HTTP/2.0 version", b"GET / HTTP/2.0\r\nHost: a\r\n\r\n", 505),
    ("CONNECT", b"CONNECT a:443 HTTP/1.1\r\nHost: a:443\r\n\r\n", 501),
    (
        "bad chunk size",
        b"POST /upload HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\nhello\r\n0\r\n\r\n",
        400,
    ),
    (
        "chunk without CRLF after data",
        b"POST /upload HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhelloXX0\r\n\r\n",
        400,
    ),
];

#[test]
fn malformed_requests_are_rejected_and_never_forwarded() {
    let backend = Backend::start("b");
    let proxy = TestProxy::start(&[backend.addr()]);
    for (name, raw, status) in REJECTED {
        let mut c = proxy.client();
        c.send(raw).unwrap_or_else(|e| panic!("{name}: send: {e}"));
        let r = c.read_response(false).unwrap_or_else(|e| panic!("{name}: no response: {e}"));
        assert_eq!(r.status, *status, "{name}");
        assert_eq!(r.header("connection"), Some("close"), "{name}");
        assert!(c.is_closed(), "{name}: connection left open");
    }
    // Chunked bodies are checked as they stream: those requests reached the
    // backend with a valid head, but never with the bad bytes.
    for rec in backend.requests_log() {
        assert_eq!(rec.path(), "/upload", "only the streamed chunked cases may reach the backend");
    }
}

#[test]
fn oversized_heads_get_431() {
    let backend = Backend::start("b");
    let proxy = TestProxy::start_with(&[backend.addr()], |s| {
        s.http.max_head_bytes = 4096;
        s.http.max_headers = 20;
    });
    let big_value = format!("GET / HTTP/1.1\r\nHost: a\r\nX-Big: {}\r\n\r\n", "v".repeat(8000));
    let many = format!("GET / HTTP/1.1\r\nHost: a\r\n{}\r\n", "X-N: 1\r\n".repeat(30));
    for (name, raw) in [("long header", big_value), ("too many headers", many)] {
        let mut c = proxy.client();
        c.send(raw.as_bytes()).expect("send");
        let r = c.read_response(false).expect("response");
        assert_eq!(r.status, 431, "{name}");
        assert!(c.is_closed(), "{name}");
    }
    assert_eq!(backend.requests(), 0);
    // Just under the limits is fine.
    let mut c = proxy.client();
    c.send(format!("GET / HTTP/1.1\r\nHost: a\r\nX-Ok: {}\r\n\r\n", "v".repeat(3000)).as_bytes()).expect("send");
    assert_eq!(c.read_response(false).expect("response").status, 200);
}

#[test]
fn slow_request_heads_get_408() {
    let backend = Backend::start("b");
    let proxy = TestProxy::start_with(&[backend.addr()], |s| {
        s.http.header_timeout = std::time::Duration::from_millis(300);
    });
    let mut c = proxy.client();
    c.send(b"GET / HTTP/1.1\r\nHost: a\r\n").expect("send partial head");
    let r = c.read_response(false).expect("response");
    assert_eq!(r.status, 408);
    assert!(c.is_closed());
    assert_eq!(backend.requests(), 0);
}

#[test]
fn a_bad_request_does_not_disturb_other_connections() {
    let backend = Backend::start("b");
    let proxy = TestProxy::start(&[backend.addr()]);
    let mut good = proxy.client();
    good.send(b"GET / HTTP/1.1\r\nHost: a\r\n\r\n").expect("send");
    assert_eq!(good.read_response(false).expect("response").status, 200);
    let mut bad = proxy.client();
    bad.send(b"GET / HTTP/1.1\r\nHost: a\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n").expect("send");
    assert_eq!(bad.read_response(false).expect("response").status, 400);
    good.send(b"GET / HTTP/1.1\r\nHost: a\r\n\r\n").expect("send");
    assert_eq!(good.read_response(false).expect("response").text(), "b");
}
