//! Long-lived connections are spread over the workers, however they arrive.

mod common;

use std::time::Duration;

use common::{Backend, TestProxy, TlsClient};
use terminus_actors::actors::listener::SLACK;

fn served(proxy: &TestProxy) -> TlsClient {
    let mut c = proxy.client();
    c.send(b"GET / HTTP/1.1\r\nHost: localhost\r\n\r\n").expect("send");
    assert_eq!(c.read_response(false).expect("response").status, 200);
    c
}

/// The workers' session counts once `n` sessions are open.
fn spread_at(proxy: &TestProxy, n: usize) -> Vec<usize> {
    common::wait_until(Duration::from_secs(5), || proxy.sessions_per_worker().iter().sum::<usize>() == n);
    let per_worker = proxy.sessions_per_worker();
    assert_eq!(per_worker.iter().sum::<usize>(), n, "sessions open: {per_worker:?}");
    per_worker
}

fn assert_even(per_worker: &[usize], slack: usize) {
    let (lo, hi) = (per_worker.iter().min().copied(), per_worker.iter().max().copied());
    let (Some(lo), Some(hi)) = (lo, hi) else { panic!("no workers") };
    assert!(hi - lo <= slack, "sessions per worker: {per_worker:?}");
}

#[test]
fn connections_spread_over_workers_one_by_one_and_in_a_burst() {
    let backend = Backend::start("b");
    let proxy = TestProxy::start_with(&[backend.addr()], |s| s.runtime.workers = 2);
    // One at a time while the workers sleep: each arrival wakes one worker
    // only, which would keep them all.
    let mut open: Vec<TlsClient> = (0..16).map(|_| served(&proxy)).collect();
    assert_even(&spread_at(&proxy, 16), SLACK);
    // A burst from many threads at once.
    let burst: Vec<_> = (0..24)
        .map(|_| {
            let (addr, tls) = (proxy.addr(), proxy.tls.clone());
            std::thread::spawn(move || {
                let mut c = TlsClient::connect(addr, tls).expect("connect");
                c.send(b"GET / HTTP/1.1\r\nHost: localhost\r\n\r\n").expect("send");
                assert_eq!(c.read_response(false).expect("response").status, 200);
                c
            })
        })
        .collect();
    open.extend(burst.into_iter().map(|t| t.join().expect("client")));
    // Two workers accepting at once may each count the other's last
    // session late: one more either way.
    assert_even(&spread_at(&proxy, 40), SLACK + 2);
    drop(open);
    spread_at(&proxy, 0);
}
