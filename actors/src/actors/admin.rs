//! The Admin actor: the operator's plain-HTTP endpoint (off by default,
//! loopback unless a token is set).
//!
//! - **Owns**: the admin listening socket and its accept loop; each request
//!   is served on its own task and answered with `Connection: close`.
//! - **Receives**: nothing but its connections.
//! - **Sends**: [`ProxyStatus`] to the Control actor for `/status`,
//!   `/metrics`, `/readyz` and the dashboard.
//! - **Restart policy**: supervised (`supervision.*`); a restart re-spawns
//!   the accept loop on the same socket.
//!
//! Endpoints: `/healthz` (the control plane answers), `/readyz` (accepting
//! and at least one backend up), `/status` (JSON), `/metrics` (Prometheus
//! text format 0.0.4), `/` (the dashboard, which polls `/status`).

use std::fmt::Write;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use actix::prelude::*;
use futures_lite::AsyncWriteExt;
use log::{debug, warn};

use crate::access_log::json_escape;
use crate::actors::control::{Control, ProxyStatus, Status};
use crate::metrics::{HandshakeFailure, LATENCY_BUCKETS};
use crate::runtime::{self, TcpListener, TcpStream};

/// Largest admin request head accepted.
const MAX_REQUEST: usize = 8 * 1024;
/// Deadline for reading a request and for the status query.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(5);
/// The dashboard page.
const DASHBOARD: &str = include_str!("dashboard.html");

/// Serves the admin endpoints.
pub struct Admin {
    socket: Arc<TcpListener>,
    control: Addr<Control>,
    token: Arc<str>,
}

impl Admin {
    /// An admin endpoint on a bound socket.
    pub(crate) fn new(socket: Arc<TcpListener>, control: Addr<Control>, token: &str) -> Self {
        Self { socket, control, token: token.into() }
    }
}

impl Actor for Admin {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Context<Self>) {
        let (socket, control, token) = (self.socket.clone(), self.control.clone(), self.token.clone());
        ctx.spawn(
            async move {
                loop {
                    match socket.accept().await {
                        Ok((stream, peer)) => {
                            actix::spawn(serve(stream, peer, control.clone(), token.clone()));
                        }
                        Err(e) => {
                            warn!("admin accept failed error={e}");
                            runtime::sleep(Duration::from_millis(100)).await;
                        }
                    }
                }
            }
            .into_actor(self),
        );
    }
}

impl Supervised for Admin {}

/// A response: status, content type, body.
type Reply = (u16, &'static str, String);

async fn serve(mut stream: TcpStream, peer: SocketAddr, control: Addr<Control>, token: Arc<str>) {
    let head = crate::io::read_small_head(&mut stream, MAX_REQUEST, REQUEST_TIMEOUT).await;
    let (status, ctype, body, head_only) = match head {
        Some(buf) => {
            let mut headers = [httparse::EMPTY_HEADER; 32];
            let mut req = httparse::Request::new(&mut headers);
            match req.parse(&buf) {
                Ok(httparse::Status::Complete(_)) => {
                    let method = req.method.unwrap_or("");
                    let target = req.path.unwrap_or("/");
                    let auth = req
                        .headers
                        .iter()
                        .find(|h| h.name.eq_ignore_ascii_case("authorization"))
                        .and_then(|h| std::str::from_utf8(h.value).ok());
                    let (s, c, b) = route(method, target, auth, &control, &token).await;
                    (s, c, b, method == "HEAD")
                }
                _ => (400, "text/plain", "bad request\n".to_owned(), false),
            }
        }
        None => {
            debug!("admin request unreadable peer={peer}");
            return;
        }
    };
    let mut out = format!(
        "HTTP/1.1 {status} {}\r\ncontent-type: {ctype}\r\ncontent-length: {}\r\ncache-control: no-store\r\n\
         connection: close\r\n\r\n",
        reason(status),
        body.len()
    );
    if !head_only {
        out.push_str(&body);
    }
    let _ = stream.write_all(out.as_bytes()).await;
    let _ = stream.close().await;
}

fn reason(status: u16) -> &'static str {
    match status {
        200 => "OK",
        400 => "Bad Request",
        401 => "Unauthorized",
        404 => "Not Found",
        405 => "Method Not Allowed",
        _ => "Service Unavailable",
    }
}

/// Whether the request carries the token (always true without one).
pub fn authorized(token: &str, auth: Option<&str>, query: Option<&str>) -> bool {
    if token.is_empty() {
        return true;
    }
    let bearer = auth.and_then(|a| a.strip_prefix("Bearer ")).map(str::trim);
    let from_query = query.and_then(|q| q.split('&').find_map(|kv| kv.strip_prefix("token=")));
    [bearer, from_query].into_iter().flatten().any(|t| constant_time_eq(t.as_bytes(), token.as_bytes()))
}

fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

async fn route(method: &str, target: &str, auth: Option<&str>, control: &Addr<Control>, token: &str) -> Reply {
    if method != "GET" && method != "HEAD" {
        return (405, "text/plain", "method not allowed\n".into());
    }
    let (path, query) = target.split_once('?').map_or((target, None), |(p, q)| (p, Some(q)));
    let status = || async {
        match runtime::timeout(REQUEST_TIMEOUT, control.send(ProxyStatus)).await {
            Ok(Ok(Ok(s))) => Some(s),
            _ => None,
        }
    };
    match path {
        "/healthz" => match status().await {
            Some(_) => (200, "text/plain", "ok\n".into()),
            None => (503, "text/plain", "control plane not answering\n".into()),
        },
        "/readyz" => match status().await {
            Some(s) if !s.shutting_down && s.backends.iter().any(|b| b.up) => (200, "text/plain", "ready\n".into()),
            Some(s) if s.shutting_down => (503, "text/plain", "shutting down\n".into()),
            _ => (503, "text/plain", "no backend up\n".into()),
        },
        "/" | "/status" | "/metrics" if !authorized(token, auth, query.filter(|_| path == "/")) => {
            (401, "text/plain", "bearer token required\n".into())
        }
        "/" => (200, "text/html; charset=utf-8", DASHBOARD.to_owned()),
        "/status" => match status().await {
            Some(s) => (200, "application/json", status_json(&s)),
            None => (503, "text/plain", "control plane not answering\n".into()),
        },
        "/metrics" => match status().await {
            Some(s) => (200, "text/plain; version=0.0.4", prometheus(&s)),
            None => (503, "text/plain", "control plane not answering\n".into()),
        },
        _ => (404, "text/plain", "not found\n".into()),
    }
}

/// `/status` as JSON.
pub fn status_json(s: &Status) -> String {
    let t = &s.totals;
    let mut out = String::with_capacity(1024);
    let _ = write!(
        out,
        "{{\"listen\":\"{}\",\"workers\":{},\"uptime_secs\":{},\"shutting_down\":{},\"active_connections\":{},",
        s.listen, s.workers, s.uptime_secs, s.shutting_down, t.active_connections
    );
    let _ = write!(
        out,
        "\"requests\":{{\"1xx\":{},\"2xx\":{},\"3xx\":{},\"4xx\":{},\"5xx\":{}}},\"retries\":{},\"ejections\":{},\"backends\":[",
        t.requests[0], t.requests[1], t.requests[2], t.requests[3], t.requests[4], t.retries, t.ejections
    );
    for (i, b) in s.backends.iter().enumerate() {
        let (requests, latency_us) = t.backends.get(&b.addr).copied().unwrap_or_default();
        let _ = write!(
            out,
            "{}{{\"address\":\"{}\",\"weight\":{},\"up\":{},\"state\":\"{}\",\"failures\":{},\"requests\":{requests},\"latency_us\":{latency_us}}}",
            if i == 0 { "" } else { "," },
            b.addr,
            b.weight,
            b.up,
            if b.up { "up" } else { "down" },
            b.failures
        );
    }
    out.push_str("],\"restarts\":");
    events_json(&mut out, &s.restarts);
    out.push_str(",\"transitions\":");
    events_json(&mut out, &s.transitions);
    out.push('}');
    out
}

fn events_json(out: &mut String, events: &[crate::metrics::Event]) {
    out.push('[');
    for (i, e) in events.iter().enumerate() {
        let _ = write!(
            out,
            "{}{{\"at\":{},\"subject\":\"{}\",\"what\":\"{}\"}}",
            if i == 0 { "" } else { "," },
            e.at,
            json_escape(&e.subject),
            json_escape(&e.what)
        );
    }
    out.push(']');
}

/// `/metrics` in the Prometheus text format.
pub fn prometheus(s: &Status) -> String {
    let t = &s.totals;
    let mut o = String::with_capacity(4096);
    let family = |o: &mut String, name: &str, kind: &str, help: &str| {
        let _ = writeln!(o, "# HELP {name} {help}\n# TYPE {name} {kind}");
    };
    family(&mut o, "terminus_requests_total", "counter", "Requests answered, by status class.");
    for (i, n) in t.requests.iter().enumerate() {
        let _ = writeln!(o, "terminus_requests_total{{class=\"{}xx\"}} {n}", i + 1);
    }
    family(
        &mut o,
        "terminus_upstream_latency_seconds",
        "histogram",
        "Time from request head to response end, for requests that reached a backend.",
    );
    let mut cumulative = 0;
    for (bound, n) in LATENCY_BUCKETS.iter().zip(t.latency_buckets) {
        cumulative += n;
        let _ = writeln!(o, "terminus_upstream_latency_seconds_bucket{{le=\"{bound}\"}} {cumulative}");
    }
    let _ = writeln!(o, "terminus_upstream_latency_seconds_bucket{{le=\"+Inf\"}} {}", t.latency_count);
    let _ = writeln!(o, "terminus_upstream_latency_seconds_sum {}", t.latency_sum);
    let _ = writeln!(o, "terminus_upstream_latency_seconds_count {}", t.latency_count);
    family(&mut o, "terminus_active_connections", "gauge", "Open client connections.");
    let _ = writeln!(o, "terminus_active_connections {}", t.active_connections);
    family(&mut o, "terminus_tls_handshakes_total", "counter", "Completed TLS handshakes.");
    let _ = writeln!(o, "terminus_tls_handshakes_total {}", t.handshakes);
    family(&mut o, "terminus_tls_handshake_failures_total", "counter", "Failed TLS handshakes, by reason.");
    for (r, n) in HandshakeFailure::ALL.iter().zip(t.handshake_failures) {
        let _ = writeln!(o, "terminus_tls_handshake_failures_total{{reason=\"{}\"}} {n}", r.label());
    }
    family(&mut o, "terminus_backend_up", "gauge", "1 when the backend takes requests.");
    for b in &s.backends {
        let _ = writeln!(o, "terminus_backend_up{{backend=\"{}\"}} {}", b.addr, u8::from(b.up));
    }
    family(&mut o, "terminus_backend_requests_total", "counter", "Responses relayed from each backend.");
    for (addr, (n, _)) in &t.backends {
        let _ = writeln!(o, "terminus_backend_requests_total{{backend=\"{addr}\"}} {n}");
    }
    family(&mut o, "terminus_backend_ejections_total", "counter", "Backends taken out of rotation after failures.");
    let _ = writeln!(o, "terminus_backend_ejections_total {}", t.ejections);
    family(&mut o, "terminus_retries_total", "counter", "Requests retried on a fresh connection or another backend.");
    let _ = writeln!(o, "terminus_retries_total {}", t.retries);
    family(&mut o, "terminus_restarts_total", "counter", "Supervised actor restarts, by actor.");
    for (actor, n) in &t.restarts {
        let _ = writeln!(o, "terminus_restarts_total{{actor=\"{}\"}} {n}", json_escape(actor));
    }
    o
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn token_rules() {
        let cases = [
            ("", None, None, true),
            ("s3cret", None, None, false),
            ("s3cret", Some("Bearer s3cret"), None, true),
            ("s3cret", Some("Bearer wrong"), None, false),
            ("s3cret", Some("Basic s3cret"), None, false),
            ("s3cret", None, Some("token=s3cret"), true),
            ("s3cret", None, Some("a=1&token=s3cret"), true),
            ("s3cret", None, Some("token=s3cre"), false),
        ];
        for (token, auth, query, want) in cases {
            assert_eq!(authorized(token, auth, query), want, "{token} {auth:?} {query:?}");
        }
    }
}
