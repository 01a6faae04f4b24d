//! Limits with clear answers: 413 for bodies over `http.max_body_bytes`,
//! 414 for targets over `http.max_uri_bytes`, 429 with `Retry-After` over
//! `listener.requests_per_second`, connections refused over
//! `listener.max_connections_per_ip` or by the CIDR lists, and a client
//! that stops reading cut off after `http.send_timeout`.

mod common;

use std::time::{Duration, Instant};

use common::{Backend, TestProxy, TlsClient};

#[test]
fn content_length_over_the_body_limit_gets_413_before_forwarding() {
    let backend = Backend::start("b");
    let proxy = TestProxy::start_with(&[backend.addr()], |s| s.http.max_body_bytes = 1000);
    let mut c = proxy.client();
    c.send(b"POST /upload HTTP/1.1\r\nHost: a\r\nContent-Length: 1001\r\n\r\n").expect("send head");
    let r = c.read_response(false).expect("response");
    assert_eq!(r.status, 413);
    assert_eq!(r.header("connection"), Some("close"));
    assert!(c.is_closed());
    assert_eq!(backend.requests(), 0, "nothing reaches the backend");
    // At the limit is fine.
    let mut c = proxy.client();
    c.send_streaming(b"POST /upload HTTP/1.1\r\nHost: a\r\nContent-Length: 1000\r\n\r\n", 1000, 300).expect("send");
    let r = c.read_response(false).expect("response");
    assert_eq!(r.status, 200);
    assert!(r.text().starts_with("1000 "), "backend got the whole body: {}", r.text());
}

#[test]
fn chunked_body_growing_past_the_limit_is_cut_off_with_413() {
    let backend = Backend::start("b");
    let proxy = TestProxy::start_with(&[backend.addr()], |s| s.http.max_body_bytes = 1000);
    let mut c = proxy.client();
    let head = b"POST /upload HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n";
    // The proxy may close before the whole body is written.
    let _ = c.send_streaming_chunked(head, 3000, 400, &[]);
    let r = c.read_response(false).expect("response");
    assert_eq!(r.status, 413);
    assert!(c.is_closed());
    // The truncated upload never completes at the backend, and the next
    // request (on a fresh upstream connection) is served normally.
    assert!(backend.requests_log().iter().all(|rec| rec.body_len <= 1000), "an over-limit body got through");
    let mut c = proxy.client();
    c.send_streaming_chunked(head, 900, 400, &[]).expect("send");
    let r = c.read_response(false).expect("response");
    assert_eq!(r.status, 200);
    assert!(r.text().starts_with("900 "), "{}", r.text());
}

#[test]
fn long_targets_get_414() {
    let backend = Backend::start("b");
    let proxy = TestProxy::start_with(&[backend.addr()], |s| {
        s.http.max_uri_bytes = 100;
        s.http.max_head_bytes = 2048;
    });
    let long = format!("/{}", "a".repeat(150));
    let longer_than_head = format!("/{}", "a".repeat(5000));
    for (name, path) in [("over uri limit", &long), ("over head limit too", &longer_than_head)] {
        let mut c = proxy.client();
        // The proxy may answer and close before the whole line is written.
        let _ = c.send(format!("GET {path} HTTP/1.1\r\nHost: a\r\n\r\n").as_bytes());
        let r = c.read_response(false).unwrap_or_else(|e| panic!("{name}: {e}"));
        assert_eq!(r.status, 414, "{name}");
        assert!(c.is_closed(), "{name}");
    }
    assert_eq!(backend.requests(), 0);
    // A long header (not target) over the head limit is still 431.
    let mut c = proxy.client();
    let _ = c.send(format!("GET / HTTP/1.1\r\nHost: a\r\nX: {}\r\n\r\n", "v".repeat(3000)).as_bytes());
    assert_eq!(c.read_response(false).expect("response").status, 431);
    assert_eq!(proxy.get(&format!("/?{}", "a".repeat(90))).status, 200);
}

#[test]
fn request_rate_over_the_bucket_gets_429_with_retry_after() {
    let backend = Backend::start("b");
    let proxy = TestProxy::start_with(&[backend.addr()], |s| {
        s.listener.requests_per_second = 1.0;
        s.listener.request_burst = 3;
    });
    let mut c = proxy.client();
    for i in 0..3 {
        c.send(b"GET / HTTP/1.1\r\nHost: a\r\n\r\n").expect("send");
        assert_eq!(c.read_response(false).expect("response").status, 200, "request {i} within the burst");
    }
    c.send(b"GET / HTTP/1.1\r\nHost: a\r\n\r\n").expect("send");
    let r = c.read_response(false).expect("response");
    assert_eq!(r.status, 429);
    assert_eq!(r.header("retry-after"), Some("1"));
    assert!(c.is_closed());
    assert_eq!(backend.requests(), 3);
    // After the advertised wait the client is served again.
    std::thread::sleep(Duration::from_millis(1100));
    assert_eq!(proxy.get("/").status, 200);
}

#[test]
fn connections_over_the_per_ip_limit_are_refused() {
    let backend = Backend::start("b");
    let proxy = TestProxy::start_with(&[backend.addr()], |s| s.listener.max_connections_per_ip = 2);
    let mut a = proxy.client();
    let mut b = proxy.client();
    for c in [&mut a, &mut b] {
        c.send(b"GET / HTTP/1.1\r\nHost: a\r\n\r\n").expect("send");
        assert_eq!(c.read_response(false).expect("response").status, 200);
    }
    assert!(TlsClient::connect(proxy.addr(), proxy.tls.clone()).is_err(), "third connection refused");
    drop(a);
    // The slot frees once the proxy sees the close.
    let deadline = Instant::now() + Duration::from_secs(5);
    let mut c = loop {
        match TlsClient::connect(proxy.addr(), proxy.tls.clone()) {
            Ok(c) => break c,
            Err(_) if Instant::now() < deadline => std::thread::sleep(Duration::from_millis(50)),
            Err(e) => panic!("slot never freed: {e}"),
        }
    };
    c.send(b"GET / HTTP/1.1\r\nHost: a\r\n\r\n").expect("send");
    assert_eq!(c.read_response(false).expect("response").status, 200);
    b.send(b"GET / HTTP/1.1\r\nHost: a\r\n\r\n").expect("send");
    assert_eq!(b.read_response(false).expect("response").status, 200, "existing connections unaffected");
}

#[test]
fn cidr_lists_decide_who_may_connect() {
    let backend = Backend::start("b");
    // (allow, deny, loopback client admitted)
    let cases: &[(&[&str], &[&str], bool)] = &[
        (&[], &["127.0.0.0/8"], false),
        (&["10.0.0.0/8"], &[], false),
        (&["127.0.0.1/32"], &[], true),
        (&["127.0.0.0/8"], &["127.0.0.1"], false),
        (&[], &["::1/128", "10.0.0.0/8"], true),
    ];
    for (allow, deny, admitted) in cases {
        let proxy = TestProxy::start_with(&[backend.addr()], |s| {
            s.listener.allow = allow.iter().map(|s| s.to_string()).collect();
            s.listener.deny = deny.iter().map(|s| s.to_string()).collect();
        });
        let got = TlsClient::connect(proxy.addr(), proxy.tls.clone()).is_ok();
        assert_eq!(got, *admitted, "allow={allow:?} deny={deny:?}");
    }
}

/// A client that asks for a large body and reads nothing is cut off once
/// the proxy's writes have waited `http.send_timeout`: it gets what the
/// socket buffers held, then the end, not the whole body.
#[test]
fn a_client_that_stops_reading_is_cut_off_after_send_timeout() {
    let backend = Backend::start("b");
    let proxy = TestProxy::start_with(&[backend.addr()], |s| s.http.send_timeout = Duration::from_secs(1));
    let mut c = proxy.client();
    let n: u64 = 256 * 1024 * 1024;
    c.send(format!("GET /bytes?n={n} HTTP/1.1\r\nHost: a\r\n\r\n").as_bytes()).expect("send");
    std::thread::sleep(Duration::from_secs(4));
    let stream = c.get_mut();
    let mut buf = vec![0u8; 64 * 1024];
    let mut got = 0u64;
    while let Ok(k @ 1..) = std::io::Read::read(stream, &mut buf) {
        got += k as u64;
    }
    assert!(got < n / 4, "a client that read nothing for 4 s still got {got} of {n} bytes");
}
