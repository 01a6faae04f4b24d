//! Requests are balanced across backends and reuse pooled upstream connections.

mod common;

use std::collections::HashMap;
use std::time::Duration;

use common::{Backend, BackendOptions, TestProxy, TlsClient, pattern_checksum};
use terminus_actors::{BackendSettings, StrategyKind};

fn count_backends(proxy: &TestProxy, n: usize) -> HashMap<String, usize> {
    let mut seen = HashMap::new();
    let mut c = proxy.client();
    for _ in 0..n {
        c.send(b"GET / HTTP/1.1\r\nHost: localhost\r\n\r\n").expect("send");
        let r = c.read_response(false).expect("response");
        assert_eq!(r.status, 200);
        *seen.entry(r.text()).or_default() += 1;
    }
    seen
}

#[test]
fn round_robin_alternates_between_backends() {
    let (a, b) = (Backend::start("a"), Backend::start("b"));
    let proxy = TestProxy::start(&[a.addr(), b.addr()]);
    let mut c = proxy.client();
    let mut order = Vec::new();
    for _ in 0..6 {
        c.send(b"GET / HTTP/1.1\r\nHost: localhost\r\n\r\n").expect("send");
        order.push(c.read_response(false).expect("response").text());
    }
    assert_eq!(order, ["a", "b", "a", "b", "a", "b"]);
}

#[test]
fn weighted_round_robin_follows_weights() {
    let (a, b) = (Backend::start("a"), Backend::start("b"));
    let proxy = TestProxy::start_with(&[], |s| {
        s.upstream.strategy = StrategyKind::WeightedRoundRobin;
        s.upstream.backends =
            vec![BackendSettings { address: a.addr(), weight: 3 }, BackendSettings { address: b.addr(), weight: 1 }];
    });
    let seen = count_backends(&proxy, 40);
    assert_eq!(seen.get("a"), Some(&30), "{seen:?}");
    assert_eq!(seen.get("b"), Some(&10), "{seen:?}");
}

#[test]
fn upstream_connections_are_reused() {
    let backend = Backend::start("only");
    let proxy = TestProxy::start(&[backend.addr()]);
    // Sequential requests over several client connections share one
    // pooled upstream connection.
    for _ in 0..5 {
        let mut c = proxy.client();
        for _ in 0..10 {
            c.send(b"GET / HTTP/1.1\r\nHost: localhost\r\n\r\n").expect("send");
            assert_eq!(c.read_response(false).expect("response").status, 200);
        }
    }
    assert_eq!(backend.requests(), 50);
    assert_eq!(backend.connections(), 1, "all 50 requests should ride one upstream connection");
}

/// Three requests (each sent by `send`, answered 200 with `expect`), each
/// after the backend silently closed the pooled connection of the one
/// before: every one needs a fresh connection, and none sees an error.
fn three_requests_after_idle_closes(mut send: impl FnMut(&mut TlsClient), expect: &str) {
    let backend = Backend::start_with(
        "stale",
        BackendOptions { close_idle_after: Some(Duration::from_millis(100)), ..Default::default() },
    );
    let proxy = TestProxy::start(&[backend.addr()]);
    let mut c = proxy.client();
    for round in 0..3 {
        send(&mut c);
        let r = c.read_response(false).expect("response");
        assert_eq!((r.status, r.text().as_str()), (200, expect), "round {round}");
        std::thread::sleep(Duration::from_millis(300));
    }
    assert_eq!(backend.requests(), 3);
    assert_eq!(backend.connections(), 3, "each request after an idle close needs a fresh connection");
}

#[test]
fn a_pooled_connection_the_backend_closed_is_not_reused() {
    three_requests_after_idle_closes(|c| c.send(b"GET / HTTP/1.1\r\nHost: localhost\r\n\r\n").expect("send"), "stale");
}

#[test]
fn a_pooled_connection_the_backend_closed_is_not_used_for_an_upload() {
    // A body streamed after the head cannot be replayed on another
    // connection: the closed one must be found out before it is used.
    let len = 256 * 1024;
    let head = format!("POST /upload HTTP/1.1\r\nHost: localhost\r\nContent-Length: {len}\r\n\r\n");
    let expect = format!("{len} {}", pattern_checksum(len));
    three_requests_after_idle_closes(|c| c.send_streaming(head.as_bytes(), len, 16 * 1024).expect("send"), &expect);
}

#[test]
fn idle_pooled_connections_expire() {
    let backend = Backend::start("b");
    let proxy = TestProxy::start_with(&[backend.addr()], |s| s.upstream.pool_idle_timeout = Duration::from_millis(300));
    assert_eq!(proxy.get("/").status, 200);
    assert!(common::wait_until(Duration::from_secs(1), || backend.open_connections() == 1));
    // The sweeper closes it after the idle timeout (checked every second).
    assert!(
        common::wait_until(Duration::from_secs(5), || backend.open_connections() == 0),
        "pooled connection still open after its idle timeout"
    );
}

#[test]
fn round_robin_takes_turns_across_workers() {
    let (a, b) = (Backend::start("a"), Backend::start("b"));
    let proxy = TestProxy::start_with(&[a.addr(), b.addr()], |s| s.runtime.workers = 2);
    // Each request on a new connection, whichever worker accepts it.
    let order: Vec<String> = (0..8).map(|_| proxy.get("/").text()).collect();
    assert_eq!(order, ["a", "b", "a", "b", "a", "b", "a", "b"]);
}
