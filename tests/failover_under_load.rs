//! Under continuous load, backends die, come back, fail with 500s and hang;
//! idempotent GETs see no error, and the pool ejects and restores the bad
//! backends within the configured thresholds. A flapping backend does not
//! flap the health state.

mod chaos;
mod common;

use std::time::{Duration, Instant};

use chaos::{ChaosBackend, LoadGen, Mode};
use common::TestProxy;
use terminus_actors::{BackendStatus, HealthState, Settings, TransitionKind};

/// Active checks every 100 ms (+ up to 20 ms jitter), 2 to rise or fall;
/// passive ejection after 3 errors for 300 ms × ejections; first byte
/// within 400 ms.
fn resilient(s: &mut Settings) {
    s.runtime.workers = 2;
    let up = &mut s.upstream;
    up.health.enabled = true;
    up.health.path = "/health".into();
    up.health.interval = Duration::from_millis(100);
    up.health.timeout = Duration::from_millis(200);
    up.health.jitter = Duration::from_millis(20);
    up.health.rise = 2;
    up.health.fall = 2;
    up.outlier.consecutive_errors = 3;
    up.down_backoff = Duration::from_millis(300);
    up.outlier.max_ejection = Duration::from_secs(2);
    up.response_timeout = Duration::from_millis(400);
    up.connect_timeout = Duration::from_millis(500);
}

fn status_of(proxy: &TestProxy, b: &ChaosBackend) -> BackendStatus {
    proxy.pool_status().into_iter().find(|s| s.addr == b.addr()).expect("backend in status")
}

/// Waits until `f` holds for `b`'s status; returns how long it took.
fn wait_state(
    proxy: &TestProxy,
    b: &ChaosBackend,
    limit: Duration,
    what: &str,
    f: impl Fn(&BackendStatus) -> bool,
) -> Duration {
    let start = Instant::now();
    assert!(
        common::wait_until(limit, || f(&status_of(proxy, b))),
        "{what} not reached within {limit:?}: {:?}",
        status_of(proxy, b)
    );
    start.elapsed()
}

fn serving(s: &BackendStatus) -> bool {
    s.up && s.state == HealthState::Up
}

#[test]
fn gets_see_no_errors_while_backends_die_fail_and_hang() {
    let backends: Vec<ChaosBackend> = ["a", "b", "c"].iter().map(|n| ChaosBackend::start(n)).collect();
    let addrs: Vec<_> = backends.iter().map(ChaosBackend::addr).collect();
    let proxy = TestProxy::start_with(&addrs, resilient);
    let (a, b, c) = (&backends[0], &backends[1], &backends[2]);
    let load = LoadGen::start(&proxy, 3, "/");
    std::thread::sleep(Duration::from_millis(300));

    // 1. Kill a: ejected at its first refused connect (or marked down by checks).
    a.stop();
    let t = wait_state(&proxy, a, Duration::from_secs(2), "a out", |s| !s.up);
    eprintln!("a out after {t:?}");
    std::thread::sleep(Duration::from_millis(500));
    // 2. Restart a: checks bring it back.
    a.restart();
    let t = wait_state(&proxy, a, Duration::from_secs(3), "a back", serving);
    eprintln!("a back after {t:?}");
    let served_a = a.requests();
    assert!(common::wait_until(Duration::from_secs(2), || a.requests() > served_a + 5), "a gets traffic again");

    // 3. b answers 500s: ejected within the thresholds (3 errors, or 2 failed checks).
    b.set_mode(Mode::Fail);
    let t = wait_state(&proxy, b, Duration::from_secs(2), "b out", |s| !s.up);
    eprintln!("b out after {t:?}");
    std::thread::sleep(Duration::from_millis(500));
    b.set_mode(Mode::Ok);
    let t = wait_state(&proxy, b, Duration::from_secs(4), "b back", serving);
    eprintln!("b back after {t:?}");

    // 4. c hangs: first-byte timeouts and check timeouts take it out.
    c.set_mode(Mode::Hang);
    let t = wait_state(&proxy, c, Duration::from_secs(3), "c out", |s| !s.up);
    eprintln!("c out after {t:?}");
    std::thread::sleep(Duration::from_millis(500));
    c.set_mode(Mode::Ok);
    let t = wait_state(&proxy, c, Duration::from_secs(4), "c back", serving);
    eprintln!("c back after {t:?}");
    std::thread::sleep(Duration::from_millis(300));

    let tally = load.finish();
    eprintln!("load: ok={} by_backend={:?}", tally.ok, tally.by_backend);
    assert_eq!(tally.error_count, 0, "clients saw errors: {:?}", tally.errors);
    assert!(tally.ok > 300, "too little load to prove anything: {}", tally.ok);
    for name in ["a", "b", "c"] {
        assert!(tally.by_backend.get(name).copied().unwrap_or(0) > 20, "{name} served: {:?}", tally.by_backend);
    }
    // Every transition is in the history, with a reason.
    let status = proxy.pool_status();
    for s in &status {
        let kinds: Vec<_> = s.history.iter().map(|t| t.kind).collect();
        assert!(
            kinds.iter().any(|k| matches!(k, TransitionKind::Ejected | TransitionKind::Down)),
            "{}: {kinds:?}",
            s.addr
        );
        assert!(
            kinds.iter().any(|k| matches!(k, TransitionKind::Up | TransitionKind::Restored)),
            "{}: {kinds:?}",
            s.addr
        );
        assert!(s.history.iter().all(|t| !t.reason.is_empty()));
    }
}

#[test]
fn a_flapping_backend_does_not_flap_the_health_state() {
    let (steady, flappy) = (ChaosBackend::start("steady"), ChaosBackend::start("flappy"));
    let proxy = TestProxy::start_with(&[steady.addr(), flappy.addr()], |s| {
        s.upstream.health.enabled = true;
        s.upstream.health.interval = Duration::from_millis(250);
        s.upstream.health.timeout = Duration::from_millis(200);
        s.upstream.health.jitter = Duration::from_millis(30);
        // Up or down for 1 s is at most 4 probes in a row: below rise/fall.
        s.upstream.health.rise = 5;
        s.upstream.health.fall = 5;
    });
    let load = LoadGen::start(&proxy, 2, "/");
    for _ in 0..3 {
        std::thread::sleep(Duration::from_secs(1));
        flappy.stop();
        std::thread::sleep(Duration::from_secs(1));
        flappy.restart();
    }
    let tally = load.finish();
    let status = proxy.pool_status();
    let flaps: Vec<_> = status[1]
        .history
        .iter()
        .filter(|t| matches!(t.kind, TransitionKind::Up | TransitionKind::Down))
        .map(|t| (t.kind, t.reason.clone()))
        .collect();
    assert!(flaps.is_empty(), "active health flapped: {flaps:?}");
    assert_eq!(tally.error_count, 0, "clients saw errors: {:?}", tally.errors);
}
