#![allow(dead_code)]
//! A backend whose behaviour can be switched while it runs (healthy, 500s,
//! hanging, slow, killed and restarted), and a closed-loop load generator
//! that counts every error a client sees. Loopback only; every wait bounded.

use std::collections::HashMap;
use std::io::{Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicU8, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use super::common::TestProxy;

/// What a [`ChaosBackend`] does with each request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub enum Mode {
    /// 200, body = name.
    Ok = 0,
    /// 500 to everything (health checks too).
    Fail = 1,
    /// Reads the request and never answers (until the mode changes; then it closes).
    Hang = 2,
}

struct Shared {
    name: String,
    mode: AtomicU8,
    delay_ms: AtomicU64,
    requests: AtomicUsize,
    stopping: AtomicBool,
    conns: Mutex<Vec<TcpStream>>,
}

/// An HTTP/1.1 keep-alive backend on 127.0.0.1 with switchable behaviour.
pub struct ChaosBackend {
    shared: Arc<Shared>,
    addr: SocketAddr,
    acceptor: Mutex<Option<JoinHandle<()>>>,
}

impl ChaosBackend {
    /// Starts a healthy backend on a free port.
    pub fn start(name: &str) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
        let addr = listener.local_addr().expect("addr");
        let b = Self {
            shared: Arc::new(Shared {
                name: name.to_owned(),
                mode: AtomicU8::new(Mode::Ok as u8),
                delay_ms: AtomicU64::new(0),
                requests: AtomicUsize::new(0),
                stopping: AtomicBool::new(false),
                conns: Mutex::new(Vec::new()),
            }),
            addr,
            acceptor: Mutex::new(None),
        };
        b.spawn_acceptor(listener);
        b
    }

    /// Its address.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Requests answered or hung so far.
    pub fn requests(&self) -> usize {
        self.shared.requests.load(Ordering::SeqCst)
    }

    /// Switches behaviour.
    pub fn set_mode(&self, mode: Mode) {
        self.shared.mode.store(mode as u8, Ordering::SeqCst);
    }

    /// Delays every answer by `ms`.
    pub fn set_delay(&self, ms: u64) {
        self.shared.delay_ms.store(ms, Ordering::SeqCst);
    }

    fn spawn_acceptor(&self, listener: TcpListener) {
        self.shared.stopping.store(false, Ordering::SeqCst);
        let shared = self.shared.clone();
        let handle = std::thread::spawn(move || {
            for stream in listener.incoming() {
                if shared.stopping.load(Ordering::SeqCst) {
                    return;
                }
                let Ok(stream) = stream else { continue };
                let _ = stream.set_nodelay(true);
                let _ = stream.set_read_timeout(Some(Duration::from_secs(30)));
                if let Ok(clone) = stream.try_clone() {
                    shared.conns.lock().expect("conns").push(clone);
                }
                let s = shared.clone();
                std::thread::spawn(move || serve(s, stream));
            }
        });
        *self.acceptor.lock().expect("acceptor") = Some(handle);
    }

    /// Kills it: the port refuses connections and open connections are reset.
    pub fn stop(&self) {
        if let Some(h) = self.acceptor.lock().expect("acceptor").take() {
            self.shared.stopping.store(true, Ordering::SeqCst);
            let _ = TcpStream::connect_timeout(&self.addr, Duration::from_secs(2));
            let _ = h.join();
        }
        for s in self.shared.conns.lock().expect("conns").drain(..) {
            let _ = s.shutdown(Shutdown::Both);
        }
    }

    /// Listens again on the same port.
    pub fn restart(&self) {
        let deadline = Instant::now() + Duration::from_secs(5);
        let listener = loop {
            match TcpListener::bind(self.addr) {
                Ok(l) => break l,
                Err(e) if Instant::now() < deadline => {
                    let _ = e;
                    std::thread::sleep(Duration::from_millis(20));
                }
                Err(e) => panic!("rebind {}: {e}", self.addr),
            }
        };
        self.spawn_acceptor(listener);
    }
}

impl Drop for ChaosBackend {
    fn drop(&mut self) {
        self.stop();
    }
}

fn serve(shared: Arc<Shared>, mut stream: TcpStream) {
    let mut buf = Vec::with_capacity(4096);
    let mut chunk = [0u8; 4096];
    loop {
        // One request head (these tests send no bodies).
        let end = loop {
            if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
                break i + 4;
            }
            match stream.read(&mut chunk) {
                Ok(0) | Err(_) => return,
                Ok(n) => buf.extend_from_slice(&chunk[..n]),
            }
        };
        let head = String::from_utf8_lossy(&buf[..end]).into_owned();
        buf.drain(..end);
        shared.requests.fetch_add(1, Ordering::SeqCst);
        let close = head.to_ascii_lowercase().contains("connection: close");
        let mode = shared.mode.load(Ordering::SeqCst);
        if mode == Mode::Hang as u8 {
            while shared.mode.load(Ordering::SeqCst) == Mode::Hang as u8 && !shared.stopping.load(Ordering::SeqCst) {
                std::thread::sleep(Duration::from_millis(10));
            }
            let _ = stream.shutdown(Shutdown::Both);
            return;
        }
        let delay = shared.delay_ms.load(Ordering::SeqCst);
        if delay > 0 {
            std::thread::sleep(Duration::from_millis(delay));
        }
        let (status, body) = if mode == Mode::Fail as u8 {
            ("500 Internal Server Error", format!("{} failing", shared.name))
        } else {
            ("200 OK", shared.name.clone())
        };
        let reply = format!(
            "HTTP/1.1 {status}\r\nX-Backend: {}\r\nContent-Length: {}\r\n{}\r\n{body}",
            shared.name,
            body.len(),
            if close { "Connection: close\r\n" } else { "" }
        );
        if stream.write_all(reply.as_bytes()).is_err() || close {
            return;
        }
    }
}

/// Counts of a load run.
#[derive(Debug, Default, Clone)]
pub struct Tally {
    /// 200 responses.
    pub ok: usize,
    /// Everything else a client saw: statuses and I/O errors (first 20).
    pub errors: Vec<String>,
    /// Errors in total.
    pub error_count: usize,
    /// 200 responses per backend name.
    pub by_backend: HashMap<String, usize>,
}

/// Closed-loop clients sending `GET path` over keep-alive TLS connections.
pub struct LoadGen {
    stop: Arc<AtomicBool>,
    tally: Arc<Mutex<Tally>>,
    threads: Vec<JoinHandle<()>>,
}

impl LoadGen {
    /// Starts `clients` threads against `proxy`.
    pub fn start(proxy: &TestProxy, clients: usize, path: &str) -> Self {
        let stop = Arc::new(AtomicBool::new(false));
        let tally = Arc::new(Mutex::new(Tally::default()));
        let threads = (0..clients)
            .map(|_| {
                let (stop, tally) = (stop.clone(), tally.clone());
                let (addr, tls) = (proxy.addr(), proxy.tls.clone());
                let request = format!("GET {path} HTTP/1.1\r\nHost: localhost\r\n\r\n");
                std::thread::spawn(move || {
                    let mut conn = None;
                    while !stop.load(Ordering::SeqCst) {
                        if conn.is_none() {
                            match super::common::TlsClient::connect(addr, tls.clone()) {
                                Ok(c) => conn = Some(c),
                                Err(e) => {
                                    record(&tally, Err(format!("connect: {e}")));
                                    std::thread::sleep(Duration::from_millis(10));
                                    continue;
                                }
                            }
                        }
                        let Some(c) = conn.as_mut() else { continue };
                        let result = c.send(request.as_bytes()).and_then(|_| c.read_response(false));
                        match result {
                            Ok(r) if r.status == 200 => {
                                let name = r.header("x-backend").unwrap_or("?").to_owned();
                                let keep = r.header("connection").is_none_or(|v| !v.eq_ignore_ascii_case("close"));
                                record(&tally, Ok(name));
                                if !keep {
                                    conn = None;
                                }
                            }
                            Ok(r) => {
                                record(&tally, Err(format!("status {} {}", r.status, r.text().trim())));
                                conn = None;
                            }
                            Err(e) => {
                                record(&tally, Err(format!("i/o: {e}")));
                                conn = None;
                            }
                        }
                    }
                })
            })
            .collect();
        Self { stop, tally, threads }
    }

    /// The counts so far.
    pub fn tally(&self) -> Tally {
        self.tally.lock().expect("tally").clone()
    }

    /// Stops the clients and returns the final counts.
    pub fn finish(mut self) -> Tally {
        self.stop.store(true, Ordering::SeqCst);
        for t in self.threads.drain(..) {
            let _ = t.join();
        }
        self.tally()
    }
}

fn record(tally: &Mutex<Tally>, result: Result<String, String>) {
    let mut t = tally.lock().expect("tally");
    match result {
        Ok(name) => {
            t.ok += 1;
            *t.by_backend.entry(name).or_default() += 1;
        }
        Err(e) => {
            t.error_count += 1;
            if t.errors.len() < 20 {
                t.errors.push(e);
            }
        }
    }
}
