//! HTTP/1.1 clients over TLS ([`TlsClient`]) and plain TCP ([`PlainClient`]),
//! sharing one hand-written, framing-aware response parser.

use std::io::{self, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpStream};
use std::sync::Arc;
use std::time::Duration;

use rustls::{ClientConfig, ClientConnection, StreamOwned};
use rustls_pki_types::ServerName;

use super::backend::pattern_bytes;

/// Timeout applied to every connect, read and write.
pub const IO_TIMEOUT: Duration = Duration::from_secs(10);
/// How long [`HttpConn::is_closed`] waits for the peer to close.
pub const CLOSE_PROBE_TIMEOUT: Duration = Duration::from_secs(2);
/// Read buffer size; also the longest accepted head line.
const BUF_SIZE: usize = 64 * 1024;
/// Longest accepted message head (start line + headers).
const MAX_HEAD: usize = 256 * 1024;

/// A byte stream an [`HttpConn`] can run over (plain TCP or TLS over TCP).
pub trait Transport: Read + Write {
    /// The underlying TCP socket (for timeouts, addresses, shutdown).
    fn tcp(&self) -> &TcpStream;
    /// Half-closes the sending side (TLS: sends close_notify first).
    fn close_write(&mut self) -> io::Result<()>;
}

impl Transport for TcpStream {
    fn tcp(&self) -> &TcpStream {
        self
    }
    fn close_write(&mut self) -> io::Result<()> {
        self.shutdown(Shutdown::Write)
    }
}

impl Transport for StreamOwned<ClientConnection, TcpStream> {
    fn tcp(&self) -> &TcpStream {
        &self.sock
    }
    fn close_write(&mut self) -> io::Result<()> {
        self.conn.send_close_notify();
        self.flush()?;
        self.sock.shutdown(Shutdown::Write)
    }
}

/// An HTTP/1.1 connection with a read buffer: raw sends, parsed responses.
pub struct HttpConn<S: Transport> {
    stream: S,
    buf: Box<[u8]>,
    start: usize,
    end: usize,
}

/// HTTPS client: HTTP/1.1 over rustls over TCP.
pub type TlsClient = HttpConn<StreamOwned<ClientConnection, TcpStream>>;
/// Plain-TCP HTTP/1.1 client (talks to backends directly, or to a plain listener).
pub type PlainClient = HttpConn<TcpStream>;

/// One parsed HTTP response.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Response {
    /// Status code, e.g. 200.
    pub status: u16,
    /// Reason phrase (may be empty).
    pub reason: String,
    /// Protocol version from the status line, e.g. `HTTP/1.1`.
    pub version: String,
    /// Header fields in received order and case.
    pub headers: Vec<(String, String)>,
    /// Body after removing the transfer framing (empty for streaming reads).
    pub body: Vec<u8>,
    /// Trailer fields of a chunked body.
    pub trailers: Vec<(String, String)>,
}

impl Response {
    /// First header with this name (case-insensitive).
    pub fn header(&self, name: &str) -> Option<&str> {
        find_header(&self.headers, name)
    }
    /// All values of headers with this name (case-insensitive), in order.
    pub fn headers_named(&self, name: &str) -> Vec<&str> {
        headers_named(&self.headers, name)
    }
    /// First trailer with this name (case-insensitive).
    pub fn trailer(&self, name: &str) -> Option<&str> {
        find_header(&self.trailers, name)
    }
    /// The body as (lossy) UTF-8 text.
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }
}

pub(super) fn find_header<'a>(headers: &'a [(String, String)], name: &str) -> Option<&'a str> {
    headers.iter().find(|(n, _)| n.eq_ignore_ascii_case(name)).map(|(_, v)| v.as_str())
}

pub(super) fn headers_named<'a>(headers: &'a [(String, String)], name: &str) -> Vec<&'a str> {
    headers.iter().filter(|(n, _)| n.eq_ignore_ascii_case(name)).map(|(_, v)| v.as_str()).collect()
}

/// True if any comma-separated token of any `name` header equals `token` (case-insensitive).
pub(super) fn has_token(headers: &[(String, String)], name: &str, token: &str) -> bool {
    headers_named(headers, name).iter().flat_map(|v| v.split(',')).any(|t| t.trim().eq_ignore_ascii_case(token))
}

fn invalid(msg: impl Into<String>) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, msg.into())
}

fn is_timeout(e: &io::Error) -> bool {
    matches!(e.kind(), io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut)
}

/// How a message body is delimited.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Framing {
    /// No body.
    Empty,
    /// Exactly this many bytes.
    Length(u64),
    /// Chunked transfer coding.
    Chunked,
    /// Until the peer closes.
    UntilEof,
}

/// A parsed message head.
pub(super) struct Head {
    /// The head bytes exactly as received (start line through the blank line).
    pub raw: Vec<u8>,
    /// The start line without CRLF.
    pub start_line: String,
    /// Header fields in received order and case.
    pub headers: Vec<(String, String)>,
}

/// Content-Length of a header list: `Ok(None)` if absent, error if invalid or conflicting.
pub(super) fn content_length(headers: &[(String, String)]) -> io::Result<Option<u64>> {
    let mut found: Option<u64> = None;
    for v in headers_named(headers, "content-length") {
        for part in v.split(',') {
            let part = part.trim();
            if part.is_empty() || !part.bytes().all(|b| b.is_ascii_digit()) {
                return Err(invalid(format!("bad Content-Length {v:?}")));
            }
            let n: u64 = part.parse().map_err(|_| invalid(format!("bad Content-Length {v:?}")))?;
            if found.is_some_and(|f| f != n) {
                return Err(invalid("conflicting Content-Length values"));
            }
            found = Some(n);
        }
    }
    Ok(found)
}

/// `None` if there is no Transfer-Encoding; else whether the final coding is `chunked`.
pub(super) fn chunked_final(headers: &[(String, String)]) -> Option<bool> {
    let codings: Vec<String> = headers_named(headers, "transfer-encoding")
        .iter()
        .flat_map(|v| v.split(','))
        .map(|t| t.trim().to_ascii_lowercase())
        .filter(|t| !t.is_empty())
        .collect();
    if codings.is_empty() { None } else { Some(codings.last().map(String::as_str) == Some("chunked")) }
}

fn tcp_connect(addr: SocketAddr) -> io::Result<TcpStream> {
    let sock = TcpStream::connect_timeout(&addr, IO_TIMEOUT)?;
    sock.set_read_timeout(Some(IO_TIMEOUT))?;
    sock.set_write_timeout(Some(IO_TIMEOUT))?;
    sock.set_nodelay(true)?;
    Ok(sock)
}

impl HttpConn<TcpStream> {
    /// Connects over plain TCP (10 s connect/read/write timeouts).
    pub fn connect(addr: SocketAddr) -> io::Result<Self> {
        Ok(Self::from_stream(tcp_connect(addr)?))
    }
}

impl HttpConn<StreamOwned<ClientConnection, TcpStream>> {
    /// Connects with SNI `localhost` and completes the TLS handshake (errors surface here).
    pub fn connect(addr: SocketAddr, cfg: Arc<ClientConfig>) -> io::Result<Self> {
        Self::connect_sni(addr, cfg, "localhost")
    }

    /// Like [`TlsClient::connect`] with another server name (an IP literal sends no SNI).
    pub fn connect_sni(addr: SocketAddr, cfg: Arc<ClientConfig>, sni: &str) -> io::Result<Self> {
        let mut sock = tcp_connect(addr)?;
        let name = ServerName::try_from(sni.to_string()).map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, e))?;
        let mut conn = ClientConnection::new(cfg, name).map_err(io::Error::other)?;
        while conn.is_handshaking() {
            let (rd, wr) = conn.complete_io(&mut sock)?;
            if rd == 0 && wr == 0 && conn.is_handshaking() {
                return Err(io::Error::new(io::ErrorKind::UnexpectedEof, "connection closed during TLS handshake"));
            }
        }
        Ok(Self::from_stream(StreamOwned::new(conn, sock)))
    }

    /// The negotiated ALPN protocol, if any.
    pub fn alpn(&self) -> Option<Vec<u8>> {
        self.stream.conn.alpn_protocol().map(<[u8]>::to_vec)
    }

    /// Whether the handshake resumed an earlier session.
    pub fn resumed(&self) -> bool {
        self.stream.conn.handshake_kind() == Some(rustls::HandshakeKind::Resumed)
    }

    /// The negotiated cipher suite.
    pub fn cipher_suite(&self) -> Option<rustls::CipherSuite> {
        self.stream.conn.negotiated_cipher_suite().map(|s| s.suite())
    }

    /// The negotiated TLS version.
    pub fn protocol_version(&self) -> Option<rustls::ProtocolVersion> {
        self.stream.conn.protocol_version()
    }

    /// Everything the server sends until its connection ends (the bytes
    /// already buffered first), without first sending what this client
    /// still has queued: after a write that timed out against a server that
    /// stopped reading, rustls' own reads would try that write again.
    pub fn read_until_closed_ignoring_unsent(&mut self) -> Vec<u8> {
        let mut plain = self.buf[self.start..self.end].to_vec();
        self.start = self.end;
        let StreamOwned { conn, sock } = &mut self.stream;
        loop {
            match conn.read_tls(sock) {
                Ok(0) | Err(_) => return plain,
                Ok(_) => {}
            }
            if conn.process_new_packets().is_err() {
                return plain;
            }
            match conn.reader().read_to_end(&mut plain) {
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
                _ => return plain,
            }
        }
    }

    /// The certificate chain the server presented (leaf first).
    pub fn peer_certificates(&self) -> Vec<rustls_pki_types::CertificateDer<'static>> {
        self.stream
            .conn
            .peer_certificates()
            .map(|c| c.iter().map(|d| d.clone().into_owned()).collect())
            .unwrap_or_default()
    }
}

impl<S: Transport> HttpConn<S> {
    /// Wraps an already connected stream (set its timeouts yourself).
    pub fn from_stream(stream: S) -> Self {
        Self { stream, buf: vec![0u8; BUF_SIZE].into_boxed_slice(), start: 0, end: 0 }
    }

    /// The underlying stream.
    pub fn get_ref(&self) -> &S {
        &self.stream
    }

    /// The underlying stream, mutably (bytes already buffered here are not seen by it).
    pub fn get_mut(&mut self) -> &mut S {
        &mut self.stream
    }

    /// The underlying TCP socket.
    pub fn tcp(&self) -> &TcpStream {
        self.stream.tcp()
    }

    /// Half-closes our sending side (TLS: close_notify, then TCP FIN).
    pub fn close_write(&mut self) -> io::Result<()> {
        self.stream.close_write()
    }

    /// Writes raw bytes (hand-made, possibly malformed requests) and flushes.
    pub fn send(&mut self, raw: &[u8]) -> io::Result<()> {
        self.stream.write_all(raw)?;
        self.stream.flush()
    }

    /// Writes `head`, then `body_len` bytes of [`pattern_bytes`] in `chunk`-sized
    /// writes, generated on the fly (constant memory). `head` must frame the body
    /// (e.g. `Content-Length: {body_len}`); its checksum is [`super::pattern_checksum`].
    pub fn send_streaming(&mut self, head: &[u8], body_len: u64, chunk: usize) -> io::Result<()> {
        self.stream.write_all(head)?;
        let mut buf = vec![0u8; chunk.max(1)];
        let mut off = 0u64;
        while off < body_len {
            let n = (body_len - off).min(buf.len() as u64) as usize;
            pattern_bytes(off, &mut buf[..n]);
            self.stream.write_all(&buf[..n])?;
            off += n as u64;
        }
        self.stream.flush()
    }

    /// Writes up to `len` filler bytes (after a head that framed more), in
    /// 64 KiB pieces, until a write waits longer than `patience`: the peer
    /// stopped taking them. Returns the bytes written; the write timeout
    /// stays at `patience`.
    pub fn send_until_stalled(&mut self, len: usize, patience: Duration) -> usize {
        self.tcp().set_write_timeout(Some(patience)).expect("write timeout");
        let piece = vec![b'x'; 64 * 1024];
        let mut sent = 0;
        while sent < len && self.send(&piece).is_ok() {
            sent += piece.len();
        }
        sent
    }

    /// Writes `head` (which must say `Transfer-Encoding: chunked`), then `body_len`
    /// pattern bytes as chunks of `chunk` bytes, the last chunk and `trailers`.
    pub fn send_streaming_chunked(
        &mut self,
        head: &[u8],
        body_len: u64,
        chunk: usize,
        trailers: &[(&str, &str)],
    ) -> io::Result<()> {
        self.stream.write_all(head)?;
        let mut buf = vec![0u8; chunk.max(1)];
        let mut off = 0u64;
        while off < body_len {
            let n = (body_len - off).min(buf.len() as u64) as usize;
            pattern_bytes(off, &mut buf[..n]);
            self.stream.write_all(format!("{n:x}\r\n").as_bytes())?;
            self.stream.write_all(&buf[..n])?;
            self.stream.write_all(b"\r\n")?;
            off += n as u64;
        }
        let mut tail = String::from("0\r\n");
        for (k, v) in trailers {
            tail.push_str(&format!("{k}: {v}\r\n"));
        }
        tail.push_str("\r\n");
        self.stream.write_all(tail.as_bytes())?;
        self.stream.flush()
    }

    /// Reads one response; `request_was_head` suppresses the body. A 1xx is
    /// returned on its own (empty body): call again for the final response.
    pub fn read_response(&mut self, request_was_head: bool) -> io::Result<Response> {
        let mut body = Vec::new();
        let mut resp = self.read_response_inner(request_was_head, &mut |d| body.extend_from_slice(d))?;
        resp.body = body;
        Ok(resp)
    }

    /// Like [`HttpConn::read_response`] (non-HEAD) but hands body pieces to `sink`
    /// instead of keeping them; `Response::body` stays empty.
    pub fn read_response_streaming(&mut self, mut sink: impl FnMut(&[u8])) -> io::Result<Response> {
        self.read_response_inner(false, &mut sink)
    }

    /// Reads until the peer closes (a TLS close without close_notify also counts as the end).
    pub fn read_to_end(&mut self) -> io::Result<Vec<u8>> {
        let mut out = Vec::new();
        self.read_body(Framing::UntilEof, &mut |d| out.extend_from_slice(d))?;
        Ok(out)
    }

    /// True if the peer has closed (EOF, TLS close_notify, or a read error) within
    /// [`CLOSE_PROBE_TIMEOUT`]; false if it is still open or sent data (kept buffered).
    pub fn is_closed(&mut self) -> bool {
        if self.start < self.end {
            return false;
        }
        let _ = self.tcp().set_read_timeout(Some(CLOSE_PROBE_TIMEOUT));
        let r = self.fill();
        let _ = self.tcp().set_read_timeout(Some(IO_TIMEOUT));
        match r {
            Ok(0) => true,
            Ok(_) => false,
            Err(e) => !is_timeout(&e),
        }
    }

    /// Number of bytes received but not yet consumed.
    pub fn buffered(&self) -> usize {
        self.end - self.start
    }

    fn read_response_inner(&mut self, request_was_head: bool, sink: &mut dyn FnMut(&[u8])) -> io::Result<Response> {
        let head = self
            .read_head(false)?
            .ok_or_else(|| io::Error::new(io::ErrorKind::UnexpectedEof, "connection closed before a response"))?;
        let mut parts = head.start_line.splitn(3, ' ');
        let version = parts.next().unwrap_or_default().to_string();
        let code = parts.next().unwrap_or_default();
        let reason = parts.next().unwrap_or_default().to_string();
        if !version.starts_with("HTTP/") || code.len() != 3 {
            return Err(invalid(format!("bad status line {:?}", head.start_line)));
        }
        let status: u16 = code.parse().map_err(|_| invalid(format!("bad status line {:?}", head.start_line)))?;
        let framing = if (100..200).contains(&status) || request_was_head || status == 204 || status == 304 {
            Framing::Empty
        } else if let Some(chunked) = chunked_final(&head.headers) {
            if chunked { Framing::Chunked } else { Framing::UntilEof }
        } else if let Some(n) = content_length(&head.headers)? {
            Framing::Length(n)
        } else {
            Framing::UntilEof
        };
        let trailers = self.read_body(framing, sink)?;
        Ok(Response { status, reason, version, headers: head.headers, body: Vec::new(), trailers })
    }

    /// Reads more bytes into the buffer; `Ok(0)` on EOF. Timeouts become `TimedOut`.
    pub(super) fn fill(&mut self) -> io::Result<usize> {
        if self.start == self.end {
            self.start = 0;
            self.end = 0;
        } else if self.end == self.buf.len() {
            if self.start == 0 {
                return Err(invalid("line longer than the read buffer"));
            }
            self.buf.copy_within(self.start..self.end, 0);
            self.end -= self.start;
            self.start = 0;
        }
        loop {
            match self.stream.read(&mut self.buf[self.end..]) {
                Ok(n) => {
                    self.end += n;
                    return Ok(n);
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) if is_timeout(&e) => {
                    return Err(io::Error::new(io::ErrorKind::TimedOut, "read timed out"));
                }
                Err(e) => return Err(e),
            }
        }
    }

    /// One line without its CRLF/LF, appended raw to `raw`; `None` on EOF before any byte.
    fn read_line(&mut self, raw: &mut Vec<u8>) -> io::Result<Option<Vec<u8>>> {
        loop {
            if let Some(i) = self.buf[self.start..self.end].iter().position(|&b| b == b'\n') {
                let line = &self.buf[self.start..self.start + i + 1];
                raw.extend_from_slice(line);
                let mut content = &line[..line.len() - 1];
                if content.last() == Some(&b'\r') {
                    content = &content[..content.len() - 1];
                }
                let content = content.to_vec();
                self.start += i + 1;
                return Ok(Some(content));
            }
            if self.fill()? == 0 {
                if self.start == self.end {
                    return Ok(None);
                }
                return Err(io::Error::new(io::ErrorKind::UnexpectedEof, "connection closed mid-line"));
            }
        }
    }

    fn read_line_required(&mut self, raw: &mut Vec<u8>) -> io::Result<Vec<u8>> {
        self.read_line(raw)?
            .ok_or_else(|| io::Error::new(io::ErrorKind::UnexpectedEof, "connection closed mid-message"))
    }

    /// Header lines up to the blank line.
    fn read_fields(&mut self, raw: &mut Vec<u8>) -> io::Result<Vec<(String, String)>> {
        let mut fields = Vec::new();
        loop {
            let line = self.read_line_required(raw)?;
            if line.is_empty() {
                return Ok(fields);
            }
            if raw.len() > MAX_HEAD {
                return Err(invalid("message head too large"));
            }
            let line = String::from_utf8_lossy(&line).into_owned();
            if line.starts_with([' ', '\t']) {
                return Err(invalid(format!("obsolete line folding: {line:?}")));
            }
            let (name, value) =
                line.split_once(':').ok_or_else(|| invalid(format!("header line without colon: {line:?}")))?;
            if name.is_empty() || name.contains([' ', '\t']) {
                return Err(invalid(format!("bad header name: {line:?}")));
            }
            fields.push((name.to_string(), value.trim_matches([' ', '\t']).to_string()));
        }
    }

    /// Reads a message head; `None` on a clean EOF before it. `skip_blank_lines`
    /// ignores empty lines before the start line (server side, RFC 9112 §2.2).
    pub(super) fn read_head(&mut self, skip_blank_lines: bool) -> io::Result<Option<Head>> {
        let mut raw = Vec::new();
        let start_line = loop {
            match self.read_line(&mut raw)? {
                None => return Ok(None),
                Some(l) if l.is_empty() && skip_blank_lines => raw.clear(),
                Some(l) => break String::from_utf8_lossy(&l).into_owned(),
            }
        };
        let headers = self.read_fields(&mut raw)?;
        Ok(Some(Head { raw, start_line, headers }))
    }

    /// Passes exactly `n` body bytes to `sink`.
    fn read_exact_to(&mut self, mut n: u64, sink: &mut dyn FnMut(&[u8])) -> io::Result<()> {
        while n > 0 {
            if self.start == self.end && self.fill()? == 0 {
                return Err(io::Error::new(
                    io::ErrorKind::UnexpectedEof,
                    format!("connection closed with {n} body bytes missing"),
                ));
            }
            let take = (self.end - self.start).min(n.min(usize::MAX as u64) as usize);
            sink(&self.buf[self.start..self.start + take]);
            self.start += take;
            n -= take as u64;
        }
        Ok(())
    }

    /// Reads a body with the given framing into `sink`; returns the trailers.
    pub(super) fn read_body(
        &mut self,
        framing: Framing,
        sink: &mut dyn FnMut(&[u8]),
    ) -> io::Result<Vec<(String, String)>> {
        match framing {
            Framing::Empty => Ok(Vec::new()),
            Framing::Length(n) => self.read_exact_to(n, sink).map(|_| Vec::new()),
            Framing::UntilEof => loop {
                if self.start < self.end {
                    sink(&self.buf[self.start..self.end]);
                    self.start = self.end;
                }
                match self.fill() {
                    Ok(0) => return Ok(Vec::new()),
                    Ok(_) => {}
                    Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => return Ok(Vec::new()),
                    Err(e) => return Err(e),
                }
            },
            Framing::Chunked => {
                let mut raw = Vec::new();
                loop {
                    raw.clear();
                    let line = self.read_line_required(&mut raw)?;
                    let line = String::from_utf8_lossy(&line).into_owned();
                    let size_str = line.split(';').next().unwrap_or_default().trim();
                    if size_str.is_empty() || !size_str.bytes().all(|b| b.is_ascii_hexdigit()) {
                        return Err(invalid(format!("bad chunk size line {line:?}")));
                    }
                    let size = u64::from_str_radix(size_str, 16)
                        .map_err(|_| invalid(format!("chunk size too large {line:?}")))?;
                    if size == 0 {
                        raw.clear();
                        return self.read_fields(&mut raw);
                    }
                    self.read_exact_to(size, sink)?;
                    raw.clear();
                    if !self.read_line_required(&mut raw)?.is_empty() {
                        return Err(invalid("missing CRLF after chunk data"));
                    }
                }
            }
        }
    }
}

/// One `GET path` over a fresh TLS connection with `Connection: close`; skips
/// 1xx responses and returns the final one. Panics with context on any error.
pub fn https_get(addr: SocketAddr, cfg: &Arc<ClientConfig>, path: &str) -> Response {
    let mut c = TlsClient::connect(addr, cfg.clone())
        .unwrap_or_else(|e| panic!("https_get {path}: TLS connect to {addr}: {e}"));
    get_final(&mut c, addr, path)
}

/// One `GET path` over a fresh plain TCP connection with `Connection: close`;
/// skips 1xx responses. Panics with context on any error.
pub fn http_get(addr: SocketAddr, path: &str) -> Response {
    let mut c = PlainClient::connect(addr).unwrap_or_else(|e| panic!("http_get {path}: connect to {addr}: {e}"));
    get_final(&mut c, addr, path)
}

fn get_final<S: Transport>(c: &mut HttpConn<S>, addr: SocketAddr, path: &str) -> Response {
    c.send(format!("GET {path} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n").as_bytes())
        .unwrap_or_else(|e| panic!("GET {path} to {addr}: send: {e}"));
    loop {
        let r = c.read_response(false).unwrap_or_else(|e| panic!("GET {path} to {addr}: read response: {e}"));
        if !(100..200).contains(&r.status) || r.status == 101 {
            return r;
        }
    }
}
