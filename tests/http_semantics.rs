//! HTTP/1.1 behaviour through the proxy: keep-alive, pipelining, bodiless
//! responses, 1xx, HTTP/1.0 clients, forwarded and hop-by-hop headers.

mod common;

use common::{Backend, PlainClient, TestProxy, checksum, pattern_checksum};

fn proxy_with_backend(name: &str) -> (Backend, TestProxy) {
    let b = Backend::start(name);
    let p = TestProxy::start(&[b.addr()]);
    (b, p)
}

#[test]
fn pipelined_requests_are_answered_in_order() {
    let (b, proxy) = proxy_with_backend("p");
    let mut c = proxy.client();
    c.send(
        b"GET /status/201 HTTP/1.1\r\nHost: localhost\r\n\r\n\
          GET /status/202 HTTP/1.1\r\nHost: localhost\r\n\r\n\
          POST /upload HTTP/1.1\r\nHost: localhost\r\nContent-Length: 5\r\n\r\nhello\
          GET /status/203 HTTP/1.1\r\nHost: localhost\r\n\r\n",
    )
    .expect("send");
    let statuses: Vec<u16> = (0..4).map(|_| c.read_response(false).expect("response").status).collect();
    assert_eq!(statuses, [201, 202, 200, 203]);
    assert_eq!(b.requests(), 4);
    assert_eq!(b.requests_log()[2].body_len, 5);
}

#[test]
fn head_204_and_304_have_no_body() {
    let (_b, proxy) = proxy_with_backend("h");
    let mut c = proxy.client();
    c.send(b"HEAD /bytes?n=1000 HTTP/1.1\r\nHost: localhost\r\n\r\n").expect("send");
    let head = c.read_response(true).expect("HEAD response");
    assert_eq!(head.status, 200);
    assert_eq!(head.header("content-length"), Some("1000"));
    assert!(head.body.is_empty());
    for (path, status) in [("/status/204", 204), ("/status/304", 304)] {
        c.send(format!("GET {path} HTTP/1.1\r\nHost: localhost\r\n\r\n").as_bytes()).expect("send");
        let r = c.read_response(false).expect("response");
        assert_eq!(r.status, status);
        assert!(r.body.is_empty());
    }
    // The connection is still in sync after the bodiless responses.
    c.send(b"GET / HTTP/1.1\r\nHost: localhost\r\n\r\n").expect("send");
    assert_eq!(c.read_response(false).expect("response").text(), "h");
}

#[test]
fn expect_100_continue_is_relayed() {
    let (b, proxy) = proxy_with_backend("c");
    let mut c = proxy.client();
    c.send(b"POST /upload HTTP/1.1\r\nHost: localhost\r\nContent-Length: 11\r\nExpect: 100-continue\r\n\r\n")
        .expect("send head");
    let interim = c.read_response(false).expect("interim response");
    assert_eq!(interim.status, 100, "the backend's 100 Continue reaches the client before the body is sent");
    c.send(b"hello world").expect("send body");
    let r = c.read_response(false).expect("final response");
    assert_eq!(r.status, 200);
    assert_eq!(r.text(), format!("11 {}", checksum(b"hello world")));
    assert_eq!(b.last_request().expect("recorded").header("expect"), Some("100-continue"));
}

#[test]
fn expectation_refused_by_backend_is_relayed_and_closes() {
    let (_b, proxy) = proxy_with_backend("c");
    let mut c = proxy.client();
    c.send(b"POST /reject-expect HTTP/1.1\r\nHost: localhost\r\nContent-Length: 5\r\nExpect: 100-continue\r\n\r\n")
        .expect("send head");
    let r = c.read_response(false).expect("final response");
    assert_eq!(r.status, 417);
    assert_eq!(r.header("connection"), Some("close"));
    assert!(c.is_closed());
}

/// A request with a large body of which only the first 64 KiB are sent:
/// framed by `Content-Length` or chunked.
fn send_partial_upload(c: &mut common::HttpConn<impl common::Transport>, path: &str, chunked: bool) {
    let piece = vec![b'x'; 64 * 1024];
    if chunked {
        let head = format!("POST {path} HTTP/1.1\r\nHost: localhost\r\nTransfer-Encoding: chunked\r\n\r\n");
        c.send(head.as_bytes()).expect("send head");
        c.send(format!("{:x}\r\n", piece.len()).as_bytes()).expect("send chunk size");
    } else {
        let head = format!("POST {path} HTTP/1.1\r\nHost: localhost\r\nContent-Length: {}\r\n\r\n", 8 << 20);
        c.send(head.as_bytes()).expect("send head");
    }
    c.send(&piece).expect("send part of the body");
}

#[test]
fn a_backend_refusing_the_body_is_answered_at_once() {
    let (b, proxy) = proxy_with_backend("r");
    // The backend answers 413 without reading the body, then holds the
    // connection or closes it (a reset); the client is still to send most of
    // its body. The 413 reaches it, and the connection closes.
    for path in ["/refuse-body", "/refuse-body?then=close"] {
        for chunked in [false, true] {
            let mut c = proxy.client();
            send_partial_upload(&mut c, path, chunked);
            let r = c.read_response(false).expect("the backend's answer");
            assert_eq!((r.status, r.text().as_str()), (413, "body refused\n"), "{path} chunked={chunked}");
            assert_eq!(r.header("connection"), Some("close"), "{path} chunked={chunked}");
            assert!(c.is_closed(), "{path} chunked={chunked}: the client's body was not read to its end");
        }
    }
    assert_eq!(b.requests(), 4);
    assert_eq!(proxy.get("/").text(), "r", "the proxy serves on");
}

#[test]
fn an_early_answer_before_the_backend_closes_is_relayed() {
    let (_b, proxy) = proxy_with_backend("e");
    // 200 at once, then a close over the unread body: the answer is relayed
    // (not a 502), and the connection closes.
    for chunked in [false, true] {
        let mut c = proxy.client();
        send_partial_upload(&mut c, "/answer-early?then=close", chunked);
        let r = c.read_response(false).expect("the backend's answer");
        assert_eq!((r.status, r.text().as_str()), (200, "early"), "chunked={chunked}");
        assert_eq!(r.header("connection"), Some("close"));
        assert!(c.is_closed());
    }
}

#[test]
fn an_early_answer_is_relayed_when_the_close_fails_a_body_write() {
    let (_b, proxy) = proxy_with_backend("w");
    // The client sends until the proxy takes no more: its writes to the
    // backend (which answered 200 and reads nothing) are blocked when the
    // backend's reset comes, so a write fails before anything is read.
    let mut c = proxy.client();
    let head =
        format!("POST /answer-early?then=close HTTP/1.1\r\nHost: localhost\r\nContent-Length: {}\r\n\r\n", 1u64 << 30);
    c.send(head.as_bytes()).expect("send head");
    let sent = c.send_until_stalled(1 << 30, std::time::Duration::from_millis(200));
    let answer = String::from_utf8_lossy(&c.read_until_closed_ignoring_unsent()).into_owned();
    assert!(answer.starts_with("HTTP/1.1 200 "), "after {sent} bytes: {answer:?}");
    assert!(answer.contains("\r\nConnection: close\r\n") && answer.ends_with("early"), "{answer:?}");
}

#[test]
fn early_hints_are_relayed_before_the_final_response() {
    let (_b, proxy) = proxy_with_backend("e");
    let mut c = proxy.client();
    c.send(b"GET /early-hints HTTP/1.1\r\nHost: localhost\r\n\r\n").expect("send");
    let hints = c.read_response(false).expect("103");
    assert_eq!(hints.status, 103);
    assert_eq!(hints.header("link"), Some("</style.css>; rel=preload"));
    let r = c.read_response(false).expect("200");
    assert_eq!((r.status, r.text().as_str()), (200, "ok"));
}

#[test]
fn http10_clients_are_served() {
    let (b, proxy) = proxy_with_backend("old");
    // No Host, no keep-alive: one response, then the proxy closes.
    let mut c = proxy.client();
    c.send(b"GET / HTTP/1.0\r\n\r\n").expect("send");
    let r = c.read_response(false).expect("response");
    assert_eq!((r.status, r.text().as_str()), (200, "old"));
    assert!(c.is_closed(), "HTTP/1.0 without keep-alive closes");
    let forwarded = b.last_request().expect("recorded");
    assert_eq!(forwarded.version, "HTTP/1.1", "upstream requests are HTTP/1.1");
    assert_eq!(forwarded.header("host"), Some(b.addr().to_string().as_str()));

    // Keep-alive on request; a chunked upstream body is de-chunked.
    let mut c = proxy.client();
    c.send(b"GET / HTTP/1.0\r\nConnection: keep-alive\r\n\r\n").expect("send");
    let r = c.read_response(false).expect("response");
    assert_eq!(r.status, 200);
    assert_eq!(r.header("connection"), Some("keep-alive"));
    c.send(b"GET /chunked?n=3000 HTTP/1.0\r\nConnection: keep-alive\r\n\r\n").expect("send");
    let r = c.read_response(false).expect("response");
    assert_eq!(r.body.len(), 3000);
    assert!(r.header("transfer-encoding").is_none(), "no chunked framing for HTTP/1.0");
}

#[test]
fn chunked_bodies_with_trailers_pass_both_ways() {
    let (b, proxy) = proxy_with_backend("t");
    let mut c = proxy.client();
    c.send_streaming_chunked(
        b"POST /upload HTTP/1.1\r\nHost: localhost\r\nTransfer-Encoding: chunked\r\nTrailer: X-Sum\r\n\r\n",
        100_000,
        7_000,
        &[("X-Sum", "42")],
    )
    .expect("send chunked");
    let r = c.read_response(false).expect("response");
    assert_eq!(r.text(), format!("100000 {}", pattern_checksum(100_000)));
    let rec = b.last_request().expect("recorded");
    assert_eq!(rec.header("transfer-encoding"), Some("chunked"));
    assert_eq!(rec.trailers, [("X-Sum".to_owned(), "42".to_owned())]);

    c.send(b"GET /chunked?n=100000 HTTP/1.1\r\nHost: localhost\r\n\r\n").expect("send");
    let r = c.read_response(false).expect("response");
    assert_eq!(r.header("transfer-encoding"), Some("chunked"));
    assert_eq!(r.body.len(), 100_000);
    assert_eq!(r.trailer("x-checksum"), Some(checksum(&r.body).to_string().as_str()));
}

#[test]
fn close_delimited_responses_are_rechunked_for_http11() {
    let (_b, proxy) = proxy_with_backend("cd");
    let mut c = proxy.client();
    c.send(b"GET /close-delimited?n=50000 HTTP/1.1\r\nHost: localhost\r\n\r\n").expect("send");
    let r = c.read_response(false).expect("response");
    assert_eq!(r.body.len(), 50_000);
    assert_eq!(r.header("transfer-encoding"), Some("chunked"));
    // The client connection survives the backend's close.
    c.send(b"GET / HTTP/1.1\r\nHost: localhost\r\n\r\n").expect("send");
    assert_eq!(c.read_response(false).expect("response").text(), "cd");
}

#[test]
fn forwarded_headers_are_set_and_hop_by_hop_removed() {
    let (b, proxy) = proxy_with_backend("f");
    let mut c = proxy.client();
    c.send(
        b"GET /echo HTTP/1.1\r\nHost: example.test\r\nX-First: 1\r\nconnection: X-Secret, keep-alive\r\n\
          X-Secret: drop me\r\nKeep-Alive: timeout=5\r\nTE: trailers\r\nUpgrade: websocket\r\n\
          Proxy-Authorization: Basic Zm9v\r\nX-Forwarded-For: 203.0.113.7\r\nx-MiXeD-CaSe: kept\r\n\
          X-Forwarded-Proto: http\r\n\r\n",
    )
    .expect("send");
    let r = c.read_response(false).expect("response");
    assert_eq!(r.status, 200);
    let rec = b.last_request().expect("recorded");
    let names: Vec<&str> = rec.headers.iter().map(|(k, _)| k.as_str()).collect();
    for gone in ["connection", "x-secret", "keep-alive", "te", "upgrade", "proxy-authorization"] {
        assert!(rec.header(gone).is_none(), "{gone} must not be forwarded: {names:?}");
    }
    assert_eq!(rec.header("x-forwarded-for"), Some("203.0.113.7, 127.0.0.1"));
    assert_eq!(rec.headers_named("x-forwarded-proto"), ["https"]);
    assert_eq!(rec.header("x-forwarded-host"), Some("example.test"));
    assert_eq!(rec.header("forwarded"), Some("for=127.0.0.1;proto=https;host=example.test"));
    // End-to-end headers keep their order and case.
    let pos = |n: &str| names.iter().position(|k| *k == n).unwrap_or_else(|| panic!("{n} missing: {names:?}"));
    assert!(pos("Host") < pos("X-First") && pos("X-First") < pos("x-MiXeD-CaSe"), "{names:?}");
}

#[test]
fn via_header_is_optional() {
    let b = Backend::start("v");
    let proxy = TestProxy::start_with(&[b.addr()], |s| s.http.via = true);
    let r = proxy.get("/");
    assert_eq!(r.header("via"), Some("1.1 terminus"));
    assert_eq!(b.last_request().expect("recorded").header("via"), Some("1.1 terminus"));
}

#[test]
fn tls12_and_alpn_are_negotiated() {
    let (_b, proxy) = proxy_with_backend("tls");
    let c =
        common::TlsClient::connect(proxy.addr(), common::client_config_tls12(&proxy.certs.ca_der)).expect("TLS 1.2");
    assert_eq!(c.protocol_version(), Some(rustls::ProtocolVersion::TLSv1_2));
    assert_eq!(c.alpn().as_deref(), Some(&b"http/1.1"[..]));
    let c = proxy.client();
    assert_eq!(c.protocol_version(), Some(rustls::ProtocolVersion::TLSv1_3));
}

#[test]
fn plain_http_and_slow_handshakes_are_cut_off() {
    let b = Backend::start("x");
    let proxy =
        TestProxy::start_with(&[b.addr()], |s| s.listener.handshake_timeout = std::time::Duration::from_millis(300));
    // Plain HTTP on the TLS port: a plain 400 that says so, then the close.
    let mut c = PlainClient::connect(proxy.addr()).expect("tcp");
    c.send(b"GET / HTTP/1.1\r\nHost: localhost\r\n\r\n").expect("send");
    let r = c.read_response(false).expect("a plain HTTP answer");
    assert_eq!(r.status, 400);
    assert!(r.text().contains("this port speaks HTTPS"), "{}", r.text());
    assert_eq!(r.header("connection"), Some("close"));
    assert!(c.is_closed());
    // A client that never starts its handshake is dropped at the deadline.
    let started = std::time::Instant::now();
    let mut idle = PlainClient::connect(proxy.addr()).expect("tcp");
    assert_eq!(idle.read_to_end().expect("closed by the proxy"), b"");
    assert!(started.elapsed() < std::time::Duration::from_secs(3));
    assert_eq!(b.requests(), 0);
}
