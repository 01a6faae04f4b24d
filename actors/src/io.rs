//! Buffered body relaying between two byte streams, with framing conversion.
//!
//! Generic over futures-io, no actix: used by the session in both directions
//! (client to backend for request bodies, backend to client for responses).
//! Memory is constant: at most one read buffer and one output batch per
//! direction, whatever the body size.

use std::cell::RefCell;
use std::future::{Future, Pending};
use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use futures_lite::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

use crate::http1::{self, BodyKind, ChunkedDecoder, Decoded, Http1Error};
use crate::runtime;

/// Size of each client read buffer (raised to the head limit when that is
/// larger).
pub const READ_BUF: usize = 16 * 1024;

/// Size of each upstream read buffer (raised likewise): a large response
/// comes in 64 KiB reads and leaves as four TLS records in one send, where
/// 16 KiB took a read and a send per record (measured per 1 MiB response:
/// 66 `recvfrom` and 66 `sendto`).
pub const UPSTREAM_READ_BUF: usize = 64 * 1024;

/// Output is batched up to this many bytes before it is written, so a small
/// response head and body leave in one write (one TLS record).
pub const OUT_BATCH: usize = 16 * 1024;

/// Room a relay's read buffer needs for another read of what is ready (a
/// TLS record's payload; see `fill_or_eof`).
const MORE_READ_ROOM: usize = 16 * 1024;

/// Body pieces at least this big skip the output batch (see [`emit`]).
pub const DIRECT_WRITE: usize = 8 * 1024;

/// Buffers kept in a worker's pool at most, per kind; more are freed.
const MAX_POOLED: usize = 1024;

/// Bytes of read buffers kept in a worker's pool at most, per kind (1,024
/// client read buffers, 256 upstream ones).
const MAX_POOLED_BYTES: usize = 16 << 20;

/// Free buffers of one size (zeroed when new), kept for reuse up to a
/// count: the pools of the sessions' buffers ([`BufPool`]) and of the TLS
/// stream's (`tls::stream`).
#[derive(Debug)]
pub struct FreeList {
    size: usize,
    max: usize,
    free: RefCell<Vec<Vec<u8>>>,
}

impl FreeList {
    /// Buffers of `size` bytes, at most `max` of them kept.
    pub const fn new(size: usize, max: usize) -> Self {
        Self { size, max, free: RefCell::new(Vec::new()) }
    }

    /// The size of this list's buffers.
    pub fn size(&self) -> usize {
        self.size
    }

    /// Free buffers held.
    pub fn len(&self) -> usize {
        self.free.borrow().len()
    }

    /// Whether no free buffer is held.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// A buffer of this list's size.
    pub fn take(&self) -> Vec<u8> {
        self.free.borrow_mut().pop().unwrap_or_else(|| vec![0; self.size])
    }

    /// Keeps `buf` for reuse if it has this list's size and there is room;
    /// otherwise it is freed.
    pub fn give(&self, buf: Vec<u8>) {
        let mut free = self.free.borrow_mut();
        if buf.len() == self.size && free.len() < self.max {
            free.push(buf);
        }
    }
}

/// A worker's pool of I/O buffers. Sessions take buffers when a request
/// starts and give them back when they go idle, so an idle keep-alive
/// connection holds none (idle connections outnumber active ones by far).
#[derive(Debug)]
pub struct BufPool {
    read: FreeList,
    upstream: FreeList,
    out: RefCell<Vec<Vec<u8>>>,
}

impl BufPool {
    /// A pool of read buffers that hold at least `min_read` bytes (client
    /// reads of [`READ_BUF`], upstream reads of [`UPSTREAM_READ_BUF`]) and
    /// output batches.
    pub fn new(min_read: usize) -> Self {
        let list = |size: usize| FreeList::new(size, MAX_POOLED.min(MAX_POOLED_BYTES / size));
        Self {
            read: list(min_read.max(READ_BUF)),
            upstream: list(min_read.max(UPSTREAM_READ_BUF)),
            out: RefCell::new(Vec::new()),
        }
    }

    /// The list of client (or upstream) read buffers. With a head limit of
    /// 64 KiB or more both kinds have one size and share the client list:
    /// buffers are given back by size, so a second list of that size would
    /// never see one again.
    fn list(&self, upstream: bool) -> &FreeList {
        if upstream && self.upstream.size() != self.read.size() { &self.upstream } else { &self.read }
    }

    fn take_read(&self, upstream: bool) -> Vec<u8> {
        self.list(upstream).take()
    }

    fn give_read(&self, data: Vec<u8>) {
        self.list(data.len() != self.read.size()).give(data);
    }

    /// An empty output batch with room for [`OUT_BATCH`] bytes.
    pub fn take_out(&self) -> Vec<u8> {
        self.out.borrow_mut().pop().unwrap_or_else(|| Vec::with_capacity(OUT_BATCH))
    }

    /// Returns an output batch (its contents are discarded).
    pub fn give_out(&self, mut out: Vec<u8>) {
        let mut pool = self.out.borrow_mut();
        if pool.len() < MAX_POOLED && (OUT_BATCH..=4 * OUT_BATCH).contains(&out.capacity()) {
            out.clear();
            pool.push(out);
        }
    }
}

/// A read buffer with a consumed prefix: `data[start..end]` is unread.
/// It may be detached (holding no memory) while its connection is idle.
#[derive(Debug)]
pub struct Buf {
    data: Vec<u8>,
    start: usize,
    end: usize,
}

impl Buf {
    /// A buffer holding at most `capacity` unread bytes.
    pub fn with_capacity(capacity: usize) -> Self {
        Self { data: vec![0; capacity], start: 0, end: 0 }
    }

    /// A buffer without memory; [`Buf::attach`] it before reading.
    pub fn detached() -> Self {
        Self { data: Vec::new(), start: 0, end: 0 }
    }

    /// Takes memory from the pool if the buffer has none: a client read
    /// buffer.
    pub fn attach(&mut self, pool: &BufPool) {
        self.attach_from(pool, false);
    }

    /// Like [`Buf::attach`], an upstream read buffer.
    pub fn attach_upstream(&mut self, pool: &BufPool) {
        self.attach_from(pool, true);
    }

    fn attach_from(&mut self, pool: &BufPool, upstream: bool) {
        if self.data.is_empty() {
            self.data = pool.take_read(upstream);
            self.start = 0;
            self.end = 0;
        }
    }

    /// Moves the unread bytes into a buffer of the upstream size if this
    /// one is smaller: a large request body then streams 64 KiB at a time.
    /// The buffer goes back to the pool of its size when detached.
    pub fn enlarge(&mut self, pool: &BufPool) {
        if self.data.len() >= pool.upstream.size() {
            return;
        }
        let mut larger = pool.take_read(true);
        let n = self.len();
        larger[..n].copy_from_slice(self.filled());
        pool.give_read(std::mem::replace(&mut self.data, larger));
        self.start = 0;
        self.end = n;
    }

    /// Discards unread bytes and gives the memory back to the pool.
    pub fn detach(&mut self, pool: &BufPool) {
        self.start = 0;
        self.end = 0;
        if !self.data.is_empty() {
            pool.give_read(std::mem::take(&mut self.data));
        }
    }

    /// Appends bytes read elsewhere; the buffer must be attached and have
    /// room (callers append at most one small read to an empty buffer).
    pub fn push_slice(&mut self, bytes: &[u8]) {
        let room = self.data.len() - self.end;
        let n = bytes.len().min(room);
        self.data[self.end..self.end + n].copy_from_slice(&bytes[..n]);
        self.end += n;
    }

    /// The unread bytes.
    pub fn filled(&self) -> &[u8] {
        &self.data[self.start..self.end]
    }

    /// Number of unread bytes.
    pub fn len(&self) -> usize {
        self.end - self.start
    }

    /// Whether nothing is unread.
    pub fn is_empty(&self) -> bool {
        self.start == self.end
    }

    /// Marks `n` unread bytes as consumed.
    pub fn consume(&mut self, n: usize) {
        self.start = (self.start + n).min(self.end);
        if self.start == self.end {
            self.start = 0;
            self.end = 0;
        }
    }

    /// Free space after the unread bytes.
    fn room(&self) -> usize {
        self.data.len() - self.end
    }

    /// Whether the buffer cannot take more bytes.
    pub fn is_full(&self) -> bool {
        self.start == 0 && self.end == self.data.len()
    }

    /// Reads once from `src` into the free space; `Ok(0)` means end of
    /// stream (or a full buffer, which callers avoid).
    pub async fn read_from<R: AsyncRead + Unpin>(&mut self, src: &mut R) -> io::Result<usize> {
        if self.end == self.data.len() && self.start > 0 {
            self.data.copy_within(self.start..self.end, 0);
            self.end -= self.start;
            self.start = 0;
        }
        let n = src.read(&mut self.data[self.end..]).await?;
        self.end += n;
        Ok(n)
    }
}

/// Reads one request head for the small plain-HTTP endpoints (admin,
/// redirect), which answer a single request and close: the bytes up to and
/// past the end of the head (`\r\n\r\n`), or `None` when the peer closed,
/// failed, sent more than `max` bytes without ending its head, or took
/// longer than `limit`.
pub async fn read_small_head<R: AsyncRead + Unpin>(stream: &mut R, max: usize, limit: Duration) -> Option<Vec<u8>> {
    let mut buf = Vec::with_capacity(1024);
    let complete = runtime::timeout(limit, async {
        let mut chunk = [0u8; 1024];
        loop {
            let n = stream.read(&mut chunk).await?;
            if n == 0 {
                return Ok::<_, io::Error>(false);
            }
            buf.extend_from_slice(&chunk[..n]);
            if buf.windows(4).any(|w| w == b"\r\n\r\n") {
                return Ok(true);
            }
            if buf.len() > max {
                return Ok(false);
            }
        }
    })
    .await;
    matches!(complete, Ok(Ok(true))).then_some(buf)
}

/// A stream whose writes fail with `TimedOut` once the peer has taken no
/// bytes for `limit` (like nginx's `send_timeout`, the time is between two
/// writes that make progress, so a slow reader that keeps reading is not cut
/// off): the client (`http.send_timeout`), or the backend a request body is
/// sent to (`upstream.send_timeout`). A peer that stops reading would
/// otherwise hold a session and its other connection for as long as it
/// likes. Reads pass through.
pub struct SendDeadline<S> {
    inner: S,
    limit: Duration,
    /// The error's message: who took nothing, under which setting.
    expired: &'static str,
    /// Armed while a write waits, dropped when one makes progress.
    timer: Option<runtime::Timeout<Pending<()>>>,
}

impl<S> SendDeadline<S> {
    /// Wraps `inner` with the deadline `limit`; `expired` says what ran out.
    pub fn new(inner: S, limit: Duration, expired: &'static str) -> Self {
        Self { inner, limit, expired, timer: None }
    }

    fn bound<T>(&mut self, cx: &mut Context<'_>, poll: Poll<io::Result<T>>) -> Poll<io::Result<T>> {
        if poll.is_ready() {
            self.timer = None;
            return poll;
        }
        let limit = self.limit;
        let timer = self.timer.get_or_insert_with(|| runtime::timeout(limit, std::future::pending()));
        if Pin::new(timer).poll(cx).is_ready() {
            self.timer = None;
            return Poll::Ready(Err(io::Error::new(io::ErrorKind::TimedOut, self.expired)));
        }
        Poll::Pending
    }
}

impl<S: AsyncRead + Unpin> AsyncRead for SendDeadline<S> {
    fn poll_read(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut [u8]) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().inner).poll_read(cx, buf)
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for SendDeadline<S> {
    fn poll_write(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        let poll = Pin::new(&mut this.inner).poll_write(cx, buf);
        this.bound(cx, poll)
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        let poll = Pin::new(&mut this.inner).poll_flush(cx);
        this.bound(cx, poll)
    }

    fn poll_close(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        let poll = Pin::new(&mut this.inner).poll_close(cx);
        this.bound(cx, poll)
    }
}

/// Which side of a relay failed.
#[derive(Debug, thiserror::Error)]
pub enum RelayError {
    /// Reading the source failed, timed out, or it ended early.
    #[error("source: {0}")]
    Read(io::Error),
    /// Writing the destination failed.
    #[error("destination: {0}")]
    Write(io::Error),
    /// The source's framing is invalid (a bad chunk).
    #[error("framing: {0}")]
    Framing(Http1Error),
}

/// Streams one body from `src` (framed as `input`, starting with whatever is
/// already in `buf`) to `dst` (framed as `output`). `out` may already hold a
/// head to send first; it is written together with the first body bytes.
/// Returns the number of body payload bytes relayed.
///
/// Supported pairs: equal framings, `Chunked -> CloseDelimited` (for
/// HTTP/1.0 clients) and `CloseDelimited -> Chunked` (to keep an HTTP/1.1
/// client connection alive). `Empty` on either side sends no body.
#[allow(clippy::too_many_arguments)]
pub async fn relay_body<R, W>(
    input: BodyKind,
    output: BodyKind,
    src: &mut R,
    buf: &mut Buf,
    dst: &mut W,
    out: &mut Vec<u8>,
    decoder: &mut ChunkedDecoder,
    read_timeout: Duration,
) -> Result<u64, RelayError>
where
    R: AsyncRead + Unpin,
    W: AsyncWrite + Unpin,
{
    let mut relayed = 0u64;
    match input {
        BodyKind::Empty => {}
        BodyKind::Length(mut left) => {
            while left > 0 {
                if buf.is_empty() {
                    fill(src, buf, dst, out, read_timeout).await?;
                }
                let take = buf.len().min(usize::try_from(left).unwrap_or(usize::MAX));
                emit(&buf.filled()[..take], dst, out).await?;
                buf.consume(take);
                left -= take as u64;
                relayed += take as u64;
            }
        }
        BodyKind::CloseDelimited => loop {
            if buf.is_empty() {
                match fill_or_eof(src, buf, dst, out, read_timeout).await? {
                    0 => break,
                    _ => continue,
                }
            }
            let n = buf.len();
            if output == BodyKind::Chunked {
                http1::write_chunk_header(n, out);
                emit(buf.filled(), dst, out).await?;
                out.extend_from_slice(b"\r\n");
            } else {
                emit(buf.filled(), dst, out).await?;
            }
            buf.consume(n);
            relayed += n as u64;
        },
        BodyKind::Chunked => {
            decoder.reset();
            loop {
                let (used, event) = decoder.decode(buf.filled()).map_err(RelayError::Framing)?;
                match event {
                    Decoded::NeedMore => {
                        buf.consume(used);
                        fill(src, buf, dst, out, read_timeout).await?;
                    }
                    Decoded::Data(range) => {
                        let data = &buf.filled()[range];
                        relayed += data.len() as u64;
                        if output == BodyKind::Chunked {
                            http1::write_chunk_header(data.len(), out);
                            emit(data, dst, out).await?;
                            out.extend_from_slice(b"\r\n");
                        } else {
                            emit(data, dst, out).await?;
                        }
                        buf.consume(used);
                    }
                    Decoded::Done => {
                        buf.consume(used);
                        break;
                    }
                }
            }
        }
    }
    if output == BodyKind::Chunked {
        let trailers = if input == BodyKind::Chunked { decoder.trailers() } else { &[] };
        http1::write_last_chunk(trailers, out);
    }
    flush_out(dst, out).await?;
    Ok(relayed)
}

/// Relays a body that is already whole in `buf` and framed alike on both
/// sides (a small response usually arrives with its head): appended to the
/// batch, without [`relay_body`]'s reads and their futures. `None` leaves
/// everything else to `relay_body`.
pub fn relay_buffered_body(input: BodyKind, output: BodyKind, buf: &mut Buf, out: &mut Vec<u8>) -> Option<u64> {
    let len = match (input, output) {
        (BodyKind::Empty, BodyKind::Empty) => 0,
        (BodyKind::Length(n), BodyKind::Length(m)) if n == m => usize::try_from(n).ok()?,
        _ => return None,
    };
    if len > buf.len() || out.len() + len > OUT_BATCH {
        return None;
    }
    out.extend_from_slice(&buf.filled()[..len]);
    buf.consume(len);
    Some(len as u64)
}

/// Appends `data` to the batch, writing the batch when it would grow past
/// [`OUT_BATCH`]. Pieces of [`DIRECT_WRITE`] bytes or more are written
/// straight from the read buffer when nothing is batched: a large body is
/// not copied into the batch first (one copy of every byte less; the TLS
/// stream still makes full records of them).
async fn emit<W: AsyncWrite + Unpin>(data: &[u8], dst: &mut W, out: &mut Vec<u8>) -> Result<(), RelayError> {
    if out.is_empty() && data.len() >= DIRECT_WRITE {
        return dst.write_all(data).await.map_err(RelayError::Write);
    }
    if out.len() + data.len() <= OUT_BATCH {
        out.extend_from_slice(data);
        return Ok(());
    }
    flush_out(dst, out).await?;
    if data.len() < DIRECT_WRITE {
        out.extend_from_slice(data);
        Ok(())
    } else {
        dst.write_all(data).await.map_err(RelayError::Write)
    }
}

/// Writes and clears the batch.
pub async fn flush_out<W: AsyncWrite + Unpin>(dst: &mut W, out: &mut Vec<u8>) -> Result<(), RelayError> {
    if !out.is_empty() {
        dst.write_all(out).await.map_err(RelayError::Write)?;
        out.clear();
    }
    Ok(())
}

/// Before blocking on the source, hands what is batched to the destination,
/// then reads; the source ending here is an error (the body was cut short).
async fn fill<R, W>(
    src: &mut R,
    buf: &mut Buf,
    dst: &mut W,
    out: &mut Vec<u8>,
    limit: Duration,
) -> Result<(), RelayError>
where
    R: AsyncRead + Unpin,
    W: AsyncWrite + Unpin,
{
    match fill_or_eof(src, buf, dst, out, limit).await? {
        0 => Err(RelayError::Read(io::ErrorKind::UnexpectedEof.into())),
        _ => Ok(()),
    }
}

async fn fill_or_eof<R, W>(
    src: &mut R,
    buf: &mut Buf,
    dst: &mut W,
    out: &mut Vec<u8>,
    limit: Duration,
) -> Result<usize, RelayError>
where
    R: AsyncRead + Unpin,
    W: AsyncWrite + Unpin,
{
    flush_out(dst, out).await?;
    dst.flush().await.map_err(RelayError::Write)?;
    if buf.is_full() {
        // A chunk line longer than the buffer: the decoder bounds these, so
        // this only happens with hostile input.
        return Err(RelayError::Framing(Http1Error::BadChunk { reason: "chunk line too long" }));
    }
    let mut n = match runtime::timeout(limit, buf.read_from(src)).await {
        Ok(Ok(n)) => n,
        Ok(Err(e)) | Err(e) => return Err(RelayError::Read(e)),
    };
    // What the source has ready now joins this read, while a record's worth
    // of room is left: a TLS client yields one record per read, and a large
    // body then leaves in 64 KiB writes. Anything else (nothing ready, the
    // end, an error) is left for the next read to find (a TCP reset then
    // reads as the end: the body is cut short either way).
    while n > 0 && buf.room() >= MORE_READ_ROOM {
        match futures_lite::future::poll_once(buf.read_from(src)).await {
            Some(Ok(more)) if more > 0 => n += more,
            _ => break,
        }
    }
    Ok(n)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_a_whole_body_framed_alike_skips_the_relay() {
        let mut buf = Buf::with_capacity(64);
        buf.push_slice(b"hello, more");
        let mut out = b"HEAD".to_vec();
        // Not whole yet, re-framed, or not a length: the relay's.
        for (input, output) in [
            (BodyKind::Length(12), BodyKind::Length(12)),
            (BodyKind::Length(5), BodyKind::Chunked),
            (BodyKind::Chunked, BodyKind::Chunked),
            (BodyKind::CloseDelimited, BodyKind::CloseDelimited),
        ] {
            assert_eq!(relay_buffered_body(input, output, &mut buf, &mut out), None, "{input:?} -> {output:?}");
        }
        assert_eq!((out.as_slice(), buf.len()), (&b"HEAD"[..], 11), "nothing taken");
        // Whole: batched after the head; what follows it stays unread.
        assert_eq!(relay_buffered_body(BodyKind::Length(5), BodyKind::Length(5), &mut buf, &mut out), Some(5));
        assert_eq!((out.as_slice(), buf.filled()), (&b"HEADhello"[..], &b", more"[..]));
        assert_eq!(relay_buffered_body(BodyKind::Empty, BodyKind::Empty, &mut buf, &mut out), Some(0));
        // A body the batch cannot take streams.
        let mut full = vec![0; OUT_BATCH - 2];
        assert_eq!(relay_buffered_body(BodyKind::Length(5), BodyKind::Length(5), &mut buf, &mut full), None);
    }

    #[test]
    fn pools_keep_buffers_of_their_size_up_to_their_cap() {
        let list = FreeList::new(16, 2);
        let (a, b, c) = (list.take(), list.take(), list.take());
        assert_eq!((a.len(), list.len()), (16, 0), "new buffers are zeroed to the size");
        list.give(vec![0; 8]);
        assert!(list.is_empty(), "another size is freed");
        list.give(a);
        list.give(b);
        list.give(c);
        assert_eq!(list.len(), 2, "kept up to the cap");
        assert_eq!(list.take().len(), 16);
        // The session pool: a client buffer moved to the upstream size goes
        // back to the upstream list; a buffer of neither size is freed.
        let pool = BufPool::new(0);
        let mut buf = Buf::detached();
        buf.attach(&pool);
        buf.push_slice(b"unread");
        buf.enlarge(&pool);
        assert_eq!((buf.filled(), pool.read.len()), (&b"unread"[..], 1), "the smaller one is back");
        buf.detach(&pool);
        assert_eq!((pool.upstream.len(), pool.upstream.size()), (1, UPSTREAM_READ_BUF));
        pool.give_read(vec![0; 100]);
        assert_eq!((pool.read.len(), pool.upstream.len()), (1, 1));
        // A head limit over 64 KiB gives both kinds one size: the upstream
        // buffers come back for reuse too.
        let pool = BufPool::new(128 * 1024);
        let mut up = Buf::detached();
        up.attach_upstream(&pool);
        up.detach(&pool);
        up.attach_upstream(&pool);
        assert_eq!((pool.read.len(), pool.upstream.len()), (0, 0), "the freed buffer was taken again");
        up.detach(&pool);
        assert_eq!(pool.read.len(), 1);
    }

    /// Relays one body from `src` to `dst` through a read buffer of `cap` bytes.
    fn relay<R: AsyncRead + Unpin, W: AsyncWrite + Unpin>(
        input: BodyKind,
        output: BodyKind,
        src: &mut R,
        dst: &mut W,
        cap: usize,
    ) -> Result<u64, RelayError> {
        let mut buf = Buf::with_capacity(cap);
        let mut dec = ChunkedDecoder::new(4096);
        let mut out = Vec::new();
        let timeout = Duration::from_secs(1);
        futures_lite::future::block_on(relay_body(input, output, src, &mut buf, dst, &mut out, &mut dec, timeout))
    }

    fn run(input: BodyKind, output: BodyKind, wire: &[u8], chunk_cap: usize) -> (Vec<u8>, u64) {
        let mut dst = Vec::new();
        let n = relay(input, output, &mut futures_lite::io::Cursor::new(wire), &mut dst, chunk_cap).expect("relay");
        (dst, n)
    }

    #[test]
    fn framings_convert() {
        let cases: &[(&str, BodyKind, BodyKind, &[u8], &[u8], u64)] = &[
            ("length", BodyKind::Length(5), BodyKind::Length(5), b"hello", b"hello", 5),
            ("empty", BodyKind::Empty, BodyKind::Empty, b"", b"", 0),
            (
                "chunked passthrough with trailer",
                BodyKind::Chunked,
                BodyKind::Chunked,
                b"3;ext=1\r\nabc\r\n2\r\nde\r\n0\r\nX-T: 1\r\n\r\n",
                b"3\r\nabc\r\n2\r\nde\r\n0\r\nX-T: 1\r\n\r\n",
                5,
            ),
            ("chunked to close", BodyKind::Chunked, BodyKind::CloseDelimited, b"3\r\nabc\r\n0\r\n\r\n", b"abc", 3),
            (
                "close to chunked",
                BodyKind::CloseDelimited,
                BodyKind::Chunked,
                b"abcdef",
                b"6\r\nabcdef\r\n0\r\n\r\n",
                6,
            ),
            ("close to close", BodyKind::CloseDelimited, BodyKind::CloseDelimited, b"abcdef", b"abcdef", 6),
        ];
        for (name, input, output, wire, want, n) in cases {
            let (got, count) = run(*input, *output, wire, 64);
            assert_eq!(String::from_utf8_lossy(&got), String::from_utf8_lossy(want), "{name}");
            assert_eq!(count, *n, "{name}");
        }
    }

    /// A source that yields at most 16 KiB per read, always at once (as a
    /// TLS client yields one record per read).
    struct Records(futures_lite::io::Cursor<Vec<u8>>);

    impl AsyncRead for Records {
        fn poll_read(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut [u8]) -> Poll<io::Result<usize>> {
            let n = buf.len().min(16 * 1024);
            Pin::new(&mut self.0).poll_read(cx, &mut buf[..n])
        }
    }

    /// A destination that records the size of each write.
    #[derive(Default)]
    struct Writes(Vec<usize>, Vec<u8>);

    impl AsyncWrite for Writes {
        fn poll_write(mut self: Pin<&mut Self>, _: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
            self.0.push(buf.len());
            self.1.extend_from_slice(buf);
            Poll::Ready(Ok(buf.len()))
        }

        fn poll_flush(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<io::Result<()>> {
            Poll::Ready(Ok(()))
        }

        fn poll_close(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<io::Result<()>> {
            Poll::Ready(Ok(()))
        }
    }

    /// What a source has ready joins one read: 16 KiB reads fill a 64 KiB
    /// buffer, and the body leaves in 64 KiB writes.
    #[test]
    fn ready_reads_gather_into_large_writes() {
        let body: Vec<u8> = (0..256 * 1024u32).map(|i| (i % 253) as u8).collect();
        let mut src = Records(futures_lite::io::Cursor::new(body.clone()));
        let mut dst = Writes::default();
        let length = BodyKind::Length(body.len() as u64);
        let n = relay(length, length, &mut src, &mut dst, 64 * 1024).expect("relay");
        assert_eq!(n, body.len() as u64);
        assert!(dst.1 == body, "the body arrives intact");
        assert_eq!(dst.0, [64 * 1024; 4], "four reads per write");
    }

    #[test]
    fn truncated_length_body_is_a_read_error() {
        let mut src = futures_lite::io::Cursor::new(b"abc".to_vec());
        let r = relay(BodyKind::Length(10), BodyKind::Length(10), &mut src, &mut Vec::new(), 64);
        assert!(matches!(r, Err(RelayError::Read(_))), "{r:?}");
    }
}
