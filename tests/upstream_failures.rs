//! Backends that are down, slow or gone get clear answers, and the others
//! keep serving.

mod common;

use std::time::Duration;

use common::{Backend, TestProxy, dead_addr};

#[test]
fn down_backend_is_skipped_without_errors() {
    let up = Backend::start("up");
    let proxy = TestProxy::start(&[dead_addr(), up.addr()]);
    for i in 0..20 {
        let r = proxy.get("/");
        assert_eq!((r.status, r.text()), (200, "up".to_owned()), "request {i}");
    }
    let status = proxy.pool_status();
    assert!(!status[0].up, "the dead backend is marked down: {status:?}");
    assert!(status[1].up);
}

#[test]
fn every_backend_down_answers_502_then_503() {
    let proxy = TestProxy::start(&[dead_addr(), dead_addr()]);
    let first = proxy.get("/");
    assert_eq!(first.status, 502, "connect failed on every candidate");
    assert!(first.text().contains("502"));
    assert!(common::wait_until(Duration::from_secs(2), || proxy.pool_status().iter().all(|b| !b.up)));
    // The workers see the pool's new snapshot a moment later (it is a
    // message): until then a request may still try, and fail, to connect.
    let mut seen = Vec::new();
    let answered_503 = common::wait_until(Duration::from_secs(2), || {
        let status = proxy.get("/").status;
        seen.push(status);
        status == 503
    });
    assert!(answered_503, "no healthy backend left must answer 503: {seen:?}");
    assert!(seen.iter().all(|s| *s == 502 || *s == 503), "{seen:?}");
}

#[test]
fn backend_back_after_backoff_is_used_again() {
    let backend = Backend::start("phoenix");
    backend.stop();
    let proxy = TestProxy::start_with(&[backend.addr()], |s| s.upstream.down_backoff = Duration::from_millis(300));
    assert_eq!(proxy.get("/").status, 502);
    backend.restart().expect("restart on the same port");
    assert!(
        common::wait_until(Duration::from_secs(3), || proxy.get("/").status == 200),
        "restored backend never served again"
    );
}

#[test]
fn slow_backend_answers_504() {
    let backend = Backend::start("slow");
    let proxy = TestProxy::start_with(&[backend.addr()], |s| s.upstream.response_timeout = Duration::from_millis(300));
    let r = proxy.get("/slow?ms=2000");
    assert_eq!(r.status, 504);
    assert!(r.text().contains("504"));
    // A fast request afterwards still works (on a new upstream connection).
    assert_eq!(proxy.get("/").status, 200);
}

#[test]
fn a_backend_that_takes_no_body_answers_504_after_send_timeout() {
    let b = Backend::start("s");
    let proxy = TestProxy::start_with(&[b.addr()], |s| s.upstream.send_timeout = Duration::from_millis(500));
    let mut c = proxy.client();
    // The backend reads the head only. The client sends until the proxy
    // takes no more (its writes to the backend wait), then reads.
    c.send(
        format!("POST /stall-body HTTP/1.1\r\nHost: localhost\r\nContent-Length: {}\r\n\r\n", 1u64 << 30).as_bytes(),
    )
    .expect("send head");
    let sent = c.send_until_stalled(1 << 30, Duration::from_millis(200));
    assert!(sent < 1 << 30, "the proxy took the whole body");
    let answer = c.read_until_closed_ignoring_unsent();
    let answer = String::from_utf8_lossy(&answer);
    assert!(answer.starts_with("HTTP/1.1 504 "), "after {sent} bytes: {answer:?}");
    assert!(answer.contains("\r\nConnection: close\r\n"), "{answer:?}");
    assert_eq!(proxy.get("/").text(), "s", "the proxy serves on");
}

#[test]
fn backend_dying_mid_response_closes_the_client_connection() {
    let backend = Backend::start("b");
    let proxy = TestProxy::start(&[backend.addr()]);
    let mut c = proxy.client();
    c.send(b"GET /bytes?n=50000000 HTTP/1.1\r\nHost: localhost\r\n\r\n").expect("send");
    let mut got = 0usize;
    let mut stopped = false;
    let result = c.read_response_streaming(|chunk| {
        got += chunk.len();
        if got > 1_000_000 && !stopped {
            stopped = true;
            backend.stop();
        }
    });
    assert!(result.is_err(), "a truncated body must not look complete");
    assert!(got < 50_000_000);
}
