//! Fault injection: a panic in any actor ends only that actor, which its
//! supervisor restarts with its state; a panic in a session closes only that
//! connection; an exhausted restart budget reaches the embedder as `Fatal`.

mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::thread::JoinHandle;
use std::time::Duration;

use common::embedded::{Embedded, block};
use common::{Backend, wait_until};
use terminus_actors::{AddBackend, InjectPanic, PANIC_PATH, PoolStatus, RemoveBackend};

/// Requests on one keep-alive connection plus fresh connections, counting
/// successes and failures until stopped.
struct Traffic {
    ok: Arc<AtomicUsize>,
    failed: Arc<AtomicUsize>,
    stop: Arc<AtomicBool>,
    threads: Vec<JoinHandle<()>>,
}

impl Traffic {
    fn start(e: &Embedded, proxy: usize) -> Self {
        let (ok, failed, stop) = (Arc::new(AtomicUsize::new(0)), Arc::new(AtomicUsize::new(0)), Arc::default());
        let mut threads = Vec::new();
        for fresh in [false, true] {
            let (addr, tls) = (e.proxy(proxy).addr, e.tls.clone());
            let (ok, failed, stop): (_, _, Arc<AtomicBool>) = (ok.clone(), failed.clone(), Arc::clone(&stop));
            threads.push(std::thread::spawn(move || {
                let mut kept = common::TlsClient::connect(addr, tls.clone()).expect("connect");
                while !stop.load(Ordering::Relaxed) {
                    let r = if fresh {
                        common::TlsClient::connect(addr, tls.clone()).ok().and_then(|mut c| get(&mut c))
                    } else {
                        get(&mut kept)
                    };
                    if r == Some(200) {
                        ok.fetch_add(1, Ordering::Relaxed);
                    } else {
                        failed.fetch_add(1, Ordering::Relaxed);
                    }
                    std::thread::sleep(Duration::from_millis(2));
                }
            }));
        }
        Self { ok, failed, stop, threads }
    }

    /// Stops and returns (ok, failed).
    fn finish(self) -> (usize, usize) {
        self.stop.store(true, Ordering::Relaxed);
        for t in self.threads {
            let _ = t.join();
        }
        (self.ok.load(Ordering::Relaxed), self.failed.load(Ordering::Relaxed))
    }
}

fn get(c: &mut common::TlsClient) -> Option<u16> {
    c.send(b"GET / HTTP/1.1\r\nHost: t\r\n\r\n").ok()?;
    c.read_response(false).ok().map(|r| r.status)
}

fn fast_restarts(s: &mut terminus_actors::Settings) {
    s.runtime.workers = 2;
    s.admin.enabled = true;
    s.admin.address = "127.0.0.1:0".parse().unwrap();
    s.supervision.backoff_initial = Duration::from_millis(10);
    s.supervision.max_restarts = 50;
}

#[test]
fn actor_panics_are_restarted_with_their_state_under_traffic() {
    let (a, b) = (Backend::start("a"), Backend::start("b"));
    let e = Embedded::start(&[a.addr(), b.addr()], vec![Box::new(fast_restarts)]);
    let p = e.proxy(0).clone();
    let pool_before = membership(block(p.pool.send(PoolStatus)).unwrap());
    let kinds: Vec<(&str, Box<dyn Fn()>)> = vec![
        ("listener worker=0", Box::new(|| p.listeners[0].do_send(InjectPanic))),
        ("listener worker=1", Box::new(|| p.listeners[1].do_send(InjectPanic))),
        ("balancer worker=0", Box::new(|| p.balancers[0].do_send(InjectPanic))),
        ("backend_pool", Box::new(|| p.pool.do_send(InjectPanic))),
        ("control", Box::new(|| p.control.do_send(InjectPanic))),
        ("admin", Box::new(|| p.admin.as_ref().unwrap().do_send(InjectPanic))),
    ];
    for (name, inject) in kinds {
        let traffic = Traffic::start(&e, 0);
        std::thread::sleep(Duration::from_millis(100));
        inject();
        let restarted = wait_until(Duration::from_secs(5), || e.status(0).totals.restarts.get(name) == Some(&1));
        std::thread::sleep(Duration::from_millis(200));
        let (ok, failed) = traffic.finish();
        assert!(restarted, "{name} restarted: {:?}", e.status(0).totals.restarts);
        assert_eq!(failed, 0, "{name}: requests failed while it restarted ({ok} ok)");
        assert!(ok > 20, "{name}: traffic flowed ({ok} ok)");
        // The restarted actor resumed with its state.
        // Membership and health survive (counters such as latency move on).
        assert_eq!(membership(block(p.pool.send(PoolStatus)).unwrap()), pool_before, "{name}: pool state kept");
        let seen: std::collections::HashSet<String> =
            (0..6).filter_map(|_| e.get(0, "/").header("x-backend").map(str::to_owned)).collect();
        assert_eq!(seen.len(), 2, "{name}: both backends still in rotation: {seen:?}");
        let health = common::http_get(p.admin_addr.unwrap(), "/healthz");
        assert_eq!(health.status, 200, "{name}: admin and control answer");
    }
    // The pool still takes commands after its restart.
    let c = Backend::start("c");
    block(p.pool.send(AddBackend { address: c.addr(), weight: 1 })).unwrap().unwrap();
    assert!(wait_until(Duration::from_secs(3), || (0..6).any(|_| e.get(0, "/").text() == "c")));
    block(p.pool.send(RemoveBackend { address: c.addr() })).unwrap().unwrap();
    assert!(e.fatal.try_recv().is_err(), "no escalation within budget");
}

#[test]
fn session_panic_closes_only_that_connection() {
    let a = Backend::start("a");
    let e = Embedded::start(&[a.addr()], vec![Box::new(|s| s.runtime.workers = 1)]);
    let mut kept = e.client(0);
    kept.send(b"GET / HTTP/1.1\r\nHost: t\r\n\r\n").unwrap();
    assert_eq!(kept.read_response(false).unwrap().status, 200);
    let traffic = Traffic::start(&e, 0);
    for _ in 0..5 {
        let mut victim = e.client(0);
        victim.send(format!("GET {PANIC_PATH} HTTP/1.1\r\nHost: t\r\n\r\n").as_bytes()).unwrap();
        assert!(victim.read_response(false).is_err(), "the panicking session's connection is closed");
    }
    std::thread::sleep(Duration::from_millis(100));
    let (ok, failed) = traffic.finish();
    assert_eq!(failed, 0, "other connections saw no error ({ok} ok)");
    kept.send(b"GET / HTTP/1.1\r\nHost: t\r\n\r\n").unwrap();
    assert_eq!(kept.read_response(false).unwrap().text(), "a", "an established connection carries on");
    drop(kept);
    assert!(
        wait_until(Duration::from_secs(3), || e.status(0).totals.active_connections == 0),
        "closed sessions are accounted: {}",
        e.status(0).totals.active_connections
    );
    assert_eq!(e.status(0).totals.restarts.len(), 0, "sessions are temporary: nothing restarts");
}

#[test]
fn exhausted_budget_escalates_as_fatal() {
    let a = Backend::start("a");
    let e = Embedded::start(
        &[a.addr()],
        vec![Box::new(|s| {
            s.supervision.max_restarts = 1;
            s.supervision.backoff_initial = Duration::from_millis(1);
        })],
    );
    let pool = e.proxy(0).pool.clone();
    pool.do_send(InjectPanic);
    assert!(wait_until(Duration::from_secs(3), || e.status(0).totals.restarts.get("backend_pool") == Some(&1)));
    assert!(e.fatal.try_recv().is_err());
    pool.do_send(InjectPanic);
    let fatal = e.fatal.recv_timeout(Duration::from_secs(3)).expect("Fatal reaches the embedder");
    assert_eq!(fatal.actor, "backend_pool");
    assert_eq!(fatal.restarts, 1);
    assert!(fatal.reason.contains("injected panic"), "{fatal:?}");
}

/// The part of the pool's state a restart must keep: who is in it, with
/// what weight and health.
fn membership(status: Vec<terminus_actors::BackendStatus>) -> Vec<(std::net::SocketAddr, u32, bool)> {
    status.into_iter().map(|b| (b.addr, b.weight, b.up)).collect()
}

#[test]
fn health_checker_panic_is_restarted_and_checks_resume() {
    let (a, b) = (Backend::start("a"), Backend::start("b"));
    let with_checks = |s: &mut terminus_actors::Settings| {
        fast_restarts(s);
        s.upstream.health.enabled = true;
        s.upstream.health.interval = Duration::from_millis(100);
        s.upstream.health.jitter = Duration::ZERO;
        s.upstream.health.timeout = Duration::from_millis(500);
        s.upstream.health.fall = 2;
    };
    let e = Embedded::start(&[a.addr(), b.addr()], vec![Box::new(with_checks)]);
    let p = e.proxy(0).clone();
    let traffic = Traffic::start(&e, 0);
    std::thread::sleep(Duration::from_millis(100));
    assert!(block(p.pool.send(terminus_actors::InjectCheckerPanic)).unwrap(), "a checker is running");
    let restarted =
        wait_until(Duration::from_secs(5), || e.status(0).totals.restarts.get("health_checker") == Some(&1));
    let (ok, failed) = traffic.finish();
    assert!(restarted, "health checker restarted: {:?}", e.status(0).totals.restarts);
    assert_eq!(failed, 0, "requests failed while the checker restarted ({ok} ok)");
    // The restarted checker still probes: a stopped backend is marked down.
    a.stop();
    assert!(
        wait_until(Duration::from_secs(5), || {
            block(p.pool.send(PoolStatus)).unwrap().iter().any(|s| s.addr == a.addr() && !s.up)
        }),
        "the restarted checker no longer marks a dead backend down"
    );
}
