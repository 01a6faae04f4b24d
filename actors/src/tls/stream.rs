//! A client's TLS stream, on rustls' unbuffered API.
//!
//! futures-rustls wraps rustls' buffered `ServerConnection`, whose input
//! buffer (4 KiB from the first read on) stays allocated for the life of the
//! connection. Here the stream owns its buffers: ciphertext read and not yet
//! processed, ciphertext not yet sent, and decrypted bytes not yet read each
//! take memory from a per-thread pool only while they hold bytes, so an idle
//! connection keeps rustls' protocol state (keys, sequence numbers) and
//! nothing else. Records go straight into the output buffer, with no queue
//! between (rustls still encrypts each one in a `Vec` of its own first: its
//! unbuffered API has no in-place encryption yet).
//!
//! Output is sent before the stream waits for input, on flush and close, and
//! once no further full record fits: a read thus sends what rustls queued
//! while reading (a KeyUpdate answer, a `no_renegotiation` warning), and the
//! last handshake flight, a short response and its close_notify can share
//! one send. A write of more than one record (a large body) is encrypted
//! into a buffer with room for four, which then leave in one send.

use std::future::poll_fn;
use std::io;
use std::pin::Pin;
use std::task::{Context, Poll, ready};

use futures_lite::{AsyncRead, AsyncWrite};
use rustls::server::{ServerConnectionData, UnbufferedServerConnection};
use rustls::unbuffered::{ConnectionState, EncodeError, EncryptError, InsufficientSizeError, UnbufferedStatus};
use rustls_pki_types::CertificateDer;

use crate::io::FreeList;
use crate::runtime::TcpStream;

/// Room for one record as it travels (rustls' largest: 16 KiB of payload,
/// 2 KiB of expansion, a 5-byte header); the size of pooled buffers.
const RECORD_BUF: usize = 16 * 1024 + 2048 + 5;
/// Plaintext per record: a full record.
const MAX_WRITE: usize = 16 * 1024;
/// A record's size over its plaintext, at most (header, nonce, tag, type).
const RECORD_OVERHEAD: usize = 64;
/// Full records a large write puts in one send.
const BATCH_RECORDS: usize = 4;
/// Room for [`BATCH_RECORDS`] full records: the output buffer of a large
/// write (a big response body), so that they leave in one send.
const BATCH_BUF: usize = BATCH_RECORDS * (MAX_WRITE + RECORD_OVERHEAD);
/// Unprocessed input may grow past one record only while a handshake
/// message spans records (rustls refuses those over 64 KiB).
const MAX_INPUT: usize = 96 * 1024;
/// Output queued by reads (alerts, KeyUpdate answers) beyond which reads
/// wait for it to leave.
const MAX_QUEUED: usize = 64 * 1024;
/// Buffers of [`RECORD_BUF`] bytes a thread keeps for reuse.
const MAX_POOLED: usize = 512;
/// Buffers of [`BATCH_BUF`] bytes a thread keeps for reuse.
const MAX_POOLED_BATCH: usize = 128;

thread_local! {
    /// Each worker thread's free buffers of [`RECORD_BUF`] bytes.
    static POOL: FreeList = const { FreeList::new(RECORD_BUF, MAX_POOLED) };
    /// Each worker thread's free buffers of [`BATCH_BUF`] bytes.
    static BATCH_POOL: FreeList = const { FreeList::new(BATCH_BUF, MAX_POOLED_BATCH) };
}

fn take_buf(size: usize) -> Vec<u8> {
    let pool = if size == BATCH_BUF { &BATCH_POOL } else { &POOL };
    pool.with(FreeList::take)
}

fn give_buf(buf: Vec<u8>) {
    let pool = if buf.len() == BATCH_BUF { &BATCH_POOL } else { &POOL };
    pool.with(|pool| pool.give(buf));
}

/// Bytes in `data[start..end]`; `data` holds no memory while they are none.
#[derive(Default)]
struct Bytes {
    data: Vec<u8>,
    start: usize,
    end: usize,
}

impl Bytes {
    fn from_vec(data: Vec<u8>) -> Self {
        let end = data.len();
        Self { data, start: 0, end }
    }

    fn len(&self) -> usize {
        self.end - self.start
    }

    fn is_empty(&self) -> bool {
        self.start == self.end
    }

    fn filled(&self) -> &[u8] {
        &self.data[self.start..self.end]
    }

    fn filled_mut(&mut self) -> &mut [u8] {
        &mut self.data[self.start..self.end]
    }

    /// Drops `n` bytes from the front; the memory goes back to the pool
    /// once nothing is left.
    fn consume(&mut self, n: usize) {
        self.start = (self.start + n).min(self.end);
        if self.start == self.end {
            self.release();
        }
    }

    fn release(&mut self) {
        self.start = 0;
        self.end = 0;
        if !self.data.is_empty() {
            give_buf(std::mem::take(&mut self.data));
        }
    }

    /// Takes a buffer of `size` bytes ([`RECORD_BUF`] or [`BATCH_BUF`])
    /// if it holds none.
    fn reserve(&mut self, size: usize) {
        if self.data.is_empty() {
            self.data = take_buf(size);
        }
    }

    /// The free space after the bytes, at least `min` long.
    fn spare(&mut self, min: usize) -> &mut [u8] {
        self.reserve(RECORD_BUF);
        if self.data.len() - self.end < min && self.start > 0 {
            self.data.copy_within(self.start..self.end, 0);
            self.end -= self.start;
            self.start = 0;
        }
        if self.data.len() - self.end < min {
            self.data.resize(self.end + min, 0);
        }
        &mut self.data[self.end..]
    }

    /// Free space for a socket read, in a buffer of at least `size` bytes
    /// ([`RECORD_BUF`] or [`BATCH_BUF`]; a smaller one holding bytes moves
    /// them to a new one): compacts a mostly consumed buffer and doubles a
    /// full one, up to [`MAX_INPUT`].
    fn spare_for_read(&mut self, size: usize) -> io::Result<&mut [u8]> {
        self.reserve(size);
        if self.data.len() < size {
            let mut larger = take_buf(size);
            larger[..self.len()].copy_from_slice(self.filled());
            let old = std::mem::replace(&mut self.data, larger);
            give_buf(old);
            self.end -= self.start;
            self.start = 0;
        }
        let len = self.data.len();
        if self.start > 0 && len - self.end < len / 4 {
            self.data.copy_within(self.start..self.end, 0);
            self.end -= self.start;
            self.start = 0;
        }
        if self.end == len {
            if len >= MAX_INPUT {
                return Err(io::Error::new(io::ErrorKind::InvalidData, "TLS message over 96 KiB"));
            }
            self.data.resize((len * 2).min(MAX_INPUT), 0);
        }
        Ok(&mut self.data[self.end..])
    }

    /// Free space after the bytes (a whole pooled buffer when empty).
    fn room(&self) -> usize {
        if self.data.is_empty() { RECORD_BUF } else { self.data.len() - self.end }
    }

    fn advance(&mut self, n: usize) {
        self.end += n;
        if self.start == self.end {
            self.release();
        }
    }

    fn push(&mut self, bytes: &[u8]) {
        if bytes.is_empty() {
            return;
        }
        let spare = self.spare(bytes.len());
        spare[..bytes.len()].copy_from_slice(bytes);
        self.end += bytes.len();
    }
}

impl Drop for Bytes {
    fn drop(&mut self) {
        self.release();
    }
}

/// How a TLS connection failed.
#[derive(Debug, Clone)]
pub struct Failure {
    /// rustls' error.
    pub error: rustls::Error,
    /// The failure came before Terminus sent anything: from the client's
    /// first flight (its ClientHello).
    pub first_flight: bool,
    /// rustls queued an alert for it.
    pub alerted: bool,
}

/// What the caller of [`TlsStream::step`] wants done.
enum Op<'a> {
    Nothing,
    /// Decrypted bytes go here first (the rest to `plain`).
    Read(&'a mut [u8]),
    /// Encrypt these bytes (in the `WriteTraffic` state).
    Write(&'a [u8]),
    CloseNotify,
}

/// The outcome of one `process_tls_records` call.
#[derive(Debug)]
enum Step {
    /// Application data was decrypted: this many bytes into `Op::Read`'s
    /// buffer, the rest into `plain`.
    Read(usize),
    /// Records were encoded into `output` (or rustls asked for them to be sent).
    Queued,
    /// More input is needed before the handshake can go on.
    NeedInput,
    /// The connection is open and there is nothing to process.
    Open,
    /// `Op::Write`'s bytes (or the close_notify) were encrypted into `output`.
    Wrote(usize),
    /// The peer sent close_notify.
    PeerClosed,
    /// Both sides sent close_notify.
    Closed,
}

/// A server-side TLS connection over a TCP stream.
pub struct TlsStream {
    conn: UnbufferedServerConnection,
    tcp: TcpStream,
    /// Ciphertext read and not yet processed.
    input: Bytes,
    /// Ciphertext not yet written.
    output: Bytes,
    /// Decrypted bytes not yet read.
    plain: Bytes,
    /// The peer closed (close_notify, or the end of the TCP stream).
    eof: bool,
    /// close_notify is queued.
    closing: bool,
    /// Closed, and the TCP FIN not sent yet: it leaves with the socket's
    /// close when the stream is dropped (one system call fewer per
    /// connection), or is sent before the stream is read again (a
    /// lingering close).
    fin_deferred: bool,
    /// The last socket read filled the space it was given: the peer is
    /// sending in bulk (a large request body), and the next read gets room
    /// for four records.
    bulk_input: bool,
    /// Some byte was written to the peer.
    wrote: bool,
    failed: Option<Failure>,
}

impl TlsStream {
    /// A stream for a connection whose first bytes (`received`, usually the
    /// ClientHello) were already read.
    pub fn new(conn: UnbufferedServerConnection, tcp: TcpStream, received: Vec<u8>) -> Self {
        Self {
            conn,
            tcp,
            input: Bytes::from_vec(received),
            output: Bytes::default(),
            plain: Bytes::default(),
            eof: false,
            closing: false,
            fin_deferred: false,
            bulk_input: false,
            wrote: false,
            failed: None,
        }
    }

    /// Completes the handshake. The last flight may still be queued: it is
    /// sent before the stream waits for input, on flush, or with the next
    /// write.
    pub async fn handshake(&mut self) -> io::Result<()> {
        poll_fn(|cx| self.poll_handshake(cx)).await
    }

    /// How the connection failed, once it has.
    pub fn failure(&self) -> Option<&Failure> {
        self.failed.as_ref()
    }

    /// The client's certificate chain, once verified.
    pub fn peer_certificates(&self) -> Option<&[CertificateDer<'static>]> {
        self.conn.peer_certificates()
    }

    /// The TCP stream, dropping the TLS state and anything not yet sent.
    pub fn into_tcp(self) -> TcpStream {
        self.tcp
    }

    fn poll_handshake(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        loop {
            match self.step(Op::Nothing) {
                Err(e) => return Poll::Ready(Err(self.fail(cx, e))),
                Ok(Step::Read(_) | Step::Queued) => {}
                Ok(Step::NeedInput | Step::Open | Step::Wrote(_)) => {
                    // Once the handshake is done, its last flight (TLS 1.3
                    // tickets) may wait: it leaves before the next wait on
                    // input, or with the first response.
                    if !self.conn.is_handshaking() {
                        return Poll::Ready(Ok(()));
                    }
                    ready!(self.poll_send(cx))?;
                    if ready!(self.poll_receive(cx))? == 0 {
                        return Poll::Ready(Err(closed_in_handshake()));
                    }
                }
                Ok(Step::PeerClosed | Step::Closed) => return Poll::Ready(Err(closed_in_handshake())),
            }
        }
    }

    /// Processes the input once and handles the state rustls reaches.
    fn step(&mut self, op: Op<'_>) -> Result<Step, rustls::Error> {
        let Self { conn, input, output, plain, .. } = self;
        let UnbufferedStatus { mut discard, state } = conn.process_tls_records(input.filled_mut());
        let step = match state {
            Err(e) => Err(e),
            Ok(state) => handle(state, op, output, plain, &mut discard),
        };
        input.consume(discard);
        step
    }

    /// After a TLS error: queues rustls' alert, sends it if the socket
    /// takes it at once, and remembers the failure.
    fn fail(&mut self, cx: &mut Context<'_>, error: rustls::Error) -> io::Error {
        let first_flight = !self.wrote;
        let before = self.output.len();
        // Queued records come out first (tickets not yet sent), then the alert.
        for _ in 0..8 {
            if !matches!(self.step(Op::Nothing), Ok(Step::Queued)) {
                break;
            }
        }
        let alerted = self.output.len() > before;
        let _ = self.poll_send(cx);
        self.failed = Some(Failure { error: error.clone(), first_flight, alerted });
        io::Error::new(io::ErrorKind::InvalidData, error)
    }

    fn failed_error(&self) -> Option<io::Error> {
        self.failed.as_ref().map(|f| io::Error::new(io::ErrorKind::InvalidData, f.error.clone()))
    }

    /// Encrypts `data` (at most one record) into the output.
    fn encrypt(&mut self, cx: &mut Context<'_>, data: &[u8]) -> io::Result<usize> {
        loop {
            match self.step(Op::Write(data)) {
                Err(e) => return Err(self.fail(cx, e)),
                Ok(Step::Wrote(n)) => return Ok(n),
                Ok(Step::Read(_) | Step::Queued) => {}
                Ok(Step::PeerClosed) => self.eof = true,
                Ok(Step::Closed) => return Err(io::ErrorKind::BrokenPipe.into()),
                Ok(Step::NeedInput | Step::Open) => {
                    return Err(io::Error::new(io::ErrorKind::NotConnected, "TLS handshake not complete"));
                }
            }
        }
    }

    /// Writes the queued output.
    fn poll_send(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        self.poll_send_as(cx, false)
    }

    /// Writes the queued output; `closing`: the TCP stream's writing side
    /// is shut down right after, and the FIN may join the last bytes.
    fn poll_send_as(&mut self, cx: &mut Context<'_>, closing: bool) -> Poll<io::Result<()>> {
        while !self.output.is_empty() {
            let n = if closing {
                ready!(self.tcp.poll_write_before_close(cx, self.output.filled()))?
            } else {
                ready!(Pin::new(&mut self.tcp).poll_write(cx, self.output.filled()))?
            };
            if n == 0 {
                return Poll::Ready(Err(io::ErrorKind::WriteZero.into()));
            }
            self.wrote = true;
            self.output.consume(n);
        }
        Poll::Ready(Ok(()))
    }

    /// Reads more ciphertext; `Ok(0)` is the end of the TCP stream. With no
    /// input held, memory is taken only once the socket is readable.
    fn poll_receive(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<usize>> {
        let Self { tcp, input, bulk_input, fin_deferred, .. } = self;
        if std::mem::take(fin_deferred) {
            tcp.shutdown(std::net::Shutdown::Write)?;
        }
        if input.is_empty() {
            ready!(tcp.poll_readable(cx))?;
        }
        let spare = input.spare_for_read(if *bulk_input { BATCH_BUF } else { RECORD_BUF })?;
        let offered = spare.len();
        let read = Pin::new(tcp).poll_read(cx, spare);
        if let Poll::Ready(Ok(n)) = read {
            *bulk_input = n == offered;
            input.advance(n);
        } else if input.is_empty() {
            input.release();
        }
        read
    }
}

/// Handles one state (all but errors) that `process_tls_records` reached.
fn handle(
    state: ConnectionState<'_, '_, ServerConnectionData>,
    op: Op<'_>,
    output: &mut Bytes,
    plain: &mut Bytes,
    discard: &mut usize,
) -> Result<Step, rustls::Error> {
    match state {
        ConnectionState::ReadTraffic(mut traffic) => {
            let mut direct = match op {
                Op::Read(buf) => buf,
                _ => &mut [],
            };
            let mut copied = 0;
            while let Some(record) = traffic.next_record() {
                let record = record?;
                *discard += record.discard;
                let n = record.payload.len().min(direct.len());
                direct[..n].copy_from_slice(&record.payload[..n]);
                direct = &mut std::mem::take(&mut direct)[n..];
                copied += n;
                plain.push(&record.payload[n..]);
            }
            Ok(Step::Read(copied))
        }
        ConnectionState::EncodeTlsData(mut encode) => {
            let encoded = fill_output(
                output,
                |buf| encode.encode(buf),
                |e| match e {
                    EncodeError::InsufficientSize(InsufficientSizeError { required_size }) => Some(*required_size),
                    _ => None,
                },
            );
            match encoded {
                // `AlreadyEncoded` cannot happen: each state is encoded once.
                Ok(()) | Err(EncodeError::AlreadyEncoded) => Ok(Step::Queued),
                Err(e) => Err(rustls::Error::General(e.to_string())),
            }
        }
        ConnectionState::TransmitTlsData(transmit) => {
            // Everything encoded is in `output`, which callers send before
            // they wait for anything.
            transmit.done();
            Ok(Step::Queued)
        }
        ConnectionState::BlockedHandshake => Ok(Step::NeedInput),
        ConnectionState::WriteTraffic(mut traffic) => {
            let (n, encrypted) = match op {
                Op::Nothing | Op::Read(_) => return Ok(Step::Open),
                Op::Write(data) => (data.len(), fill_output(output, |buf| traffic.encrypt(data, buf), required)),
                Op::CloseNotify => (0, fill_output(output, |buf| traffic.queue_close_notify(buf), required)),
            };
            encrypted.map_err(|_| rustls::Error::EncryptError)?;
            Ok(Step::Wrote(n))
        }
        ConnectionState::PeerClosed => Ok(Step::PeerClosed),
        ConnectionState::Closed => Ok(Step::Closed),
        // Early data is never enabled.
        _ => Err(rustls::Error::General("unexpected TLS state".into())),
    }
}

fn required(e: &EncryptError) -> Option<usize> {
    match e {
        EncryptError::InsufficientSize(InsufficientSizeError { required_size }) => Some(*required_size),
        _ => None,
    }
}

/// Runs `f` on the output's free space, which grows to what `f` asks for.
fn fill_output<E>(
    output: &mut Bytes,
    mut f: impl FnMut(&mut [u8]) -> Result<usize, E>,
    needs: impl Fn(&E) -> Option<usize>,
) -> Result<(), E> {
    let mut room = 0;
    loop {
        match f(output.spare(room)) {
            Ok(n) => {
                output.advance(n);
                return Ok(());
            }
            Err(e) => match needs(&e) {
                Some(size) if size > room => room = size,
                _ => return Err(e),
            },
        }
    }
}

fn closed_in_handshake() -> io::Error {
    io::Error::new(io::ErrorKind::UnexpectedEof, "client closed during the handshake")
}

impl AsyncRead for TlsStream {
    fn poll_read(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut [u8]) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        if buf.is_empty() {
            return Poll::Ready(Ok(0));
        }
        loop {
            if !this.plain.is_empty() {
                let n = this.plain.len().min(buf.len());
                buf[..n].copy_from_slice(&this.plain.filled()[..n]);
                this.plain.consume(n);
                return Poll::Ready(Ok(n));
            }
            if let Some(e) = this.failed_error() {
                return Poll::Ready(Err(e));
            }
            if this.eof {
                // Best effort: an answer to the peer's last records.
                let _ = this.poll_send(cx);
                return Poll::Ready(Ok(0));
            }
            // With no input and nothing queued, rustls has nothing to do:
            // straight to the socket (the common case between requests).
            let step = if this.input.is_empty() && !this.conn.wants_write() {
                Ok(Step::Open)
            } else {
                this.step(Op::Read(buf))
            };
            match step {
                Err(e) => return Poll::Ready(Err(this.fail(cx, e))),
                Ok(Step::Read(n)) if n > 0 => return Poll::Ready(Ok(n)),
                Ok(Step::Read(_) | Step::Queued) => {}
                Ok(Step::PeerClosed | Step::Closed) => this.eof = true,
                Ok(Step::NeedInput | Step::Open | Step::Wrote(_)) => {
                    // What reading queued leaves before the next wait; past
                    // a limit, reading waits for it.
                    if this.output.len() > MAX_QUEUED {
                        ready!(this.poll_send(cx))?;
                    } else if let Poll::Ready(Err(e)) = this.poll_send(cx) {
                        return Poll::Ready(Err(e));
                    }
                    if ready!(this.poll_receive(cx))? == 0 {
                        this.eof = true;
                    }
                }
            }
        }
    }
}

impl AsyncWrite for TlsStream {
    /// Encrypts up to [`BATCH_RECORDS`] full records of `data`.
    fn poll_write(self: Pin<&mut Self>, cx: &mut Context<'_>, data: &[u8]) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        if data.is_empty() {
            return Poll::Ready(Ok(0));
        }
        if let Some(e) = this.failed_error() {
            return Poll::Ready(Err(e));
        }
        let data = &data[..data.len().min(BATCH_RECORDS * MAX_WRITE)];
        // A record joins queued output only where it fits: compacting or
        // growing the buffer would copy what waits (measured: a third copy
        // of every byte of a 1 MiB response).
        let first = data.len().min(MAX_WRITE);
        if !this.output.is_empty() && this.output.room() < first + RECORD_OVERHEAD {
            ready!(this.poll_send(cx))?;
        }
        if data.len() > MAX_WRITE {
            this.output.reserve(BATCH_BUF);
        }
        let mut written = 0;
        for piece in data.chunks(MAX_WRITE) {
            if written > 0 && this.output.room() < piece.len() + RECORD_OVERHEAD {
                break;
            }
            match this.encrypt(cx, piece) {
                Ok(n) => written += n,
                // Bytes already encrypted count; the next write reports it.
                Err(_) if written > 0 => break,
                Err(e) => return Poll::Ready(Err(e)),
            }
        }
        // Once no further full record fits, the output leaves now if the
        // socket takes it; less waits for more, for a flush or close, or
        // for the next wait on input (so the last handshake flight, a
        // response and its close_notify share one send).
        if this.output.len() >= MAX_WRITE
            && this.output.room() < MAX_WRITE + RECORD_OVERHEAD
            && let Poll::Ready(Err(e)) = this.poll_send(cx)
        {
            return Poll::Ready(Err(e));
        }
        Poll::Ready(Ok(written))
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        ready!(this.poll_send(cx))?;
        Pin::new(&mut this.tcp).poll_flush(cx)
    }

    fn poll_close(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        if !this.closing && this.failed.is_none() {
            this.closing = true;
            for _ in 0..8 {
                match this.step(Op::CloseNotify) {
                    Ok(Step::Read(_) | Step::Queued) => {}
                    Ok(Step::PeerClosed) => this.eof = true,
                    _ => break,
                }
            }
        }
        ready!(this.poll_send_as(cx, true))?;
        this.fin_deferred = true;
        Poll::Ready(Ok(()))
    }
}

impl std::fmt::Debug for TlsStream {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TlsStream")
            .field("tcp", &self.tcp)
            .field("input", &self.input.len())
            .field("output", &self.output.len())
            .field("plain", &self.plain.len())
            .field("eof", &self.eof)
            .finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests {
    use std::io::{Read, Write};
    use std::sync::Arc;

    use futures_lite::{AsyncReadExt, AsyncWriteExt};
    use rustls::pki_types::{PrivateKeyDer, ServerName};
    use rustls::{ClientConfig, ClientConnection, RootCertStore, ServerConfig, StreamOwned};

    use super::*;
    use crate::runtime;

    fn configs() -> (Arc<ServerConfig>, Arc<ClientConfig>) {
        let cert = rcgen::generate_simple_self_signed(vec!["localhost".into()]).expect("cert");
        let key = PrivateKeyDer::Pkcs8(cert.key_pair.serialize_der().into());
        let provider = Arc::new(crate::tls::provider());
        let server = ServerConfig::builder_with_provider(provider.clone())
            .with_safe_default_protocol_versions()
            .expect("versions")
            .with_no_client_auth()
            .with_single_cert(vec![cert.cert.der().clone()], key)
            .expect("server config");
        let mut roots = RootCertStore::empty();
        roots.add(cert.cert.der().clone()).expect("root");
        let client = ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .expect("versions")
            .with_root_certificates(roots)
            .with_no_client_auth();
        (Arc::new(server), Arc::new(client))
    }

    /// A blocking rustls client connected to `addr`.
    fn connect(
        client: Arc<ClientConfig>,
        addr: std::net::SocketAddr,
    ) -> StreamOwned<ClientConnection, std::net::TcpStream> {
        let name = ServerName::try_from("localhost").expect("name");
        let conn = ClientConnection::new(client, name).expect("client");
        StreamOwned::new(conn, std::net::TcpStream::connect(addr).expect("connect"))
    }

    /// Accepts one connection on `listener` and completes its handshake.
    async fn accept(listener: std::net::TcpListener, server: Arc<ServerConfig>) -> TlsStream {
        let listener = runtime::listener(listener).expect("listener");
        let (tcp, _) = listener.accept().await.expect("accept");
        let conn = UnbufferedServerConnection::new(server).expect("conn");
        let mut tls = TlsStream::new(conn, tcp, Vec::new());
        tls.handshake().await.expect("handshake");
        tls
    }

    /// A large write is taken four records at a time (they leave in one
    /// send), arrives intact, and its batch buffer goes back to the pool.
    #[test]
    fn a_large_write_takes_four_records_at_once() {
        let (server, client) = configs();
        let listener = runtime::bind("127.0.0.1:0".parse().expect("addr")).expect("bind");
        let addr = listener.local_addr().expect("addr");
        let body: Vec<u8> = (0..100 * 1024u32).map(|i| (i % 251) as u8).collect();
        let expected = body.clone();
        let peer = std::thread::spawn(move || {
            let mut tls = connect(client, addr);
            tls.write_all(b"go").expect("send");
            let mut got = vec![0; expected.len()];
            tls.read_exact(&mut got).expect("body");
            assert!(got == expected, "the body arrives intact");
        });
        futures_lite::future::block_on(async {
            let mut tls = accept(listener, server).await;
            let mut go = [0; 2];
            tls.read_exact(&mut go).await.expect("read");
            let first = tls.write(&body).await.expect("write");
            assert_eq!(first, BATCH_RECORDS * MAX_WRITE, "one write takes four full records");
            tls.write_all(&body[first..]).await.expect("write the rest");
            tls.flush().await.expect("flush");
            assert_eq!(tls.output.data.len(), 0, "the batch buffer is back in the pool");
            assert!(BATCH_POOL.with(FreeList::len) >= 1, "pooled for the next large write");
        });
        peer.join().expect("peer");
    }

    /// Between requests a connection holds no buffer: the point of the
    /// unbuffered API. Checked after a 40 KiB exchange, which needs more
    /// than one record each way.
    #[test]
    fn a_quiet_connection_holds_no_buffers() {
        let (server, client) = configs();
        let listener = runtime::bind("127.0.0.1:0".parse().expect("addr")).expect("bind");
        let addr = listener.local_addr().expect("addr");
        let (done_tx, done_rx) = std::sync::mpsc::channel::<()>();
        let peer = std::thread::spawn(move || {
            let mut tls = connect(client, addr);
            tls.write_all(&[7; 40 * 1024]).expect("send");
            let mut echo = vec![0; 40 * 1024];
            tls.read_exact(&mut echo).expect("echo");
            assert!(echo.iter().all(|&b| b == 8));
            let _ = done_rx.recv();
        });
        futures_lite::future::block_on(async {
            let mut tls = accept(listener, server).await;
            let mut got = vec![0; 40 * 1024];
            tls.read_exact(&mut got).await.expect("read");
            assert!(got.iter().all(|&b| b == 7));
            tls.write_all(&[8; 40 * 1024]).await.expect("write");
            tls.flush().await.expect("flush");
            let held = [&tls.input, &tls.output, &tls.plain].map(|b| b.data.len());
            assert_eq!(held, [0, 0, 0], "input, output and plaintext buffers of a quiet connection");
            done_tx.send(()).expect("peer waits");
        });
        peer.join().expect("peer");
    }
}
