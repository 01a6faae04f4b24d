//! The TlsSession actor: one client connection, from TLS handshake to close.
//!
//! - **Owns**: the client socket and its TLS state, the connection's buffers,
//!   and (during an exchange) one upstream connection.
//! - **Receives**: nothing; its socket loop runs inside its context and the
//!   actor stops when the loop ends.
//! - **Sends**: failure reports to the BackendPool through the worker's
//!   Balancer handle; idle upstream connections back to the worker's pool.
//! - **Restart policy**: temporary (never restarted): any error ends the
//!   connection, and only it.
//!
//! One request's path: read and strictly parse the head ([`RequestHead`]),
//! pick a backend, take a pooled connection or connect, write the rewritten
//! head ([`write_upstream_request`]), stream the body, relay 1xx responses,
//! parse the final response head, write it to the client re-framed if
//! needed, stream the body back, then return the upstream connection to the
//! pool and wait for the next request (keep-alive and pipelining).

use std::cell::Cell;
use std::io;
use std::net::SocketAddr;
use std::rc::Rc;
use std::sync::Arc;
use std::time::{Duration, Instant};

use actix::prelude::*;
use futures_lite::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use log::{Level, debug, info, log_enabled};
use rustls::server::{ServerConfig, UnbufferedServerConnection};

use crate::actors::balancer::{Pick, PickError};
use crate::actors::listener::Counted;
use crate::balance::load::RetryToken;
use crate::balance::{BackendId, FailureKind, PickRequest};
use crate::http1::{
    BodyKind, ChunkedDecoder, Forwarding, Limits, RequestHead, ResponseHead, Version, write_downstream_response,
    write_error_response, write_explained_error_response, write_informational, write_retry_response,
    write_upstream_request,
};
use crate::io::{Buf, RelayError, SendDeadline, flush_out, relay_body, relay_buffered_body};
use crate::limits::ConnPermit;
use crate::runtime::{self, TcpStream};
use crate::tls::hello::{Alert, HelloScan, Verdict};
use crate::tls::stream::TlsStream;
use crate::worker::Worker;

/// Log target of the access log: one line per request.
pub const ACCESS_LOG_TARGET: &str = "terminus::access";
/// Bytes read from an idle connection before a pooled buffer is taken:
/// the first read of a new request lands here, on the session's own stack
/// (small, since it is part of every idle connection's future: the TLS
/// stream keeps the rest of the record for the next read, no syscall).
const IDLE_READ: usize = 128;
/// Read size while the ClientHello arrives (most fit in one read).
const HELLO_READ: usize = 2048;
/// What plain HTTP sent to the TLS port is told, in a 400 (as nginx does).
const PLAIN_HTTP_DETAIL: &str = "this port speaks HTTPS, and the request was sent as plain HTTP.";
/// How long a connection closed after a failed handshake or an error
/// answer keeps draining input, so that the client reads the alert or the
/// answer before the close, and how much it drains.
const LINGER_TIME: Duration = Duration::from_secs(1);
const LINGER_BYTES: usize = 256 * 1024;
/// Trailer section limit of chunked bodies.
const MAX_TRAILER_BYTES: usize = 16 * 1024;
/// How long to wait for a backend's `100 Continue` before sending the body anyway.
const CONTINUE_WAIT: Duration = Duration::from_secs(1);
/// Backends tried for one request (failed connects and retries).
const MAX_CONNECT_ATTEMPTS: usize = 4;
/// Answered with 503 when circuit breakers refuse a request.
const RETRY_AFTER: &[u8] = b"Retry-After: 1\r\n";

/// One client connection.
pub struct TlsSession {
    stream: Option<TcpStream>,
    peer: SocketAddr,
    worker: Rc<Worker>,
    /// The client IP's connection slot, released when the session ends.
    _permit: ConnPermit,
    /// The session in its worker's count of the Spread, taken back when it ends.
    _counted: Counted,
}

impl TlsSession {
    /// A session for an accepted connection (counted by the Listener).
    pub fn new(stream: TcpStream, peer: SocketAddr, worker: Rc<Worker>, permit: ConnPermit, counted: Counted) -> Self {
        Self { stream: Some(stream), peer, worker, _permit: permit, _counted: counted }
    }
}

impl Actor for TlsSession {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Context<Self>) {
        let Some(stream) = self.stream.take() else {
            ctx.stop();
            return;
        };
        self.worker.metrics.connections(1);
        let fut = crate::actors::supervisor::contain(serve(stream, self.peer, self.worker.clone()), "session");
        ctx.spawn(fut.into_actor(self).map(|_, _, ctx| ctx.stop()));
    }

    fn stopped(&mut self, _: &mut Context<Self>) {
        self.worker.metrics.connections(-1);
        self.worker.sessions.set(self.worker.sessions.get().saturating_sub(1));
    }
}

async fn serve(tcp: TcpStream, peer: SocketAddr, worker: Rc<Worker>) {
    let conn = worker.next_conn_id();
    // Built in a block: a local still in scope at the next await keeps its
    // slot in the future even after it was moved (the TLS stream's 1,320
    // bytes did, in every idle connection). The session is boxed for the
    // same reason: the future does not hold both it and a copy of it.
    let session = {
        // The handshake's state is large and short-lived: boxed, so that an
        // idle connection's future only holds the session.
        let Some(tls) = Box::pin(handshake(tcp, conn, peer, &worker)).await else {
            return;
        };
        worker.metrics.handshake(Ok(()));
        debug!("session open conn={conn} peer={peer}");
        let identity = client_identity(&tls, &worker);
        let client =
            SendDeadline::new(tls, worker.settings.http.send_timeout, "the client took nothing for http.send_timeout");
        let mut session = Box::new(Session::new(conn, peer, client, worker));
        session.identity = identity;
        session
    };
    session.serve().await;
    debug!("session closed conn={conn} peer={peer}");
}

async fn handshake(tcp: TcpStream, conn: u64, peer: SocketAddr, worker: &Worker) -> Option<TlsStream> {
    let config = worker.tls.borrow().clone();
    let limit = worker.settings.listener.handshake_timeout;
    let failed = match runtime::timeout(limit, accept(tcp, config)).await {
        Ok(Ok(tls)) => return Some(tls),
        Ok(Err(failed)) => failed,
        Err(_) => {
            worker.metrics.handshake(Err(crate::metrics::HandshakeFailure::Timeout));
            debug!("tls handshake timed out conn={conn} peer={peer}");
            return None;
        }
    };
    worker.metrics.handshake(Err(crate::metrics::HandshakeFailure::of(&failed.error)));
    debug!("tls handshake failed conn={conn} peer={peer} error={}", failed.error);
    if let Some(tcp) = failed.tcp {
        linger_tcp(tcp).await;
    }
    None
}

/// A failed handshake, with the socket when Terminus wrote the alert itself.
/// (After the ClientHello, rustls writes its alerts, and for the errors it
/// sends none for, an immediate close tells the client soonest.)
struct HandshakeFailed {
    error: io::Error,
    tcp: Option<TcpStream>,
}

impl HandshakeFailed {
    fn new(error: io::Error, tcp: Option<TcpStream>) -> Self {
        Self { error, tcp }
    }
}

/// Reads and checks the ClientHello's records ([`crate::tls::hello`]), hands them to a
/// rustls connection, then completes the handshake on Terminus's TLS stream.
async fn accept(mut tcp: TcpStream, config: Arc<ServerConfig>) -> Result<TlsStream, HandshakeFailed> {
    let mut scan = HelloScan::new();
    let mut bytes = Vec::new();
    loop {
        let filled = bytes.len();
        bytes.resize(filled + HELLO_READ, 0);
        let n = match tcp.read(&mut bytes[filled..]).await {
            Ok(0) => {
                let eof = io::Error::new(io::ErrorKind::UnexpectedEof, "client closed during its hello");
                return Err(HandshakeFailed::new(eof, None));
            }
            Ok(n) => n,
            Err(e) => return Err(HandshakeFailed::new(e, None)),
        };
        bytes.truncate(filled + n);
        match scan.feed(&bytes) {
            Verdict::NeedMore => {}
            Verdict::Pass => break,
            Verdict::PlainHttp => {
                let mut answer = Vec::new();
                write_explained_error_response(400, PLAIN_HTTP_DETAIL, &mut answer);
                let _ = tcp.write_all(&answer).await;
                let refused = io::Error::new(io::ErrorKind::InvalidData, "plain HTTP sent to the TLS port");
                return Err(HandshakeFailed::new(refused, Some(tcp)));
            }
            Verdict::Refuse(alert) => {
                let _ = tcp.write_all(&alert.record()).await;
                let refused = io::Error::new(io::ErrorKind::InvalidData, format!("client hello refused: {alert:?}"));
                return Err(HandshakeFailed::new(refused, Some(tcp)));
            }
        }
    }
    let conn = match UnbufferedServerConnection::new(config) {
        Ok(conn) => conn,
        Err(e) => return Err(HandshakeFailed::new(io::Error::other(e), None)),
    };
    let mut tls = TlsStream::new(conn, tcp, bytes);
    let Err(error) = tls.handshake().await else {
        return Ok(tls);
    };
    // A ClientHello that rustls refuses is answered like the ones refused
    // above: an alert (rustls' own, or the one it meant: nothing is
    // encrypted yet), then the linger. Later failures got rustls' alert,
    // if any, and close at once.
    let Some(failure) = tls.failure().filter(|f| f.first_flight).cloned() else {
        return Err(HandshakeFailed::new(error, None));
    };
    let _ = tls.flush().await;
    let mut tcp = tls.into_tcp();
    if !failure.alerted {
        let _ = tcp.write_all(&Alert::for_error(&failure.error).record()).await;
    }
    Err(HandshakeFailed::new(error, Some(tcp)))
}

/// After a failed handshake: stop sending, then [`linger`].
async fn linger_tcp(mut tcp: TcpStream) {
    let _ = tcp.shutdown(std::net::Shutdown::Write);
    linger(&mut tcp).await;
}

/// Reads and drops what the client still sends, for up to [`LINGER_TIME`]
/// and [`LINGER_BYTES`], once the proxy has said its last word (an alert, an
/// error answer) and stopped sending. Closing a socket with unread input
/// resets the connection, and the reset can destroy that last word before
/// the client has read it (nginx's lingering close does the same).
async fn linger<R: AsyncRead + Unpin>(src: &mut R) {
    let drain = async {
        let mut sink = [0u8; 1024];
        let mut left = LINGER_BYTES;
        while left > 0 {
            match src.read(&mut sink).await {
                Ok(0) | Err(_) => return,
                Ok(n) => left = left.saturating_sub(n),
            }
        }
    };
    let _ = runtime::timeout(LINGER_TIME, drain).await;
}

/// The subject of the client's verified certificate, if one was presented
/// and the identity header is configured.
fn client_identity(tls: &TlsStream, worker: &Worker) -> Option<String> {
    if worker.settings.listener.client_auth.identity_header.is_empty() {
        return None;
    }
    let leaf = tls.peer_certificates()?.first()?;
    crate::tls::certs::subject(leaf)
}

/// The outcome of one request, for the access log and the loop.
struct Outcome {
    status: u16,
    bytes: u64,
    upstream: Option<SocketAddr>,
    keep_alive: bool,
}

impl Outcome {
    fn local(status: u16, keep_alive: bool) -> Self {
        Self { status, bytes: 0, upstream: None, keep_alive }
    }
}

/// Why an exchange with one upstream connection failed.
#[derive(Debug)]
enum ExchangeError {
    /// The upstream failed before any response byte; `replayable` when the
    /// whole request is still in hand, so a fresh connection may retry it.
    BeforeResponse { replayable: bool, error: io::Error },
    /// No response head within the response timeout (504).
    Timeout,
    /// The backend took none of the request body for
    /// `upstream.send_timeout`, and sent no answer (504).
    SendTimeout(io::Error),
    /// The upstream sent something that is not a valid response (502).
    BadResponse(&'static str),
    /// The request body from the client was malformed (400, close).
    BadRequestBody(u16),
    /// The client went away or stalled: nothing more can be sent to it.
    Client(io::Error),
    /// The response head was sent and then the upstream failed: the client
    /// connection must be closed to signal the truncation.
    Truncated(io::Error),
    /// The backend answered a status that is retried on another backend;
    /// nothing was sent to the client and a retry token is held.
    RetryStatus { status: u16, token: RetryToken },
    /// The whole exchange took longer than `upstream.total_timeout`.
    TotalTimeout,
}

/// One attempt of a request on one backend, as `exchange` needs it.
struct Attempt<'a> {
    id: BackendId,
    pick: &'a PickRequest,
    /// A status in `upstream.retry.on_status` may be retried elsewhere.
    retry_status: bool,
    /// Set once the response head is handed to the client.
    head_sent: &'a Cell<bool>,
    /// When the request was sent (latency is measured to the response head).
    sent: Instant,
}

/// Methods whose requests may be repeated without changing the outcome (RFC 9110 9.2.2).
fn is_idempotent(method: &[u8]) -> bool {
    matches!(method, b"GET" | b"HEAD" | b"OPTIONS" | b"PUT" | b"DELETE" | b"TRACE")
}

/// How an attempt that gets no retry ends in the proxy's own answer.
enum Failed {
    /// A 502 or 504 for what the backend did.
    Upstream(u16),
    /// The client's request body was refused (413 or 400): the connection closes.
    RequestBody(u16),
}

/// A deadline-bounded timeout: `limit`, or less when `deadline` is nearer.
fn within(deadline: Option<Instant>, limit: Duration) -> Duration {
    deadline.map_or(limit, |d| limit.min(d.saturating_duration_since(runtime::now())))
}

/// Inserts a header line (with its CRLF) at the end of the head that
/// starts `out` (before its blank line; a body may follow it).
fn insert_header(out: &mut Vec<u8>, line: &[u8]) {
    if let Some(end) = out.windows(4).position(|w| w == b"\r\n\r\n") {
        let at = end + 2;
        out.splice(at..at, line.iter().copied());
    }
}

/// Adds `Strict-Transport-Security` (`listener.hsts`) to the proxy's own response in `out`.
fn push_hsts(out: &mut Vec<u8>, worker: &Worker) {
    let hsts = &worker.settings.listener.hsts;
    if !hsts.is_empty() {
        insert_field(out, b"Strict-Transport-Security", hsts.as_bytes());
    }
}

/// Inserts `name: value` before the blank line ending the head in `out`, without allocating.
fn insert_field(out: &mut Vec<u8>, name: &[u8], value: &[u8]) {
    if let Some(end) = out.windows(4).position(|w| w == b"\r\n\r\n") {
        let at = end + 2;
        let line = name.iter().chain(b": ").chain(value).chain(b"\r\n");
        out.splice(at..at, line.copied());
    }
}

/// Backends already tried for one request.
#[derive(Default)]
struct Tried {
    ids: [BackendId; MAX_CONNECT_ATTEMPTS],
    len: usize,
}

impl Tried {
    fn as_slice(&self) -> &[BackendId] {
        &self.ids[..self.len]
    }
    fn push(&mut self, id: BackendId) {
        if self.len < self.ids.len() {
            self.ids[self.len] = id;
            self.len += 1;
        }
    }
    fn is_full(&self) -> bool {
        self.len == self.ids.len()
    }
}

struct Session<C> {
    conn: u64,
    peer: SocketAddr,
    client: C,
    worker: Rc<Worker>,
    /// Bytes read from the client and not yet used (pipelined requests too).
    rbuf: Buf,
    /// Bytes read from the current upstream and not yet used.
    ubuf: Buf,
    /// Output batch (heads, chunk framing, small bodies).
    out: Vec<u8>,
    req: RequestHead,
    resp: ResponseHead,
    decoder: ChunkedDecoder,
    /// The verified client-certificate subject, when `listener.client_auth.identity_header` is set.
    identity: Option<String>,
    /// An error answer closes the connection while the client may still be
    /// sending: drain its input for a moment after the close ([`linger`]).
    linger: bool,
}

impl<C: AsyncRead + AsyncWrite + Unpin> Session<C> {
    fn new(conn: u64, peer: SocketAddr, client: C, worker: Rc<Worker>) -> Self {
        Self {
            conn,
            peer,
            client,
            rbuf: Buf::detached(),
            ubuf: Buf::detached(),
            out: Vec::new(),
            req: RequestHead::new(),
            resp: ResponseHead::new(),
            decoder: ChunkedDecoder::new(MAX_TRAILER_BYTES),
            identity: None,
            linger: false,
            worker,
        }
    }

    /// Serves requests until the connection ends, then closes it cleanly.
    async fn serve(mut self: Box<Self>) {
        self.run().await;
        // The next connection reuses the buffers (unread bytes are dropped).
        self.rbuf.detach(&self.worker.bufs);
        self.release_buffers();
        let _ = self.client.close().await;
        if self.linger {
            // Boxed: the drain's buffer is not part of every session's future.
            Box::pin(linger(&mut self.client)).await;
        }
    }

    async fn run(&mut self) {
        loop {
            match self.read_head().await {
                Ok(true) => {}
                Ok(false) => return,
                Err(status) => {
                    self.reply_error(status, false).await;
                    return;
                }
            }
            let started = runtime::now();
            // The exchange's state is boxed per request so that an idle
            // connection holds only the small read state (measured: 1.2 KiB
            // less per idle connection for one small allocation per request).
            // Its size is held under glibc's per-thread cache limit (see the
            // test below).
            let outcome = Box::pin(self.forward()).await;
            // The clock itself: the exchange's last part ran after the wake-up.
            self.worker.metrics.request(outcome.status, outcome.upstream, started.elapsed());
            if log_enabled!(target: ACCESS_LOG_TARGET, Level::Info) {
                self.access_log(&outcome, started);
            }
            if !outcome.keep_alive || self.worker.shutdown.is_fired() {
                return;
            }
        }
    }

    fn access_log(&self, o: &Outcome, started: Instant) {
        let upstream = o.upstream.map_or_else(|| "-".to_owned(), |a| a.to_string());
        if let Some(line) = crate::access_log::line(
            self.worker.settings.log.access_format,
            &self.req,
            self.peer,
            o.status,
            o.bytes,
            &upstream,
            started,
        ) {
            info!(target: ACCESS_LOG_TARGET, "{line}");
            return;
        }
        info!(
            target: ACCESS_LOG_TARGET,
            "{} \"{} {}\" status={} bytes={} upstream={} duration_us={} conn={}",
            self.peer.ip(),
            self.req.method(),
            self.req.target(),
            o.status,
            o.bytes,
            upstream,
            started.elapsed().as_micros(),
            self.conn,
        );
    }

    /// Reads until a complete request head is parsed. `Ok(false)`: the
    /// client closed or went idle; `Err(status)`: reject with that status.
    async fn read_head(&mut self) -> Result<bool, u16> {
        let keepalive_timeout = self.worker.settings.http.keepalive_timeout;
        let header_timeout = self.worker.settings.http.header_timeout;
        let mut deadline: Option<Instant> = None;
        loop {
            if !self.rbuf.is_empty() {
                match self.req.parse(self.rbuf.filled(), &self.worker.limits) {
                    Ok(Some(n)) => {
                        #[cfg(any(test, feature = "fault-injection"))]
                        crate::actors::supervisor::session_fault(self.req.path());
                        self.rbuf.consume(n);
                        return self.admit_request().await;
                    }
                    Ok(None) => {}
                    Err(e) => {
                        let status = match e.status() {
                            431 if request_line_too_long(
                                self.rbuf.filled(),
                                self.worker.settings.http.max_uri_bytes,
                            ) =>
                            {
                                414
                            }
                            s => s,
                        };
                        debug!("request rejected conn={} peer={} status={} error={e}", self.conn, self.peer, status);
                        return Err(status);
                    }
                }
            }
            let idle = self.rbuf.is_empty();
            let result = if idle {
                // Idle between requests: hold no pooled buffer, wait for the
                // keep-alive timeout, or give up at once on shutdown.
                self.release_buffers();
                let mut first = [0u8; IDLE_READ];
                let read = self.client.read(&mut first);
                let shutdown = async {
                    self.worker.shutdown.wait().await;
                    Err(io::Error::new(io::ErrorKind::Interrupted, "shutting down"))
                };
                let result = runtime::timeout(keepalive_timeout, futures_lite::future::or(read, shutdown)).await;
                if let Ok(Ok(n)) = result
                    && n > 0
                {
                    self.rbuf.attach(&self.worker.bufs);
                    self.rbuf.push_slice(&first[..n]);
                }
                result
            } else {
                let read = self.rbuf.read_from(&mut self.client);
                let at = *deadline.get_or_insert_with(|| runtime::now() + header_timeout);
                runtime::timeout(at.saturating_duration_since(runtime::now()), read).await
            };
            match result {
                Ok(Ok(0)) | Ok(Err(_)) => return Ok(false),
                Ok(Ok(_)) => {}
                Err(_) if idle => {
                    debug!("idle connection closed conn={} peer={}", self.conn, self.peer);
                    return Ok(false);
                }
                Err(_) => {
                    debug!("request head timed out conn={} peer={} status=408", self.conn, self.peer);
                    return Err(408);
                }
            }
        }
    }

    /// Gives the connection's buffers back to the worker's pool (the read
    /// buffer only when it holds no pipelined bytes).
    fn release_buffers(&mut self) {
        let bufs = &self.worker.bufs;
        if self.rbuf.is_empty() {
            self.rbuf.detach(bufs);
        }
        self.ubuf.detach(bufs);
        if self.out.capacity() > 0 {
            bufs.give_out(std::mem::take(&mut self.out));
        }
    }

    /// Applies the per-request limits to the head just parsed: 414 for a
    /// long target, 413 for a Content-Length over the body limit, 429 (with
    /// `Retry-After`, then close) when the client IP is over its rate.
    async fn admit_request(&mut self) -> Result<bool, u16> {
        let http = &self.worker.settings.http;
        let status = if self.req.target_bytes().len() > http.max_uri_bytes {
            414
        } else if http.max_body_bytes > 0 && self.req.content_length().is_some_and(|n| n > http.max_body_bytes) {
            413
        } else if let Err(wait) = self.worker.clients.check_rate(self.peer.ip(), runtime::now()) {
            let secs = wait.as_secs() + u64::from(wait.subsec_nanos() > 0);
            debug!("request rejected conn={} peer={} status=429 retry_after={secs}", self.conn, self.peer);
            self.out.clear();
            write_retry_response(429, secs, &mut self.out);
            push_hsts(&mut self.out, &self.worker);
            let _ = flush_out(&mut self.client, &mut self.out).await;
            let _ = self.client.flush().await;
            return Ok(false);
        } else {
            return Ok(true);
        };
        debug!("request rejected conn={} peer={} status={status}", self.conn, self.peer);
        Err(status)
    }

    /// Writes a response the proxy generates itself. `keep_alive` false
    /// closes the connection afterwards.
    async fn reply_error(&mut self, status: u16, keep_alive: bool) {
        self.linger |= !keep_alive;
        self.out.clear();
        write_error_response(status, !keep_alive, &mut self.out);
        push_hsts(&mut self.out, &self.worker);
        let _ = flush_out(&mut self.client, &mut self.out).await;
        let _ = self.client.flush().await;
    }

    /// Forwards the parsed request and relays the response.
    ///
    /// Retries (see `docs/operations.md`): a failed connect is always tried
    /// on another backend (up to [`MAX_CONNECT_ATTEMPTS`] backends). A
    /// request without a body whose method is idempotent (or any method when
    /// `upstream.retry.non_idempotent`) is also retried on another backend
    /// when the upstream failed or timed out before any response byte, or
    /// answered a status in `upstream.retry.on_status`; at most
    /// `upstream.retry.max_retries` times, and only while the retry budget
    /// allows. A stale pooled connection is retried once fresh, on the same
    /// backend, and is not counted.
    async fn forward(&mut self) -> Outcome {
        let worker = self.worker.clone();
        let up = &worker.settings.upstream;
        let started = runtime::now();
        let deadline = (!up.total_timeout.is_zero()).then(|| started + up.total_timeout);
        let pick_req = worker.balancer.request(&self.req, self.peer.ip(), started);
        let retryable =
            self.req.body() == BodyKind::Empty && (is_idempotent(self.req.method_bytes()) || up.retry.non_idempotent);
        let mut tried = Tried::default();
        let mut retries = 0u32;
        let mut _retry: Option<RetryToken> = None;
        let mut fresh_retry_used = false;
        loop {
            // Taken apart at once (a whole `Pick` would keep its slot in the
            // future); the in-flight count lasts until the attempt ends.
            let Pick { id, addr, in_flight: _in_flight } = match worker.balancer.pick(&pick_req, tried.as_slice()) {
                Ok(pick) => pick,
                Err(PickError::Overloaded) => {
                    debug!("every eligible backend at its limit conn={} status=503", self.conn);
                    return self.overloaded().await;
                }
                Err(PickError::NoneEligible) => {
                    let status = if tried.len == 0 { 503 } else { 502 };
                    debug!("no backend conn={} status={status} tried={}", self.conn, tried.len);
                    return self.fail(status).await;
                }
            };
            tried.push(id);
            // In a block: `pooled` is not kept in the future past it.
            let (mut upstream, reused) = {
                let pooled = if fresh_retry_used { None } else { worker.pool.borrow_mut().take(addr, runtime::now()) };
                match pooled {
                    Some(stream) => (stream, true),
                    None if deadline.is_some_and(|d| runtime::now() >= d) => {
                        debug!("exchange exceeded total timeout before connecting conn={}", self.conn);
                        return self.fail(504).await;
                    }
                    None => {
                        let connecting = worker.balancer.connecting(id);
                        let result = runtime::connect(addr, within(deadline, up.connect_timeout)).await;
                        drop(connecting);
                        match result {
                            Ok(stream) => {
                                worker.balancer.connected(id);
                                (stream, false)
                            }
                            Err(e) => {
                                debug!("upstream connect failed conn={} upstream={addr} error={e}", self.conn);
                                worker.pool.borrow_mut().forget(addr);
                                worker.balancer.failed(id, addr, FailureKind::Connect, connect_reason(&e));
                                if tried.is_full() || deadline.is_some_and(|d| runtime::now() >= d) {
                                    return self.fail(502).await;
                                }
                                worker.metrics.retry();
                                continue;
                            }
                        }
                    }
                }
            };
            let may_retry = retryable
                && retries < up.retry.max_retries
                && !tried.is_full()
                && worker.balancer.has_other(tried.as_slice());
            let head_sent = Cell::new(false);
            let attempt =
                Attempt { id, pick: &pick_req, retry_status: may_retry, head_sent: &head_sent, sent: runtime::now() };
            let result = match deadline {
                None => self.exchange(&mut upstream, addr, &attempt).await,
                // (Not `Some(d)`: a binding would keep 16 bytes in the future.)
                Some(_) => {
                    runtime::timeout(within(deadline, Duration::MAX), self.exchange(&mut upstream, addr, &attempt))
                        .await
                        .unwrap_or(Err(ExchangeError::TotalTimeout))
                }
            };
            // The proxy's own answer, if it comes to one, is written after
            // this block, so that the result and the retry closure are not
            // kept in the future while it is.
            let failed = {
                let retry = |why: &str| {
                    let token = if may_retry { worker.balancer.try_retry() } else { None };
                    if token.is_some() {
                        debug!("retrying on another backend conn={} upstream={addr} after={why}", self.conn);
                    } else if may_retry {
                        debug!("retry budget exhausted conn={} upstream={addr}", self.conn);
                    }
                    token
                };
                match result {
                    Ok((outcome, reusable)) => {
                        if reusable {
                            worker.pool.borrow_mut().put(addr, upstream, runtime::now());
                        }
                        return outcome;
                    }
                    Err(ExchangeError::BeforeResponse { replayable: true, error }) if reused && !fresh_retry_used => {
                        debug!(
                            "stale pooled connection conn={} upstream={addr} error={error}; retrying fresh",
                            self.conn
                        );
                        fresh_retry_used = true;
                        self.worker.metrics.retry();
                        // Same backend, new connection: undo this pick.
                        tried.len -= 1;
                        continue;
                    }
                    Err(ExchangeError::BeforeResponse { error, .. }) => {
                        debug!("upstream failed before responding conn={} upstream={addr} error={error}", self.conn);
                        worker.balancer.failed(id, addr, FailureKind::Reset, "reset before response");
                        if let Some(token) = retry("reset") {
                            (_retry, retries) = (Some(token), retries + 1);
                            worker.metrics.retry();
                            continue;
                        }
                        Failed::Upstream(502)
                    }
                    Err(ExchangeError::Timeout) => {
                        debug!("upstream response timed out conn={} upstream={addr}", self.conn);
                        worker.balancer.failed(id, addr, FailureKind::Timeout, "response head timed out");
                        if let Some(token) = retry("timeout") {
                            (_retry, retries) = (Some(token), retries + 1);
                            worker.metrics.retry();
                            continue;
                        }
                        Failed::Upstream(504)
                    }
                    Err(ExchangeError::SendTimeout(error)) => {
                        debug!(
                            "upstream stopped taking the request body conn={} upstream={addr} error={error}",
                            self.conn
                        );
                        worker.balancer.failed(id, addr, FailureKind::Timeout, "request body not taken");
                        Failed::Upstream(504)
                    }
                    Err(ExchangeError::RetryStatus { status, token }) => {
                        debug!("retrying on another backend conn={} upstream={addr} after=status_{status}", self.conn);
                        (_retry, retries) = (Some(token), retries + 1);
                        worker.metrics.retry();
                        continue;
                    }
                    Err(ExchangeError::TotalTimeout) if head_sent.get() => {
                        debug!("exchange exceeded total timeout mid-response conn={} upstream={addr}", self.conn);
                        return Outcome {
                            status: self.resp.status(),
                            bytes: 0,
                            upstream: Some(addr),
                            keep_alive: false,
                        };
                    }
                    Err(ExchangeError::TotalTimeout) => {
                        debug!("exchange exceeded total timeout conn={} upstream={addr}", self.conn);
                        Failed::Upstream(504)
                    }
                    Err(ExchangeError::BadResponse(reason)) => {
                        debug!("invalid upstream response conn={} upstream={addr} reason={reason}", self.conn);
                        Failed::Upstream(502)
                    }
                    Err(ExchangeError::BadRequestBody(status)) => {
                        debug!("request body rejected conn={} status={status}", self.conn);
                        Failed::RequestBody(status)
                    }
                    Err(ExchangeError::Client(e)) => {
                        debug!("client failed mid-request conn={} error={e}", self.conn);
                        return Outcome { status: 499, bytes: 0, upstream: Some(addr), keep_alive: false };
                    }
                    Err(ExchangeError::Truncated(e)) => {
                        debug!("response truncated conn={} upstream={addr} error={e}", self.conn);
                        return Outcome {
                            status: self.resp.status(),
                            bytes: 0,
                            upstream: Some(addr),
                            keep_alive: false,
                        };
                    }
                }
            };
            return match failed {
                Failed::Upstream(status) => self.fail_from(status, addr).await,
                Failed::RequestBody(status) => {
                    let mut o = self.fail(status).await;
                    o.keep_alive = false;
                    o
                }
            };
        }
    }

    /// Answers 503 with `Retry-After` when every eligible backend is at its
    /// circuit-breaker limit (counted per backend by the balancer).
    async fn overloaded(&mut self) -> Outcome {
        let keep_alive = self.req.keep_alive() && self.req.body() == BodyKind::Empty;
        self.out.clear();
        write_error_response(503, !keep_alive, &mut self.out);
        insert_header(&mut self.out, RETRY_AFTER);
        push_hsts(&mut self.out, &self.worker);
        let _ = flush_out(&mut self.client, &mut self.out).await;
        let _ = self.client.flush().await;
        Outcome::local(503, keep_alive)
    }

    /// Answers with an error status. The connection is kept only when the
    /// whole request was consumed (no body left unread).
    async fn fail(&mut self, status: u16) -> Outcome {
        let keep_alive = self.req.keep_alive() && self.req.body() == BodyKind::Empty;
        self.reply_error(status, keep_alive).await;
        Outcome::local(status, keep_alive)
    }

    async fn fail_from(&mut self, status: u16, addr: SocketAddr) -> Outcome {
        // The request body may have been partly consumed: close.
        self.reply_error(status, false).await;
        Outcome { status, bytes: 0, upstream: Some(addr), keep_alive: false }
    }

    /// One request/response exchange over one upstream connection.
    /// Returns the outcome and whether the upstream connection is clean
    /// enough to be pooled.
    async fn exchange(
        &mut self,
        up: &mut TcpStream,
        addr: SocketAddr,
        attempt: &Attempt<'_>,
    ) -> Result<(Outcome, bool), ExchangeError> {
        let worker = self.worker.clone();
        let settings = &worker.settings;
        let response_timeout = settings.upstream.response_timeout;
        let idle_timeout = settings.upstream.idle_timeout;
        let body = self.req.body();
        let expect_continue = self.req.expects_continue() && body != BodyKind::Empty;
        let via = settings.http.via.then_some("terminus");

        // 1. The head, with a small Content-Length body that is already
        //    buffered: the whole request stays in `out` and is replayable.
        if self.out.capacity() == 0 {
            self.out = self.worker.bufs.take_out();
        }
        self.ubuf.attach_upstream(&self.worker.bufs);
        self.out.clear();
        // In a block: what the head is written from is not kept in the
        // exchange's future (it is boxed per request).
        {
            // Only an HTTP/1.0 request without Host needs one made up.
            let default_host = if self.req.host_bytes().is_none() { addr.to_string() } else { String::new() };
            let fwd = Forwarding {
                client_ip: self.peer.ip(),
                proto: "https",
                default_host: &default_host,
                via,
                identity_header: &settings.listener.client_auth.identity_header,
                identity: self.identity.as_deref(),
            };
            write_upstream_request(&self.req, &fwd, &mut self.out);
        }
        let mut body_sent = body == BodyKind::Empty;
        if let BodyKind::Length(n) = body
            && !expect_continue
            && (self.rbuf.len() as u64) >= n
            && self.out.len() + (n as usize) <= crate::io::OUT_BATCH
        {
            let n = n as usize;
            self.out.extend_from_slice(&self.rbuf.filled()[..n]);
            self.rbuf.consume(n);
            body_sent = true;
        }
        up.write_all(&self.out)
            .await
            .map_err(|error| ExchangeError::BeforeResponse { replayable: body_sent, error })?;
        self.out.clear();
        self.ubuf.consume(self.ubuf.len());

        // 2. Expect: 100-continue: give the backend a moment to answer first.
        let mut final_early = false;
        if expect_continue {
            match runtime::timeout(CONTINUE_WAIT, self.read_response_head(up, false)).await {
                Err(_) => {}
                Ok(result) => {
                    result?;
                    if self.resp.is_informational() {
                        self.relay_informational().await?;
                    } else {
                        final_early = true;
                    }
                }
            }
        }

        // 3. The request body (chunked ones cut off past the body limit).
        //    Boxed: a bodiless request's exchange does not carry its state.
        if !body_sent && !final_early {
            body_sent = Box::pin(self.send_body(up, addr)).await?;
        }
        // The client's body was not read to its end: drain it for a moment
        // after the close, so the answer is not lost to a reset.
        self.linger |= !body_sent;

        // 4. Response heads: relay 1xx, stop at the final one.
        if !final_early {
            loop {
                runtime::timeout(response_timeout, self.read_response_head(up, true))
                    .await
                    .map_err(|_| ExchangeError::Timeout)??;
                if !self.resp.is_informational() {
                    break;
                }
                self.relay_informational().await?;
            }
        }

        // The final head arrived: feed the backend's latency and health, and
        // hand a retryable status back to `forward` while nothing was sent.
        let status = self.resp.status();
        let now = runtime::now();
        worker.balancer.responded(attempt.id, addr, status, now.saturating_duration_since(attempt.sent), now);
        if attempt.retry_status
            && settings.upstream.retry.on_status.contains(&status)
            && let Some(token) = worker.balancer.try_retry()
        {
            return Err(ExchangeError::RetryStatus { status, token });
        }

        // 5. The response, re-framed for this client.
        let is_head = self.req.is_head();
        let client_keep_alive = self.req.keep_alive() && body_sent && !final_early;
        let input = self.resp.body(is_head);
        self.decoder.set_max_body(None);
        self.out.clear();
        let framing =
            write_downstream_response(&self.resp, is_head, self.req.version(), client_keep_alive, via, &mut self.out);
        let hsts = &settings.listener.hsts;
        if !hsts.is_empty() && self.resp.header("strict-transport-security").is_none() {
            insert_field(&mut self.out, b"Strict-Transport-Security", hsts.as_bytes());
        }
        if let Some(cookie) = worker.balancer.sticky_cookie(attempt.pick, attempt.id) {
            insert_header(&mut self.out, format!("Set-Cookie: {cookie}\r\n").as_bytes());
        }
        attempt.head_sent.set(true);
        let relayed = match relay_buffered_body(input, framing.body, &mut self.ubuf, &mut self.out) {
            Some(n) => flush_out(&mut self.client, &mut self.out).await.map(|()| n),
            // Boxed: only a body still to be read needs the relay's state,
            // and without it the per-request future fits glibc's per-thread
            // cache (1,032 bytes).
            None => {
                Box::pin(relay_body(
                    input,
                    framing.body,
                    up,
                    &mut self.ubuf,
                    &mut self.client,
                    &mut self.out,
                    &mut self.decoder,
                    idle_timeout,
                ))
                .await
            }
        };
        let bytes = match relayed {
            Ok(n) => n,
            Err(RelayError::Write(e)) => return Err(ExchangeError::Client(e)),
            Err(RelayError::Read(e)) => return Err(ExchangeError::Truncated(e)),
            Err(RelayError::Framing(e)) => {
                return Err(ExchangeError::Truncated(io::Error::new(io::ErrorKind::InvalidData, e)));
            }
        };
        if client_keep_alive {
            self.client.flush().await.map_err(ExchangeError::Client)?;
        }
        // (Otherwise the session ends here: closing the client connection
        // sends the response's tail together with the close_notify.)

        // 6. Keep the upstream connection if the exchange left it clean.
        let reusable = body_sent
            && !final_early
            && self.resp.keep_alive()
            && input != BodyKind::CloseDelimited
            && self.ubuf.is_empty();
        Ok((Outcome { status, bytes, upstream: Some(addr), keep_alive: framing.keep_alive }, reusable))
    }

    /// Streams the request body to the backend. `Ok(false)`: the backend
    /// stopped the upload, by answering with an error status before the
    /// body ended or by closing (a failed write included): its answer, if
    /// any, is read next as usual.
    async fn send_body(&mut self, up: &TcpStream, addr: SocketAddr) -> Result<bool, ExchangeError> {
        let worker = self.worker.clone();
        let settings = &worker.settings;
        let body = self.req.body();
        self.decoder.set_max_body(Some(settings.http.max_body_bytes).filter(|&n| n > 0));
        // A large body streams through a buffer of the upstream size (64 KiB
        // reads of what the client has sent, 64 KiB writes).
        if matches!(body, BodyKind::Chunked) || matches!(body, BodyKind::Length(n) if n > crate::io::READ_BUF as u64) {
            self.rbuf.enlarge(&worker.bufs);
        }
        // The backend may answer before it has the whole body: an error
        // status (a 413 for a body it will not take) or its close stops the
        // upload.
        let mut to_upstream =
            SendDeadline::new(up, settings.upstream.send_timeout, "the backend took nothing for upstream.send_timeout");
        let relay = relay_body(
            body,
            body,
            &mut self.client,
            &mut self.rbuf,
            &mut to_upstream,
            &mut self.out,
            &mut self.decoder,
            settings.http.body_timeout,
        );
        let refused = upload_refused(up, &mut self.ubuf, &mut self.resp, &worker.limits);
        let ended = futures_lite::future::or(async { Some(relay.await) }, async {
            refused.await;
            None
        })
        .await;
        match ended {
            Some(Ok(_)) => Ok(true),
            None => {
                debug!("backend answered or closed before the request body ended conn={} upstream={addr}", self.conn);
                Ok(false)
            }
            Some(Err(RelayError::Read(e))) => Err(ExchangeError::Client(e)),
            Some(Err(RelayError::Framing(e))) => Err(ExchangeError::BadRequestBody(e.status())),
            Some(Err(RelayError::Write(e))) if e.kind() == io::ErrorKind::TimedOut => {
                Err(ExchangeError::SendTimeout(e))
            }
            // Its answer may be waiting to be read all the same.
            Some(Err(RelayError::Write(e))) => {
                debug!("backend stopped reading the request body conn={} upstream={addr} error={e}", self.conn);
                Ok(false)
            }
        }
    }

    /// Reads one response head into `self.resp`. Before any byte arrives an
    /// end of stream or error is `BeforeResponse` (retryable on a reused
    /// connection while the request is in hand).
    async fn read_response_head(&mut self, up: &mut TcpStream, replayable_if_empty: bool) -> Result<(), ExchangeError> {
        let limits = self.worker.limits;
        let mut seen_any = !self.ubuf.is_empty();
        loop {
            if !self.ubuf.is_empty() {
                match self.resp.parse(self.ubuf.filled(), &limits) {
                    Ok(Some(n)) => {
                        self.ubuf.consume(n);
                        return Ok(());
                    }
                    Ok(None) => {}
                    Err(_) => return Err(ExchangeError::BadResponse("malformed response head")),
                }
            }
            match self.ubuf.read_from(up).await {
                Ok(0) if !seen_any => {
                    return Err(ExchangeError::BeforeResponse {
                        replayable: replayable_if_empty && self.req.body() == BodyKind::Empty,
                        error: io::ErrorKind::UnexpectedEof.into(),
                    });
                }
                Ok(0) => return Err(ExchangeError::BadResponse("connection closed inside the response head")),
                Ok(_) => seen_any = true,
                Err(error) if !seen_any => {
                    return Err(ExchangeError::BeforeResponse {
                        replayable: replayable_if_empty && self.req.body() == BodyKind::Empty,
                        error,
                    });
                }
                Err(_) => return Err(ExchangeError::BadResponse("read error inside the response head")),
            }
        }
    }

    /// Passes a 1xx response on to an HTTP/1.1 client (HTTP/1.0 clients do
    /// not understand them). A 101 is refused: Terminus never asks for an
    /// upgrade, so a backend switching protocols is broken.
    async fn relay_informational(&mut self) -> Result<(), ExchangeError> {
        if self.resp.status() == 101 {
            return Err(ExchangeError::BadResponse("unexpected 101 Switching Protocols"));
        }
        if self.req.version() == Version::Http11 {
            self.out.clear();
            write_informational(&self.resp, &mut self.out);
            self.client.write_all(&self.out).await.map_err(ExchangeError::Client)?;
            self.client.flush().await.map_err(ExchangeError::Client)?;
            self.out.clear();
        }
        Ok(())
    }
}

/// Watches the backend while the request body is sent, reading what it
/// sends into `ubuf` (left there for the usual read of the response), and
/// resolves when the upload should stop: the backend's final head has an
/// error status (after any 1xx), or its connection ended or failed, or what
/// it sent cannot be a head. After a final head of any other status the
/// backend may still be reading the body: the watch goes on only for the
/// end of its connection, while `ubuf` has room for the response's body.
async fn upload_refused(up: &TcpStream, ubuf: &mut Buf, resp: &mut ResponseHead, limits: &Limits) {
    // Where the next head starts in `ubuf`, past the 1xx heads.
    let mut at = 0;
    let mut answered = false;
    loop {
        if ubuf.is_full() {
            return std::future::pending().await;
        }
        match ubuf.read_from(&mut &*up).await {
            Ok(n) if n > 0 => {}
            _ => return,
        }
        while !answered {
            match resp.parse(&ubuf.filled()[at..], limits) {
                Ok(Some(n)) if resp.is_informational() => at += n,
                Ok(Some(_)) if resp.status() >= 400 => return,
                Ok(Some(_)) => answered = true,
                Ok(None) if !ubuf.is_full() => break,
                Ok(None) | Err(_) => return,
            }
        }
    }
}

/// Whether the request line at the start of `buf` (after leading empty
/// lines) is unterminated and already longer than `max_uri` allows: a head
/// too large because of its target gets 414, not 431.
fn request_line_too_long(buf: &[u8], max_uri: usize) -> bool {
    let mut start = 0;
    while buf.get(start..start + 2) == Some(b"\r\n") {
        start += 2;
    }
    let rest = buf.get(start..).unwrap_or_default();
    let line = rest.windows(2).position(|w| w == b"\r\n").unwrap_or(rest.len());
    // "METHOD SP target SP HTTP/1.1": allow for a method and version.
    line > max_uri.saturating_add(32)
}

fn connect_reason(e: &io::Error) -> &'static str {
    match e.kind() {
        io::ErrorKind::ConnectionRefused => "connect refused",
        io::ErrorKind::TimedOut => "connect timed out",
        io::ErrorKind::ConnectionReset => "connect reset",
        _ => "connect failed",
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tls::stream::TlsStream;

    /// The size of the future `f` returns.
    fn future_size<'a, S: 'a, F: Future>(_: impl FnOnce(&'a mut S) -> F) -> usize {
        std::mem::size_of::<F>()
    }

    /// Each request boxes this future. Up to 1,032 bytes glibc serves the
    /// box from its per-thread cache; above, every request's malloc and
    /// free take the slower path (measured: 1.8 % of a keep-alive request's
    /// instructions, and a count that varied with the heap's layout).
    #[test]
    fn the_per_request_future_fits_glibcs_thread_cache() {
        let size = future_size(Session::<SendDeadline<TlsStream>>::forward);
        assert!(size <= 1032, "the boxed per-request future takes {size} bytes");
    }
}
