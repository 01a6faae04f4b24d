//! Retries follow the idempotency rules, circuit breakers answer 503 with
//! Retry-After, drained backends finish in-flight requests, panic mode
//! spreads load, and slow start ramps a returning backend.

mod chaos;
mod common;

use std::time::Duration;

use chaos::{ChaosBackend, Mode};
use common::TestProxy;
use terminus_actors::{DrainBackend, HealthState, StrategyKind, TransitionKind, WhyBackend};

fn send(proxy: &TestProxy, raw: &str) -> common::Response {
    let mut c = proxy.client();
    c.send(raw.as_bytes()).expect("send");
    c.read_response(false).expect("response")
}

const GET: &str = "GET / HTTP/1.1\r\nHost: localhost\r\n\r\n";
const POST: &str = "POST / HTTP/1.1\r\nHost: localhost\r\nContent-Length: 0\r\n\r\n";

#[test]
fn idempotent_requests_are_retried_elsewhere_and_posts_are_not() {
    let (bad, good) = (ChaosBackend::start("bad"), ChaosBackend::start("good"));
    let proxy = TestProxy::start_with(&[bad.addr(), good.addr()], |s| {
        s.upstream.response_timeout = Duration::from_millis(300);
        // No ejection: every request meets the bad backend in turn.
        s.upstream.outlier.consecutive_errors = 0;
    });
    // Round robin: requests alternate bad, good, bad, ...
    bad.set_mode(Mode::Fail);
    assert_eq!(send(&proxy, POST).status, 500, "a POST's 500 is relayed, not retried");
    assert_eq!(send(&proxy, POST).status, 200);
    for i in 0..4 {
        let r = send(&proxy, GET);
        assert_eq!((r.status, r.text()), (200, "good".to_owned()), "GET {i}: a 500 is retried on the other backend");
    }
    bad.set_mode(Mode::Hang);
    let before = bad.requests();
    assert_eq!(send(&proxy, POST).status, 504, "a POST that timed out is not retried");
    assert_eq!(send(&proxy, POST).status, 200);
    for i in 0..4 {
        assert_eq!(send(&proxy, GET).status, 200, "GET {i}: a timeout is retried");
    }
    assert!(bad.requests() >= before + 3, "the GETs did meet the hung backend");
}

#[test]
fn non_idempotent_retries_can_be_enabled() {
    let (bad, good) = (ChaosBackend::start("bad"), ChaosBackend::start("good"));
    bad.set_mode(Mode::Fail);
    let proxy = TestProxy::start_with(&[bad.addr(), good.addr()], |s| {
        s.upstream.retry.non_idempotent = true;
        s.upstream.outlier.consecutive_errors = 0;
    });
    for _ in 0..4 {
        assert_eq!(send(&proxy, POST).status, 200);
    }
}

#[test]
fn circuit_breaker_answers_503_with_retry_after() {
    let slow = ChaosBackend::start("slow");
    slow.set_delay(600);
    let proxy = TestProxy::start_with(&[slow.addr()], |s| {
        s.runtime.workers = 2;
        s.upstream.max_connections = 1;
    });
    let (addr, tls) = (proxy.addr(), proxy.tls.clone());
    let first = std::thread::spawn(move || common::https_get(addr, &tls, "/"));
    assert!(common::wait_until(Duration::from_secs(2), || slow.requests() == 1), "first request reached the backend");
    let second = proxy.get("/");
    assert_eq!(second.status, 503);
    assert_eq!(second.header("retry-after"), Some("1"));
    assert_eq!(first.join().expect("first").status, 200);
    let status = proxy.pool_status();
    assert_eq!(status[0].overflows, 1, "{status:?}");
    assert_eq!(proxy.get("/").status, 200, "the slot is free again");
}

#[test]
fn a_drained_backend_finishes_in_flight_requests_and_gets_no_new_ones() {
    let (a, b) = (ChaosBackend::start("a"), ChaosBackend::start("b"));
    a.set_delay(500);
    let proxy = TestProxy::start_with(&[a.addr(), b.addr()], |_| {});
    let (addr, tls) = (proxy.addr(), proxy.tls.clone());
    // Round robin: the first request goes to a, and takes 500 ms.
    let in_flight = std::thread::spawn(move || common::https_get(addr, &tls, "/"));
    assert!(common::wait_until(Duration::from_secs(2), || a.requests() == 1));
    let drained = futures_lite::future::block_on(proxy.pool().send(DrainBackend { addr: a.addr(), drain: true }));
    assert_eq!(drained.expect("pool answers"), Ok(()));
    assert!(common::wait_until(Duration::from_secs(1), || !proxy.pool_status()[0].up));
    let status = proxy.pool_status();
    assert_eq!((status[0].state, status[0].in_flight), (HealthState::Draining, 1), "{status:?}");
    for _ in 0..6 {
        assert_eq!(proxy.get("/").text(), "b");
    }
    let r = in_flight.join().expect("in-flight request");
    assert_eq!((r.status, r.text()), (200, "a".to_owned()), "the in-flight request finished");
    assert_eq!(a.requests(), 1);
    assert!(common::wait_until(Duration::from_secs(1), || proxy.pool_status()[0].in_flight == 0));
    let back = futures_lite::future::block_on(proxy.pool().send(DrainBackend { addr: a.addr(), drain: false }));
    assert_eq!(back.expect("pool answers"), Ok(()));
    assert!(common::wait_until(Duration::from_secs(1), || proxy.pool_status()[0].up));
    let unknown = "127.0.0.1:1".parse().expect("addr");
    let err = futures_lite::future::block_on(proxy.pool().send(DrainBackend { addr: unknown, drain: true }));
    assert!(err.expect("pool answers").is_err());
}

#[test]
fn panic_mode_balances_across_all_when_too_few_are_healthy() {
    let backends: Vec<ChaosBackend> = (0..4).map(|i| ChaosBackend::start(&format!("p{i}"))).collect();
    let addrs: Vec<_> = backends.iter().map(ChaosBackend::addr).collect();
    let proxy = TestProxy::start_with(&addrs, |s| {
        s.upstream.panic_threshold = 0.5;
        s.upstream.health.enabled = true;
        s.upstream.health.interval = Duration::from_millis(50);
        s.upstream.health.jitter = Duration::ZERO;
        s.upstream.health.fall = 1;
        s.upstream.outlier.consecutive_errors = 0;
        s.upstream.retry.max_retries = 3;
    });
    backends[0].set_mode(Mode::Fail);
    assert!(common::wait_until(Duration::from_secs(2), || !proxy.pool_status()[0].up), "p0 marked down");
    let why = futures_lite::future::block_on(proxy.pool().send(WhyBackend { key: "x".into() })).expect("answer");
    assert!(!why.panic && why.eligible == 3, "3 of 4 healthy is no panic: {why:?}");
    for b in &backends[1..3] {
        b.set_mode(Mode::Fail);
    }
    // 1 of 4 healthy < 50%: every backend is eligible again.
    assert!(
        common::wait_until(Duration::from_secs(2), || proxy.pool_status().iter().all(|s| s.up)),
        "{:?}",
        proxy.pool_status()
    );
    let status = proxy.pool_status();
    assert_eq!(status.iter().filter(|s| s.state == HealthState::Down).count(), 3, "{status:?}");
    let why = futures_lite::future::block_on(proxy.pool().send(WhyBackend { key: "x".into() })).expect("answer");
    assert!(why.panic && why.eligible == 4 && why.reason.contains("panic"), "{why:?}");
    // GETs still succeed: the 500s are retried (up to 3 times) elsewhere.
    let served: Vec<u16> = (0..8).map(|_| proxy.get("/").status).collect();
    assert_eq!(served, [200; 8]);
}

#[test]
fn a_returning_backend_ramps_up_its_weight() {
    let (a, b) = (ChaosBackend::start("a"), ChaosBackend::start("b"));
    let proxy = TestProxy::start_with(&[a.addr(), b.addr()], |s| {
        s.upstream.strategy = StrategyKind::WeightedRoundRobin;
        s.upstream.slow_start = Duration::from_secs(2);
        s.upstream.down_backoff = Duration::from_millis(200);
    });
    a.stop();
    assert_eq!(proxy.get("/").text(), "b", "the refused connect is retried on b");
    assert!(!proxy.pool_status()[0].up);
    a.restart();
    assert!(common::wait_until(Duration::from_secs(2), || proxy.pool_status()[0].up), "a restored");
    let ramping = proxy.pool_status()[0].clone();
    assert_eq!(ramping.state, HealthState::SlowStart, "{ramping:?}");
    assert!(ramping.weight_percent < 50, "{ramping:?}");
    // While ramping, a gets a small share.
    let early: Vec<String> = (0..20).map(|_| proxy.get("/").text()).collect();
    let early_a = early.iter().filter(|n| n.as_str() == "a").count();
    assert!(early_a <= 7, "a got {early_a} of 20 early on");
    assert!(
        common::wait_until(Duration::from_secs(4), || proxy.pool_status()[0].state == HealthState::Up),
        "slow start never ended"
    );
    assert_eq!(proxy.pool_status()[0].weight_percent, 100);
    let kinds: Vec<_> = proxy.pool_status()[0].history.iter().map(|t| t.kind).collect();
    assert_eq!(kinds, [TransitionKind::Ejected, TransitionKind::Restored, TransitionKind::SlowStart]);
}

#[test]
fn total_timeout_bounds_the_whole_exchange() {
    let hung = ChaosBackend::start("hung");
    hung.set_mode(Mode::Hang);
    let proxy = TestProxy::start_with(&[hung.addr()], |s| {
        s.upstream.response_timeout = Duration::from_secs(3);
        s.upstream.total_timeout = Duration::from_millis(300);
    });
    let started = std::time::Instant::now();
    let r = send(&proxy, GET);
    let took = started.elapsed();
    assert_eq!(r.status, 504);
    assert!(took < Duration::from_millis(1500), "answered after {took:?}, not at the total timeout");
}
