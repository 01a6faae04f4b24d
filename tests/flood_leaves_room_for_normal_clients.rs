//! A bounded flood: thousands of idle TCP connections, TLS slowloris heads
//! and idle keep-alive sessions from attacker addresses (127.0.0.2 and
//! 127.0.0.3) against small limits, while a normal client on 127.0.0.1 keeps
//! being served. The timeouts and the per-IP cap close the attackers'
//! connections; nothing grows without bound.

mod common;

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use common::{Backend, TestProxy, TlsClient};
use socket2::{Domain, Socket, Type};

/// Idle plain-TCP connections opened by the flood (no TLS handshake).
const IDLE_TCP: usize = 2000;
/// TLS connections that dribble a request head one byte at a time.
const SLOWLORIS: usize = 60;
/// Cap on connections per client IP during the test.
const PER_IP: u32 = 100;

/// A TCP connection to `to` from the loopback address `from`.
fn connect_from(from: [u8; 4], to: SocketAddr) -> std::io::Result<TcpStream> {
    let s = Socket::new(Domain::IPV4, Type::STREAM, None)?;
    s.bind(&SocketAddr::from((from, 0)).into())?;
    s.connect_timeout(&to.into(), Duration::from_secs(2))?;
    let s: TcpStream = s.into();
    s.set_read_timeout(Some(Duration::from_secs(5)))?;
    s.set_write_timeout(Some(Duration::from_secs(2)))?;
    Ok(s)
}

#[test]
fn normal_client_is_served_during_a_connection_flood() {
    let backend = Backend::start("b");
    let proxy = TestProxy::start_with(&[backend.addr()], |s| {
        s.listener.max_connections = 500;
        s.listener.max_connections_per_ip = PER_IP;
        s.listener.handshake_timeout = Duration::from_millis(800);
        s.http.header_timeout = Duration::from_millis(800);
        s.http.keepalive_timeout = Duration::from_millis(800);
    });
    let addr = proxy.addr();
    let stop = Arc::new(AtomicBool::new(false));

    // Idle TCP flood from 127.0.0.2: connections pile up, most are closed at
    // once by the per-IP cap, the rest by the handshake timeout.
    let idle = {
        let stop = stop.clone();
        std::thread::spawn(move || {
            let mut held = Vec::new();
            let mut opened = 0usize;
            while opened < IDLE_TCP && !stop.load(Ordering::SeqCst) {
                if let Ok(s) = connect_from([127, 0, 0, 2], addr) {
                    held.push(s);
                    opened += 1;
                }
            }
            (opened, held)
        })
    };

    // TLS slowloris from 127.0.0.3: complete handshakes, then one head byte
    // every 100 ms; each must be cut off (408 or close) by the header timeout.
    let slow = {
        let stop = stop.clone();
        let tls = proxy.tls.clone();
        std::thread::spawn(move || {
            let mut conns = Vec::new();
            for _ in 0..SLOWLORIS {
                let Ok(tcp) = connect_from([127, 0, 0, 3], addr) else { continue };
                let Ok(conn) = rustls::ClientConnection::new(tls.clone(), "localhost".try_into().expect("name")) else {
                    continue;
                };
                conns.push(rustls::StreamOwned::new(conn, tcp));
            }
            let head = b"GET / HTTP/1.1\r\nHost: a\r\nX-Slow: aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa";
            let mut cut_off = 0usize;
            let mut alive: Vec<_> = conns.into_iter().map(|c| (c, 0usize)).collect();
            while !alive.is_empty() && !stop.load(Ordering::SeqCst) {
                alive.retain_mut(|(c, at)| {
                    let byte = head[*at % head.len()];
                    *at += 1;
                    let ok = c.write_all(&[byte]).and_then(|_| c.flush()).is_ok();
                    if !ok {
                        cut_off += 1;
                    }
                    ok
                });
                std::thread::sleep(Duration::from_millis(100));
            }
            cut_off
        })
    };

    // Meanwhile the normal client gets answers, each within a short time.
    let started = Instant::now();
    let mut served = 0;
    while started.elapsed() < Duration::from_secs(4) {
        let t = Instant::now();
        let mut c = TlsClient::connect(addr, proxy.tls.clone()).expect("normal client connects during the flood");
        c.send(b"GET / HTTP/1.1\r\nHost: a\r\n\r\n").expect("send");
        let r = c.read_response(false).expect("response during the flood");
        assert_eq!(r.status, 200);
        assert!(t.elapsed() < Duration::from_secs(2), "request took {:?}", t.elapsed());
        served += 1;
        std::thread::sleep(Duration::from_millis(50));
    }
    stop.store(true, Ordering::SeqCst);
    let (opened, mut held) = idle.join().expect("idle flood thread");
    let cut_off = slow.join().expect("slowloris thread");
    assert!(served >= 10, "only {served} requests served during the flood");
    assert!(opened >= IDLE_TCP / 2, "flood opened only {opened} connections");

    // Every idle connection has been closed by the proxy: a read sees EOF
    // or a reset, never a timeout (which would mean the proxy still holds it).
    let mut still_open = 0;
    for s in held.iter_mut().step_by(20) {
        let mut buf = [0u8; 64];
        match s.read(&mut buf) {
            Err(e) if matches!(e.kind(), std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut) => {
                still_open += 1
            }
            Ok(0) | Err(_) => {}
            Ok(_) => still_open += 1,
        }
    }
    assert_eq!(still_open, 0, "idle flood connections left open");
    // Slowloris connections were cut off by the header timeout long before
    // their heads could complete (each would need ~5 s).
    assert!(cut_off >= SLOWLORIS * 9 / 10, "only {cut_off} of {SLOWLORIS} slowloris connections cut off");
    drop(held);
    assert_eq!(proxy.get("/").status, 200);
}
