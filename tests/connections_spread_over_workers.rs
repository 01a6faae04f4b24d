//! Long-lived connections are spread over the workers, however they arrive.

mod common;

use std::io::Write;
use std::net::{SocketAddr, TcpStream};
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::{Backend, TestProxy, TlsClient};
use terminus_actors::actors::listener::SLACK;

/// `c`, once a request on it was answered 200.
fn served(mut c: TlsClient) -> TlsClient {
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
    let mut open: Vec<TlsClient> = (0..16).map(|_| served(proxy.client())).collect();
    assert_even(&spread_at(&proxy, 16), SLACK);
    // A burst from many threads at once.
    let burst: Vec<_> = (0..24)
        .map(|_| {
            let (addr, tls) = (proxy.addr(), proxy.tls.clone());
            std::thread::spawn(move || served(TlsClient::connect(addr, tls).expect("connect")))
        })
        .collect();
    open.extend(burst.into_iter().map(|t| t.join().expect("client")));
    // Two workers accepting at once may each count the other's last
    // session late: one more either way.
    assert_even(&spread_at(&proxy, 40), SLACK + 2);
    drop(open);
    spread_at(&proxy, 0);
}

/// Cap on connections per client IP: a count left behind by any way of
/// leaving would show as a refusal once this many are open again.
const PER_IP: usize = 8;

/// One client that leaves in the `way`-th of five ways, most of them abrupt.
fn leave(addr: SocketAddr, tls: &Arc<rustls::ClientConfig>, way: usize) {
    let reset = |tcp: &TcpStream| {
        let _ = socket2::SockRef::from(tcp).set_linger(Some(Duration::ZERO));
    };
    match way % 5 {
        // Connect and close before any byte.
        0 => drop(TcpStream::connect(addr)),
        // Half a ClientHello's record, then a reset.
        1 => {
            if let Ok(mut tcp) = TcpStream::connect(addr) {
                let _ = tcp.write_all(&[0x16, 0x03, 0x01, 0x02, 0x00, 0x01, 0x00]);
                reset(&tcp);
            }
        }
        // A handshake, part of a request head, then a reset.
        2 => {
            if let Ok(mut c) = TlsClient::connect(addr, tls.clone()) {
                let _ = c.send(b"GET / HTTP/1.1\r\nHost: a");
                reset(c.tcp());
            }
        }
        // A request answered, then the TCP connection closed without close_notify.
        3 => {
            if let Ok(mut c) = TlsClient::connect(addr, tls.clone()) {
                let _ = c.send(b"GET / HTTP/1.1\r\nHost: a\r\n\r\n");
                let _ = c.read_response(false);
            }
        }
        // A request sent, and the client gone before the answer.
        _ => {
            if let Ok(mut c) = TlsClient::connect(addr, tls.clone()) {
                let _ = c.send(b"GET / HTTP/1.1\r\nHost: a\r\n\r\n");
                reset(c.tcp());
            }
        }
    }
}

#[test]
fn clients_that_leave_abruptly_leave_no_count_behind_on_any_worker() {
    let backend = Backend::start("b");
    let proxy = TestProxy::start_with(&[backend.addr()], |s| {
        s.runtime.workers = 2;
        s.listener.max_connections_per_ip = PER_IP as u32;
    });
    // Four clients at once, each leaving in turn in all five ways, so the
    // workers accept, hand over and close in parallel; a few may be refused
    // while the proxy has not yet seen earlier ones go, which is allowed.
    let churn: Vec<_> = (0..PER_IP / 2)
        .map(|t| {
            let (addr, tls) = (proxy.addr(), proxy.tls.clone());
            std::thread::spawn(move || (0..60).for_each(|i| leave(addr, &tls, t + i)))
        })
        .collect();
    churn.into_iter().for_each(|t| t.join().expect("churn client"));
    spread_at(&proxy, 0);
    // Every per-IP slot is free again: PER_IP clients are all served (a
    // refusal is retried for a while: the proxy may not yet have seen the
    // last of the churn go).
    let mut open = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(5);
    while open.len() < PER_IP {
        match TlsClient::connect(proxy.addr(), proxy.tls.clone()) {
            Ok(c) => open.push(served(c)),
            Err(_) if Instant::now() < deadline => std::thread::sleep(Duration::from_millis(50)),
            Err(e) => panic!("a per-IP slot was never freed, {} of {PER_IP} open: {e}", open.len()),
        }
    }
    assert_even(&spread_at(&proxy, PER_IP), SLACK);
    assert!(TlsClient::connect(proxy.addr(), proxy.tls.clone()).is_err(), "one more than the cap is refused");
}
