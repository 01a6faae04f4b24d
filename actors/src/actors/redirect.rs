//! The Redirect actor: the optional plain-HTTP listener that sends every
//! request to HTTPS (`[redirect]`, off by default).
//!
//! - **Owns**: the plain-HTTP listening socket and its accept loop; each
//!   request is answered on its own task with `Connection: close`.
//! - **Receives**: nothing but its connections.
//! - **Sends**: nothing.
//! - **Restart policy**: supervised (`supervision.*`); a restart re-spawns
//!   the accept loop on the same socket.
//!
//! The location is `https://` + the `Host` header without its port + the
//! TLS listener's port when it is not 443 + the request target. A missing or
//! malformed `Host` gets 400.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use actix::prelude::*;
use futures_lite::AsyncWriteExt;
use log::{debug, warn};

use crate::runtime::{self, TcpListener, TcpStream};

/// Largest request head accepted.
const MAX_REQUEST: usize = 8 * 1024;
/// Deadline for reading a request head.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(5);

/// Answers plain-HTTP requests with a redirect to HTTPS.
pub struct Redirect {
    socket: Arc<TcpListener>,
    /// The TLS listener's port.
    https_port: u16,
    /// 301 or 308.
    status: u16,
}

impl Redirect {
    /// A redirect listener on a bound socket.
    pub(crate) fn new(socket: Arc<TcpListener>, https_port: u16, status: u16) -> Self {
        Self { socket, https_port, status }
    }
}

impl Actor for Redirect {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Context<Self>) {
        let (socket, port, status) = (self.socket.clone(), self.https_port, self.status);
        ctx.spawn(
            async move {
                loop {
                    match socket.accept().await {
                        Ok((stream, peer)) => {
                            actix::spawn(serve(stream, peer, port, status));
                        }
                        Err(e) => {
                            warn!("redirect accept failed error={e}");
                            runtime::sleep(Duration::from_millis(100)).await;
                        }
                    }
                }
            }
            .into_actor(self),
        );
    }
}

impl Supervised for Redirect {}

async fn serve(mut stream: TcpStream, peer: SocketAddr, https_port: u16, status: u16) {
    let head = crate::io::read_small_head(&mut stream, MAX_REQUEST, REQUEST_TIMEOUT).await;
    let Some(buf) = head else {
        debug!("redirect request unreadable peer={peer}");
        return;
    };
    let mut headers = [httparse::EMPTY_HEADER; 64];
    let mut req = httparse::Request::new(&mut headers);
    let location = match req.parse(&buf) {
        Ok(httparse::Status::Complete(_)) => {
            let hosts: Vec<&[u8]> =
                req.headers.iter().filter(|h| h.name.eq_ignore_ascii_case("host")).map(|h| h.value).collect();
            match (hosts.as_slice(), req.path) {
                ([host], Some(target)) => location(host, target, https_port),
                _ => None,
            }
        }
        _ => None,
    };
    let out = match &location {
        Some(loc) => format!(
            "HTTP/1.1 {status} {}\r\nlocation: {loc}\r\ncontent-length: 0\r\nconnection: close\r\n\r\n",
            if status == 308 { "Permanent Redirect" } else { "Moved Permanently" }
        ),
        None => {
            debug!("redirect refused: bad request or host peer={peer}");
            "HTTP/1.1 400 Bad Request\r\ncontent-length: 0\r\nconnection: close\r\n\r\n".to_owned()
        }
    };
    let _ = stream.write_all(out.as_bytes()).await;
    let _ = stream.close().await;
}

/// The HTTPS location for a `Host` header value and request target, or
/// `None` when the host is not a plain DNS name, IPv4 or bracketed IPv6
/// literal (with an optional port).
pub fn location(host: &[u8], target: &str, https_port: u16) -> Option<String> {
    let host = std::str::from_utf8(host).ok()?.trim();
    let name = if host.starts_with('[') {
        let end = host.find(']')?;
        let (ip, rest) = host.split_at(end + 1);
        ip[1..end].parse::<std::net::Ipv6Addr>().ok()?;
        port_ok(rest)?;
        ip
    } else {
        let (name, port) = host.split_once(':').map_or((host, ""), |(n, p)| (n, p));
        if !port.is_empty() {
            port.parse::<u16>().ok()?;
        }
        let valid = |b: u8| b.is_ascii_alphanumeric() || b == b'-' || b == b'.';
        if name.is_empty() || name.len() > 253 || !name.bytes().all(valid) {
            return None;
        }
        name
    };
    // Origin-form only; anything else (absolute-form, `*`) goes to `/`.
    let path = if target.starts_with('/') && !target.starts_with("//") { target } else { "/" };
    let port = if https_port == 443 { String::new() } else { format!(":{https_port}") };
    Some(format!("https://{}{port}{path}", name.to_ascii_lowercase()))
}

fn port_ok(rest: &str) -> Option<()> {
    match rest.strip_prefix(':') {
        None if rest.is_empty() => Some(()),
        Some(p) => p.parse::<u16>().ok().map(|_| ()),
        None => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn locations() {
        let cases: &[(&[u8], &str, u16, Option<&str>)] = &[
            (b"example.com", "/a?b=c", 443, Some("https://example.com/a?b=c")),
            (b"Example.COM:8080", "/", 443, Some("https://example.com/")),
            (b"example.com", "/x", 8443, Some("https://example.com:8443/x")),
            (b"127.0.0.1:80", "/", 8443, Some("https://127.0.0.1:8443/")),
            (b"[::1]:80", "/p", 443, Some("https://[::1]/p")),
            (b"example.com", "http://evil.test/x", 443, Some("https://example.com/")),
            (b"example.com", "//evil.test/x", 443, Some("https://example.com/")),
            (b"", "/", 443, None),
            (b"evil.test/x", "/", 443, None),
            (b"a@evil.test", "/", 443, None),
            (b"example.com:99999", "/", 443, None),
            (b"[nope]", "/", 443, None),
            (b"[::1]x", "/", 443, None),
            (b"\xff", "/", 443, None),
        ];
        for (host, target, port, want) in cases {
            assert_eq!(location(host, target, *port).as_deref(), *want, "host={host:?} target={target}");
        }
    }
}
