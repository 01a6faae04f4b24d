//! In-process HTTP/1.1 test backend (blocking, thread per connection, keep-alive).
//!
//! Routes (path before `?`; HEAD on any route sends the GET headers, no body):
//! - `/` → 200 `text/plain`, body = backend name
//! - `/echo` → 200, body = the request head exactly as received (request line
//!   through the blank line)
//! - `/echo-body` → 200, body = the request body (at most 4 MiB, else 413)
//! - `/bytes?n=N` → 200, Content-Length N, [`pattern_bytes`] streamed in 64 KiB pieces
//! - `/chunked?n=N` → same, chunked (16 KiB chunks) with trailer `X-Checksum`
//! - `/close-delimited?n=N` → 200 without Content-Length/chunking, N bytes, then close
//! - `/upload` → 200, body `"{bytes} {checksum}"` of the request body
//! - `/status/{code}` → that status (no body for 204/304; 304 has an ETag)
//! - `/early-hints` → 103 with a `Link` header, then 200 `ok`
//! - `/slow?ms=N` → sleeps N ms, then 200 `slow`
//! - `/reject-expect` with `Expect: 100-continue` → 417 without reading the body, then close
//! - `/refuse-body` → 413 as soon as the head is read, without reading the body;
//!   then holds the connection for 2 s, or with `?then=close` closes it after
//!   100 ms (a reset, over the unread body)
//! - `/answer-early` → the same with 200 `early`
//! - `/stall-body` → neither reads the body nor answers; closes after 3 s
//! - anything else → 404
//!
//! Every response carries `X-Backend: {name}`.

use std::collections::HashMap;
use std::io::{self, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use super::client::{Framing, HttpConn, IO_TIMEOUT};

use super::client::{chunked_final, content_length, find_header, has_token, headers_named};

/// How long a keep-alive connection may sit idle between requests (unless
/// [`BackendOptions::close_idle_after`] says otherwise).
pub const KEEPALIVE_IDLE: Duration = Duration::from_secs(60);
/// Largest body stored for `/echo-body`.
const MAX_STORED_BODY: usize = 4 * 1024 * 1024;

/// Sum of all bytes modulo 2^32.
pub fn checksum(data: &[u8]) -> u32 {
    const M: u64 = 0x00FF_00FF_00FF_00FF;
    let mut sum: u64 = 0;
    let mut words = data.chunks_exact(8);
    for w in &mut words {
        let x = u64::from_le_bytes(w.try_into().expect("8 bytes"));
        let pairs = (x & M) + ((x >> 8) & M);
        sum += pairs.wrapping_mul(0x0001_0001_0001_0001) >> 48;
    }
    for &b in words.remainder() {
        sum += u64::from(b);
    }
    sum as u32
}

fn splitmix64(i: u64) -> u64 {
    let mut z = i.wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// Fills `buf` with the deterministic pseudo-random stream starting at byte `offset`.
pub fn pattern_bytes(offset: u64, buf: &mut [u8]) {
    let mut pos = offset;
    let mut i = 0;
    while i < buf.len() {
        let word = splitmix64(pos / 8).to_le_bytes();
        let within = (pos % 8) as usize;
        let n = (8 - within).min(buf.len() - i);
        buf[i..i + n].copy_from_slice(&word[within..within + n]);
        i += n;
        pos += n as u64;
    }
}

/// [`checksum`] of the first `len` pattern bytes (computed in constant memory).
pub fn pattern_checksum(len: u64) -> u32 {
    let mut buf = vec![0u8; 64 * 1024];
    let mut sum = 0u32;
    let mut off = 0u64;
    while off < len {
        let n = (len - off).min(buf.len() as u64) as usize;
        pattern_bytes(off, &mut buf[..n]);
        sum = sum.wrapping_add(checksum(&buf[..n]));
        off += n as u64;
    }
    sum
}

/// An address on which nothing listens (bound once, then released).
pub fn dead_addr() -> SocketAddr {
    let l = TcpListener::bind("127.0.0.1:0").expect("bind 127.0.0.1:0");
    l.local_addr().expect("local_addr")
}

/// Behaviour switches for a [`Backend`].
#[derive(Debug, Clone, Default)]
pub struct BackendOptions {
    /// After a response, close the connection silently if no new request starts within this time.
    pub close_idle_after: Option<Duration>,
    /// Answer every request with this status (body still read; `X-Backend` still sent).
    pub fail_status: Option<u16>,
}

/// A request as the backend received it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RecordedRequest {
    /// Method, e.g. `GET`.
    pub method: String,
    /// Request target as sent, e.g. `/echo?x=1`.
    pub target: String,
    /// Version from the request line, e.g. `HTTP/1.1`.
    pub version: String,
    /// Header fields in received order and case.
    pub headers: Vec<(String, String)>,
    /// Body bytes received (after removing chunked framing).
    pub body_len: u64,
    /// Trailer fields of a chunked body.
    pub trailers: Vec<(String, String)>,
}

impl RecordedRequest {
    /// First header with this name (case-insensitive).
    pub fn header(&self, name: &str) -> Option<&str> {
        find_header(&self.headers, name)
    }
    /// All values of headers with this name (case-insensitive), in order.
    pub fn headers_named(&self, name: &str) -> Vec<&str> {
        headers_named(&self.headers, name)
    }
    /// The path part of the target (before `?`).
    pub fn path(&self) -> &str {
        self.target.split('?').next().unwrap_or_default()
    }
}

struct Shared {
    name: String,
    opts: BackendOptions,
    connections: AtomicUsize,
    requests: AtomicUsize,
    log: Mutex<Vec<RecordedRequest>>,
    stopping: AtomicBool,
    conns: Mutex<HashMap<u64, TcpStream>>,
    next_id: AtomicU64,
}

/// An HTTP/1.1 backend on 127.0.0.1 running in background threads. Dropping it stops it.
pub struct Backend {
    shared: Arc<Shared>,
    addr: SocketAddr,
    acceptor: Mutex<Option<JoinHandle<()>>>,
}

impl Backend {
    /// Starts a backend with default options on a free port.
    pub fn start(name: &str) -> Backend {
        Self::start_with(name, BackendOptions::default())
    }

    /// Starts a backend with the given options on a free port.
    pub fn start_with(name: &str, opts: BackendOptions) -> Backend {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind backend listener");
        let addr = listener.local_addr().expect("backend local_addr");
        let backend = Backend {
            shared: Arc::new(Shared {
                name: name.to_string(),
                opts,
                connections: AtomicUsize::new(0),
                requests: AtomicUsize::new(0),
                log: Mutex::new(Vec::new()),
                stopping: AtomicBool::new(false),
                conns: Mutex::new(HashMap::new()),
                next_id: AtomicU64::new(0),
            }),
            addr,
            acceptor: Mutex::new(None),
        };
        backend.spawn_acceptor(listener);
        backend
    }

    fn spawn_acceptor(&self, listener: TcpListener) {
        self.shared.stopping.store(false, Ordering::SeqCst);
        let shared = self.shared.clone();
        let handle = std::thread::Builder::new()
            .name(format!("backend-{}-accept", self.shared.name))
            .spawn(move || accept_loop(shared, listener))
            .expect("spawn backend acceptor");
        *self.acceptor.lock().expect("acceptor lock") = Some(handle);
    }

    /// The listening address.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// The name given at start (body of `/`, value of `X-Backend`).
    pub fn name(&self) -> &str {
        &self.shared.name
    }

    /// TCP connections accepted so far (across restarts).
    pub fn connections(&self) -> usize {
        self.shared.connections.load(Ordering::SeqCst)
    }

    /// Requests received so far (counted once the body is read, before responding).
    pub fn requests(&self) -> usize {
        self.shared.requests.load(Ordering::SeqCst)
    }

    /// The most recent request.
    pub fn last_request(&self) -> Option<RecordedRequest> {
        self.shared.log.lock().expect("log lock").last().cloned()
    }

    /// All requests so far, oldest first.
    pub fn requests_log(&self) -> Vec<RecordedRequest> {
        self.shared.log.lock().expect("log lock").clone()
    }

    /// Number of currently open connections.
    pub fn open_connections(&self) -> usize {
        self.shared.conns.lock().expect("conns lock").len()
    }

    /// True while accepting connections.
    pub fn is_running(&self) -> bool {
        self.acceptor.lock().expect("acceptor lock").is_some()
    }

    /// Stops accepting (the port then refuses connections) and closes all open
    /// connections. Idempotent.
    pub fn stop(&self) {
        let handle = self.acceptor.lock().expect("acceptor lock").take();
        if let Some(handle) = handle {
            self.shared.stopping.store(true, Ordering::SeqCst);
            // Wake the blocking accept(); the acceptor then drops the listener.
            let _ = TcpStream::connect_timeout(&self.addr, Duration::from_secs(2));
            let _ = handle.join();
        }
        let conns: Vec<TcpStream> = self.shared.conns.lock().expect("conns lock").drain().map(|(_, s)| s).collect();
        for s in conns {
            let _ = s.shutdown(Shutdown::Both);
        }
    }

    /// Listens again on the same port after [`Backend::stop`] (no-op if running).
    pub fn restart(&self) -> io::Result<()> {
        if self.is_running() {
            return Ok(());
        }
        let deadline = Instant::now() + Duration::from_secs(5);
        let listener = loop {
            match TcpListener::bind(self.addr) {
                Ok(l) => break l,
                Err(e) if e.kind() == io::ErrorKind::AddrInUse && Instant::now() < deadline => {
                    std::thread::sleep(Duration::from_millis(20));
                }
                Err(e) => return Err(e),
            }
        };
        self.spawn_acceptor(listener);
        Ok(())
    }
}

impl Drop for Backend {
    fn drop(&mut self) {
        self.stop();
    }
}

fn accept_loop(shared: Arc<Shared>, listener: TcpListener) {
    loop {
        let accepted = listener.accept();
        if shared.stopping.load(Ordering::SeqCst) {
            return;
        }
        let stream = match accepted {
            Ok((s, _)) => s,
            Err(_) => {
                std::thread::sleep(Duration::from_millis(10));
                continue;
            }
        };
        shared.connections.fetch_add(1, Ordering::SeqCst);
        let _ = stream.set_read_timeout(Some(IO_TIMEOUT));
        let _ = stream.set_write_timeout(Some(IO_TIMEOUT));
        let _ = stream.set_nodelay(true);
        let id = shared.next_id.fetch_add(1, Ordering::SeqCst);
        match stream.try_clone() {
            Ok(clone) => {
                shared.conns.lock().expect("conns lock").insert(id, clone);
            }
            Err(_) => continue,
        }
        let conn_shared = shared.clone();
        let spawned = std::thread::Builder::new().name(format!("backend-{}-conn{id}", shared.name)).spawn(move || {
            let mut conn = HttpConn::from_stream(stream);
            let _ = serve(&conn_shared, &mut conn);
            conn_shared.conns.lock().expect("conns lock").remove(&id);
        });
        if spawned.is_err() {
            shared.conns.lock().expect("conns lock").remove(&id);
        }
    }
}

/// What the response body is.
enum Body {
    /// Fixed bytes with Content-Length.
    Fixed(Vec<u8>),
    /// No body and no Content-Length (204/304).
    None,
    /// N pattern bytes with Content-Length.
    Pattern(u64),
    /// N pattern bytes, chunked, with an `X-Checksum` trailer.
    ChunkedPattern(u64),
    /// N pattern bytes delimited by closing the connection.
    CloseDelimited(u64),
}

struct Reply {
    status: u16,
    headers: Vec<(String, String)>,
    body: Body,
}

impl Reply {
    fn text(status: u16, body: impl Into<Vec<u8>>) -> Reply {
        Reply { status, headers: vec![("Content-Type".into(), "text/plain".into())], body: Body::Fixed(body.into()) }
    }
}

fn reason(status: u16) -> &'static str {
    match status {
        100 => "Continue",
        103 => "Early Hints",
        200 => "OK",
        201 => "Created",
        204 => "No Content",
        206 => "Partial Content",
        301 => "Moved Permanently",
        302 => "Found",
        304 => "Not Modified",
        400 => "Bad Request",
        401 => "Unauthorized",
        403 => "Forbidden",
        404 => "Not Found",
        405 => "Method Not Allowed",
        408 => "Request Timeout",
        413 => "Content Too Large",
        417 => "Expectation Failed",
        429 => "Too Many Requests",
        500 => "Internal Server Error",
        501 => "Not Implemented",
        502 => "Bad Gateway",
        503 => "Service Unavailable",
        504 => "Gateway Timeout",
        _ => "Status",
    }
}

fn query_u64(target: &str, key: &str) -> u64 {
    target
        .split_once('?')
        .map(|(_, q)| q)
        .unwrap_or_default()
        .split('&')
        .filter_map(|kv| kv.split_once('='))
        .find(|(k, _)| *k == key)
        .and_then(|(_, v)| v.parse().ok())
        .unwrap_or(0)
}

/// Shut down our sending side, then drain what the peer still sends (bounded),
/// so unread request bytes don't turn the close into a reset that eats the response.
fn lingering_close(tcp: &TcpStream) {
    let _ = tcp.shutdown(Shutdown::Write);
    let _ = tcp.set_read_timeout(Some(Duration::from_millis(500)));
    let deadline = Instant::now() + Duration::from_secs(2);
    let mut scratch = [0u8; 16 * 1024];
    let mut r = tcp;
    while Instant::now() < deadline {
        match r.read(&mut scratch) {
            Ok(0) | Err(_) => break,
            Ok(_) => {}
        }
    }
}

fn serve(shared: &Shared, conn: &mut HttpConn<TcpStream>) -> io::Result<()> {
    let mut first = true;
    loop {
        // Wait for the next request (idle keep-alive period).
        if conn.buffered() == 0 {
            let idle = if first { KEEPALIVE_IDLE } else { shared.opts.close_idle_after.unwrap_or(KEEPALIVE_IDLE) };
            conn.tcp().set_read_timeout(Some(idle))?;
            let filled = conn.fill();
            conn.tcp().set_read_timeout(Some(IO_TIMEOUT))?;
            match filled {
                Ok(0) => return Ok(()),
                Ok(_) => {}
                Err(e) if e.kind() == io::ErrorKind::TimedOut => {
                    // Silent idle close (simulates a short backend keep-alive timeout).
                    let _ = conn.tcp().shutdown(Shutdown::Both);
                    return Ok(());
                }
                Err(e) => return Err(e),
            }
        }
        first = false;
        if !serve_one(shared, conn)? {
            lingering_close(conn.tcp());
            return Ok(());
        }
    }
}

/// Serves one request; `Ok(true)` to keep the connection open.
fn serve_one(shared: &Shared, conn: &mut HttpConn<TcpStream>) -> io::Result<bool> {
    let head = match conn.read_head(true) {
        Ok(Some(h)) => h,
        Ok(None) => return Ok(false),
        Err(e) if e.kind() == io::ErrorKind::InvalidData => {
            send_simple(conn, 400, "bad request head\n")?;
            return Ok(false);
        }
        Err(e) => return Err(e),
    };
    let parts: Vec<&str> = head.start_line.split(' ').collect();
    if parts.len() != 3 || !parts[2].starts_with("HTTP/1.") || parts[0].is_empty() {
        send_simple(conn, 400, "bad request line\n")?;
        return Ok(false);
    }
    let (method, target, version) = (parts[0].to_string(), parts[1].to_string(), parts[2]);
    let version = version.to_string();
    let path = target.split('?').next().unwrap_or_default().to_string();
    let is_head = method == "HEAD";
    let http10 = version == "HTTP/1.0";
    let mut keep_alive = !http10 && !has_token(&head.headers, "connection", "close");

    let framing = match (chunked_final(&head.headers), content_length(&head.headers)) {
        (Some(true), _) => Framing::Chunked,
        (Some(false), _) | (None, Err(_)) => {
            send_simple(conn, 400, "bad request framing\n")?;
            return Ok(false);
        }
        (None, Ok(Some(n))) => Framing::Length(n),
        (None, Ok(None)) => Framing::Empty,
    };

    let mut record = RecordedRequest {
        method: method.clone(),
        target: target.clone(),
        version: version.clone(),
        headers: head.headers.clone(),
        body_len: 0,
        trailers: Vec::new(),
    };

    if path == "/stall-body" {
        push_record(shared, record);
        std::thread::sleep(Duration::from_secs(3));
        return Err(io::Error::other("request body left unread"));
    }
    if path == "/refuse-body" || path == "/answer-early" {
        push_record(shared, record);
        let reply = if path == "/refuse-body" { Reply::text(413, "body refused\n") } else { Reply::text(200, "early") };
        write_reply(shared, conn, reply, is_head, false)?;
        let close = target.contains("then=close");
        std::thread::sleep(if close { Duration::from_millis(100) } else { Duration::from_secs(2) });
        // An error return drops the connection without the lingering close.
        return Err(io::Error::other("request body left unread"));
    }
    let expects_continue = has_token(&head.headers, "expect", "100-continue");
    if expects_continue && path == "/reject-expect" {
        push_record(shared, record);
        let mut reply = Reply::text(417, "expectation rejected\n");
        if let Some(code) = shared.opts.fail_status {
            reply = Reply::text(code, "failing\n");
        }
        write_reply(shared, conn, reply, is_head, false)?;
        return Ok(false);
    }
    if expects_continue && framing != Framing::Empty {
        conn.get_mut().write_all(b"HTTP/1.1 100 Continue\r\n\r\n")?;
    }

    // Read the body: count, checksum, store only for /echo-body.
    let store = path == "/echo-body";
    let mut stored: Vec<u8> = Vec::new();
    let mut too_big = false;
    let mut count = 0u64;
    let mut sum = 0u32;
    let body_result = conn.read_body(framing, &mut |d| {
        count += d.len() as u64;
        sum = sum.wrapping_add(checksum(d));
        if store && !too_big {
            if stored.len() + d.len() <= MAX_STORED_BODY {
                stored.extend_from_slice(d);
            } else {
                too_big = true;
                stored = Vec::new();
            }
        }
    });
    let trailers = match body_result {
        Ok(t) => t,
        Err(e) if e.kind() == io::ErrorKind::InvalidData => {
            send_simple(conn, 400, "bad request body\n")?;
            return Ok(false);
        }
        Err(e) => return Err(e),
    };
    record.body_len = count;
    record.trailers = trailers;
    push_record(shared, record);

    let reply = if let Some(code) = shared.opts.fail_status {
        if code == 204 || code == 304 {
            Reply { status: code, headers: Vec::new(), body: Body::None }
        } else {
            Reply::text(code, format!("backend {} failing with {code}\n", shared.name))
        }
    } else {
        match path.as_str() {
            "/" => Reply::text(200, shared.name.clone()),
            "/echo" => Reply::text(200, head.raw.clone()),
            "/echo-body" if too_big => Reply::text(413, "body too large to echo\n"),
            "/echo-body" => Reply {
                status: 200,
                headers: vec![("Content-Type".into(), "application/octet-stream".into())],
                body: Body::Fixed(stored),
            },
            "/bytes" => Reply {
                status: 200,
                headers: vec![("Content-Type".into(), "application/octet-stream".into())],
                body: Body::Pattern(query_u64(&target, "n")),
            },
            "/chunked" => Reply {
                status: 200,
                headers: vec![("Content-Type".into(), "application/octet-stream".into())],
                body: if http10 {
                    Body::CloseDelimited(query_u64(&target, "n"))
                } else {
                    Body::ChunkedPattern(query_u64(&target, "n"))
                },
            },
            "/close-delimited" => Reply {
                status: 200,
                headers: vec![("Content-Type".into(), "application/octet-stream".into())],
                body: Body::CloseDelimited(query_u64(&target, "n")),
            },
            "/upload" => Reply::text(200, format!("{count} {sum}")),
            "/early-hints" => {
                conn.get_mut().write_all(b"HTTP/1.1 103 Early Hints\r\nLink: </style.css>; rel=preload\r\n\r\n")?;
                conn.get_mut().flush()?;
                Reply::text(200, "ok")
            }
            "/slow" => {
                std::thread::sleep(Duration::from_millis(query_u64(&target, "ms")));
                Reply::text(200, "slow")
            }
            "/reject-expect" => Reply::text(200, "ok"),
            p if p.starts_with("/status/") => match p["/status/".len()..].parse::<u16>() {
                Ok(204) => Reply { status: 204, headers: Vec::new(), body: Body::None },
                Ok(304) => Reply {
                    status: 304,
                    headers: vec![("ETag".into(), "\"terminus-test-etag\"".into())],
                    body: Body::None,
                },
                Ok(code) if (200..=599).contains(&code) => Reply::text(code, format!("status {code}\n")),
                _ => Reply::text(400, "bad status code\n"),
            },
            _ => Reply::text(404, "not found\n"),
        }
    };
    if matches!(reply.body, Body::CloseDelimited(_)) {
        keep_alive = false;
    }
    write_reply(shared, conn, reply, is_head, keep_alive)?;
    Ok(keep_alive)
}

fn push_record(shared: &Shared, record: RecordedRequest) {
    shared.log.lock().expect("log lock").push(record);
    shared.requests.fetch_add(1, Ordering::SeqCst);
}

/// A 400-style answer sent before the request was understood (always closes).
fn send_simple(conn: &mut HttpConn<TcpStream>, status: u16, body: &str) -> io::Result<()> {
    let msg = format!(
        "HTTP/1.1 {status} {}\r\nContent-Type: text/plain\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        reason(status),
        body.len()
    );
    conn.get_mut().write_all(msg.as_bytes())?;
    conn.get_mut().flush()
}

fn write_reply(
    shared: &Shared,
    conn: &mut HttpConn<TcpStream>,
    reply: Reply,
    is_head: bool,
    keep_alive: bool,
) -> io::Result<()> {
    let mut head = format!("HTTP/1.1 {} {}\r\n", reply.status, reason(reply.status));
    head.push_str(&format!("X-Backend: {}\r\n", shared.name));
    for (k, v) in &reply.headers {
        head.push_str(&format!("{k}: {v}\r\n"));
    }
    match &reply.body {
        Body::Fixed(b) => head.push_str(&format!("Content-Length: {}\r\n", b.len())),
        Body::Pattern(n) => head.push_str(&format!("Content-Length: {n}\r\n")),
        Body::ChunkedPattern(_) => head.push_str("Transfer-Encoding: chunked\r\nTrailer: X-Checksum\r\n"),
        Body::None | Body::CloseDelimited(_) => {}
    }
    if !keep_alive {
        head.push_str("Connection: close\r\n");
    }
    head.push_str("\r\n");
    let w = conn.get_mut();
    if is_head {
        w.write_all(head.as_bytes())?;
        return w.flush();
    }
    match reply.body {
        Body::None => w.write_all(head.as_bytes())?,
        Body::Fixed(b) => {
            let mut msg = head.into_bytes();
            msg.extend_from_slice(&b);
            w.write_all(&msg)?;
        }
        Body::Pattern(n) | Body::CloseDelimited(n) => {
            w.write_all(head.as_bytes())?;
            stream_pattern(w, n, 64 * 1024, false)?;
        }
        Body::ChunkedPattern(n) => {
            w.write_all(head.as_bytes())?;
            let sum = stream_pattern(w, n, 16 * 1024, true)?;
            w.write_all(format!("0\r\nX-Checksum: {sum}\r\n\r\n").as_bytes())?;
        }
    }
    w.flush()
}

/// Writes `n` pattern bytes in `piece`-sized writes (as chunks if `chunked`,
/// without the last chunk); returns their checksum.
fn stream_pattern(w: &mut TcpStream, n: u64, piece: usize, chunked: bool) -> io::Result<u32> {
    let mut out: Vec<u8> = Vec::with_capacity(piece + 32);
    let mut sum = 0u32;
    let mut off = 0u64;
    while off < n {
        let len = (n - off).min(piece as u64) as usize;
        out.clear();
        if chunked {
            out.extend_from_slice(format!("{len:x}\r\n").as_bytes());
        }
        let start = out.len();
        out.resize(start + len, 0);
        pattern_bytes(off, &mut out[start..]);
        sum = sum.wrapping_add(checksum(&out[start..]));
        if chunked {
            out.extend_from_slice(b"\r\n");
        }
        w.write_all(&out)?;
        off += len as u64;
    }
    Ok(sum)
}
