//! The runtime seam: the only module that names async-io, epoll, tokio's
//! local task set and the worker threads.
//!
//! Each worker is one thread that runs a tokio `LocalSet` (where actix
//! actors spawn) under a loop of its own (`runtime/edge.rs`): the worker's listeners
//! and connections are registered once, edge-triggered, in the worker's own
//! epoll instance, and the thread sleeps there, so readiness never crosses
//! threads and workers never share a reactor. Off the workers (admin,
//! redirect, control plane) sockets and timers are async-io's: the reactor
//! of async-std and of its successor smol (async-std itself, discontinued
//! upstream, is no longer used). Swapping the runtime means changing this
//! module only.

use std::cell::RefCell;
use std::future::Future;
use std::io;
use std::net::{SocketAddr, TcpListener as StdTcpListener};
use std::pin::Pin;
use std::task::{Context, Poll, Waker};
use std::thread;
use std::time::{Duration, Instant};

use async_io::Async;
use futures_lite::{AsyncRead, AsyncWrite};

use crate::slab::Slab;

mod edge;

/// A TCP connection.
///
/// On a worker thread it is registered once, edge-triggered, in the
/// worker's own epoll instance (`runtime/edge.rs`, which also skips the
/// `EAGAIN` read after a short one); elsewhere (admin, health checks on
/// other threads) it is an async-io source.
#[derive(Debug)]
pub struct TcpStream(Stream);

#[derive(Debug)]
enum Stream {
    // Field order matters: the socket closes (leaving the epoll instance)
    // before its slot is freed.
    Edge { io: std::net::TcpStream, reg: edge::Registration },
    Async(Async<std::net::TcpStream>),
}

impl TcpStream {
    fn from_std(io: std::net::TcpStream) -> io::Result<Self> {
        io.set_nonblocking(true)?;
        Self::from_nonblocking(io)
    }

    fn from_nonblocking(io: std::net::TcpStream) -> io::Result<Self> {
        Ok(Self(match edge::current() {
            Some(reactor) => {
                let reg = reactor.register(&io)?;
                Stream::Edge { io, reg }
            }
            None => Stream::Async(Async::new(io)?),
        }))
    }

    fn std(&self) -> &std::net::TcpStream {
        match &self.0 {
            Stream::Edge { io, .. } => io,
            Stream::Async(io) => io.get_ref(),
        }
    }

    /// Sets `TCP_NODELAY`.
    pub fn set_nodelay(&self, on: bool) -> io::Result<()> {
        self.std().set_nodelay(on)
    }

    /// Shuts down one or both directions.
    pub fn shutdown(&self, how: std::net::Shutdown) -> io::Result<()> {
        self.std().shutdown(how)
    }

    /// Writes bytes that the caller follows at once with a shutdown of the
    /// writing side ([`AsyncWrite::poll_close`]): sent with `MSG_MORE`, they
    /// wait in the kernel for the FIN, and the last bytes and the FIN leave
    /// in one segment instead of two. (Bytes left waiting are sent on
    /// shutdown or close, whichever comes first.)
    pub fn poll_write_before_close(&self, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        match &self.0 {
            Stream::Edge { io, reg } => {
                reg.poll_write(cx, || rustix::net::send(io, buf, rustix::net::SendFlags::MORE).map_err(Into::into))
            }
            Stream::Async(io) => Pin::new(&mut &*io).poll_write(cx, buf),
        }
    }

    /// Whether an idle connection is no longer fit for a new request: the
    /// peer closed or reset it, or sent bytes no request asked for. On a
    /// worker the events since the last read answer it, with a peek only
    /// when one came (a backend's close usually did long before); elsewhere
    /// it peeks. (A close still on its way is not seen: a request that
    /// meets one is retried when it can be.)
    pub fn is_stale(&self) -> bool {
        match &self.0 {
            Stream::Edge { io, reg } => match reg.read_state() {
                (true, _) => true,
                (false, false) => false,
                (false, true) => {
                    let stale = peek_finds_something(io);
                    if !stale {
                        reg.read_drained();
                    }
                    stale
                }
            },
            Stream::Async(io) => peek_finds_something(io.get_ref()),
        }
    }

    /// Ready once a read may find bytes (or the end of the stream); the
    /// read may still find nothing. Lets a reader take a buffer only when
    /// there is something to put in it.
    pub fn poll_readable(&self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match &self.0 {
            Stream::Edge { reg, .. } => reg.poll_readable(cx),
            Stream::Async(io) => io.poll_readable(cx),
        }
    }
}

/// Whether a non-blocking peek finds bytes, the end of the stream or an
/// error, rather than nothing yet.
fn peek_finds_something(io: &std::net::TcpStream) -> bool {
    !matches!(io.peek(&mut [0u8; 1]), Err(e) if e.kind() == io::ErrorKind::WouldBlock)
}

// Reads and writes go through `&TcpStream` (as with std's sockets), so that
// one task can write a request body while it watches the same connection
// for an early response.
impl AsyncRead for &TcpStream {
    fn poll_read(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut [u8]) -> Poll<io::Result<usize>> {
        use std::io::Read;
        match &self.get_mut().0 {
            Stream::Edge { io, reg } => {
                let (mut io, want) = (io, buf.len());
                reg.poll_read(cx, want, || io.read(buf))
            }
            Stream::Async(io) => Pin::new(&mut &*io).poll_read(cx, buf),
        }
    }
}

impl AsyncWrite for &TcpStream {
    fn poll_write(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        use std::io::Write;
        match &self.get_mut().0 {
            Stream::Edge { io, reg } => {
                let mut io = io;
                reg.poll_write(cx, || io.write(buf))
            }
            Stream::Async(io) => Pin::new(&mut &*io).poll_write(cx, buf),
        }
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        use std::io::Write;
        match &self.get_mut().0 {
            Stream::Edge { io, reg } => {
                let mut io = io;
                reg.poll_write(cx, || io.write_vectored(bufs))
            }
            Stream::Async(io) => Pin::new(&mut &*io).poll_write_vectored(cx, bufs),
        }
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match &self.get_mut().0 {
            Stream::Edge { .. } => Poll::Ready(Ok(())),
            Stream::Async(io) => Pin::new(&mut &*io).poll_flush(cx),
        }
    }

    fn poll_close(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match &self.get_mut().0 {
            Stream::Edge { io, .. } => Poll::Ready(io.shutdown(std::net::Shutdown::Write)),
            Stream::Async(io) => Pin::new(&mut &*io).poll_close(cx),
        }
    }
}

impl AsyncRead for TcpStream {
    fn poll_read(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut [u8]) -> Poll<io::Result<usize>> {
        Pin::new(&mut &*self).poll_read(cx, buf)
    }
}

impl AsyncWrite for TcpStream {
    fn poll_write(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        Pin::new(&mut &*self).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut &*self).poll_write_vectored(cx, bufs)
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut &*self).poll_flush(cx)
    }

    fn poll_close(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut &*self).poll_close(cx)
    }
}

/// A listening socket on the async-io reactor, usable from any thread.
#[derive(Debug)]
pub struct TcpListener {
    io: Async<StdTcpListener>,
}

impl TcpListener {
    /// Accepts one connection.
    pub async fn accept(&self) -> io::Result<(TcpStream, SocketAddr)> {
        let (accepted, peer) = self.accept_unregistered().await?;
        Ok((accepted.register()?, peer))
    }

    async fn accept_unregistered(&self) -> io::Result<(Accepted, SocketAddr)> {
        let (io, peer) = self.io.read_with(|l| l.accept()).await?;
        io.set_nonblocking(true)?;
        Ok((Accepted(io), peer))
    }
}

/// A worker's listening socket: in the worker's epoll instance (an async-io
/// source if the worker has none). Stays on the thread that made it.
#[derive(Debug)]
pub struct LocalListener(Listening);

#[derive(Debug)]
enum Listening {
    Edge { io: StdTcpListener, reg: edge::Registration },
    Async(TcpListener),
}

impl LocalListener {
    /// Accepts one connection, not yet registered anywhere: the worker
    /// that serves it registers it (see [`Accepted::register`]).
    pub async fn accept(&self) -> io::Result<(Accepted, SocketAddr)> {
        match &self.0 {
            Listening::Edge { io, reg } => {
                let (io, peer) = std::future::poll_fn(|cx| reg.poll_accept(cx, || accept_nonblocking(io))).await?;
                Ok((Accepted(io), peer))
            }
            Listening::Async(l) => l.accept_unregistered().await,
        }
    }
}

/// An accepted, non-blocking connection that no worker has registered yet:
/// it can be handed to another worker thread.
#[derive(Debug)]
pub struct Accepted(std::net::TcpStream);

impl Accepted {
    /// Registers the connection on the current thread (its worker's epoll
    /// instance, or async-io off the workers).
    pub fn register(self) -> io::Result<TcpStream> {
        TcpStream::from_nonblocking(self.0)
    }
}

/// A timer runtime shared by the workers of one proxy.
///
/// Actix's `ctx.run_later` and anything else built on tokio's timers need a
/// tokio runtime handle on the thread. A worker thread never polls a tokio
/// driver itself, so the handle comes from a one-thread runtime whose thread
/// drives the timer wheel; wake-ups reach the worker through its waker.
pub struct TimerRuntime {
    runtime: Option<tokio::runtime::Runtime>,
}

impl TimerRuntime {
    /// Starts the timer thread.
    pub fn new() -> io::Result<Self> {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .thread_name("terminus-timer")
            .enable_time()
            .build()?;
        Ok(Self { runtime: Some(runtime) })
    }

    fn handle(&self) -> Option<tokio::runtime::Handle> {
        self.runtime.as_ref().map(|r| r.handle().clone())
    }
}

impl Drop for TimerRuntime {
    fn drop(&mut self) {
        // Dropping a tokio runtime from async code panics; this one holds
        // only timers, so it can be let go in the background.
        if let Some(runtime) = self.runtime.take() {
            runtime.shutdown_background();
        }
    }
}

impl std::fmt::Debug for TimerRuntime {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TimerRuntime").finish_non_exhaustive()
    }
}

/// Starts a worker thread that runs `main` (and every actor it starts) on a
/// local task set, under the worker's own epoll loop (`runtime/edge.rs`).
///
/// `main` is called on the new thread; the future it returns is run to
/// completion, after which the local task set (and every session still on
/// it) is dropped and the thread ends.
pub fn spawn_worker<F, Fut>(name: String, timers: &TimerRuntime, main: F) -> io::Result<thread::JoinHandle<()>>
where
    F: FnOnce() -> Fut + Send + 'static,
    Fut: Future<Output = ()> + 'static,
{
    let handle = timers.handle();
    thread::Builder::new().name(name).spawn(move || {
        let _enter = handle.as_ref().map(|h| h.enter());
        let local = tokio::task::LocalSet::new();
        WHEEL.with(|w| *w.borrow_mut() = Some(Wheel::default()));
        match edge::install().and_then(|()| edge::Runner::new()) {
            Ok(runner) => {
                runner.block_on(local.run_until(main()), TIMEOUT_TICK, fire_due);
            }
            Err(e) => {
                log::warn!("worker runs on the shared async-io reactor: {e}");
                edge::uninstall();
                async_io::block_on(local.run_until(futures_lite::future::or(main(), tick())));
            }
        }
        edge::uninstall();
        WHEEL.with(|w| *w.borrow_mut() = None);
    })
}

/// Granularity of the worker's coarse timeouts: a deadline fires at most
/// this much late. Socket deadlines are seconds long; exactness is not needed.
pub const TIMEOUT_TICK: Duration = Duration::from_millis(50);

thread_local! {
    /// The worker thread's coarse timeouts (None on other threads).
    static WHEEL: RefCell<Option<Wheel>> = const { RefCell::new(None) };
}

/// Pending coarse timeouts of one worker thread, in a slab.
///
/// Every request arms two or three socket deadlines, and nearly all are
/// disarmed before they fire. An async-io timer per deadline costs a
/// cross-thread queue operation and a reactor wake-up (an eventfd write)
/// each time; here arming is a slab insert on the thread itself, and one
/// ticker per worker fires what is due every [`TIMEOUT_TICK`].
#[derive(Default)]
struct Wheel {
    slots: Slab<Slot>,
}

struct Slot {
    deadline: Instant,
    waker: Waker,
    fired: bool,
}

impl Wheel {
    fn fire_due(&mut self, now: Instant) {
        for slot in self.slots.iter_mut() {
            if !slot.fired && slot.deadline <= now {
                slot.fired = true;
                slot.waker.wake_by_ref();
            }
        }
    }
}

/// Fires the worker's due coarse timeouts (when given the time); whether
/// any is still armed.
fn fire_due(now: Option<Instant>) -> bool {
    WHEEL.with(|w| {
        let mut guard = w.borrow_mut();
        let Some(wheel) = guard.as_mut() else { return false };
        if let Some(now) = now {
            wheel.fire_due(now);
        }
        !wheel.slots.is_empty()
    })
}

/// Fires due coarse timeouts every tick on the shared reactor (a worker
/// without its own epoll instance); runs as long as its worker.
async fn tick() {
    loop {
        async_io::Timer::after(TIMEOUT_TICK).await;
        fire_due(Some(Instant::now()));
    }
}

/// The expiry half of a coarse timeout: registers on its first poll,
/// deregisters when dropped.
struct Expiry {
    deadline: Instant,
    slot: Option<usize>,
}

impl Future for Expiry {
    type Output = ();

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        let deadline = self.deadline;
        let slot = self.slot;
        WHEEL.with(|w| {
            let mut guard = w.borrow_mut();
            let Some(wheel) = guard.as_mut() else {
                return Poll::Pending;
            };
            match slot.and_then(|i| wheel.slots.get_mut(i)) {
                Some(s) if s.fired => Poll::Ready(()),
                Some(s) => {
                    if !s.waker.will_wake(cx.waker()) {
                        s.waker = cx.waker().clone();
                    }
                    Poll::Pending
                }
                None => {
                    let i = wheel.slots.insert(Slot { deadline, waker: cx.waker().clone(), fired: false });
                    self.slot = Some(i);
                    Poll::Pending
                }
            }
        })
    }
}

impl Drop for Expiry {
    fn drop(&mut self) {
        if let Some(i) = self.slot {
            // `try_with`: the thread-local may already be gone at thread exit.
            let _ = WHEEL.try_with(|w| {
                if let Ok(mut guard) = w.try_borrow_mut()
                    && let Some(wheel) = guard.as_mut()
                {
                    wheel.slots.remove(i);
                }
            });
        }
    }
}

fn on_worker() -> bool {
    WHEEL.try_with(|w| w.try_borrow().map(|g| g.is_some()).unwrap_or(false)).unwrap_or(false)
}

/// `accept4` with the new socket already non-blocking (one `ioctl` less
/// per connection than `accept` and `set_nonblocking`).
fn accept_nonblocking(listener: &StdTcpListener) -> io::Result<(std::net::TcpStream, SocketAddr)> {
    use rustix::net::{SocketFlags, acceptfrom_with};
    let (fd, addr) = acceptfrom_with(listener, SocketFlags::NONBLOCK | SocketFlags::CLOEXEC)?;
    let peer = addr
        .and_then(|a| SocketAddr::try_from(a).ok())
        .ok_or_else(|| io::Error::other("accepted a connection without an IP address"))?;
    Ok((std::net::TcpStream::from(fd), peer))
}

/// Connections accepted from a listener with `TCP_NODELAY` inherit it on
/// Linux: set once here instead of once per connection.
fn set_nodelay(listener: &StdTcpListener) -> io::Result<()> {
    socket2::SockRef::from(listener).set_nodelay(true)
}

/// Wraps a bound std listener as an async-io source (any thread).
/// Accepted connections have `TCP_NODELAY` set.
pub fn listener(std: StdTcpListener) -> io::Result<TcpListener> {
    set_nodelay(&std)?;
    Ok(TcpListener { io: Async::new(std)? })
}

/// Wraps a bound std listener for the current worker thread's accept loop.
/// Accepted connections have `TCP_NODELAY` set.
pub fn local_listener(std: StdTcpListener) -> io::Result<LocalListener> {
    set_nodelay(&std)?;
    Ok(LocalListener(match edge::current() {
        Some(reactor) => {
            std.set_nonblocking(true)?;
            let reg = reactor.register_listener(&std)?;
            Listening::Edge { io: std, reg }
        }
        None => Listening::Async(listener(std)?),
    }))
}

/// Binds a listening socket the way a server should: `SO_REUSEADDR` (fast
/// restarts), a deep accept backlog, non-blocking.
pub fn bind(addr: SocketAddr) -> io::Result<StdTcpListener> {
    let domain = socket2::Domain::for_address(addr);
    let socket = socket2::Socket::new(domain, socket2::Type::STREAM, Some(socket2::Protocol::TCP))?;
    socket.set_reuse_address(true)?;
    socket.set_nonblocking(true)?;
    socket.bind(&addr.into())?;
    socket.listen(4096)?;
    Ok(socket.into())
}

/// Connects to an upstream, failing with `TimedOut` after `limit`.
pub async fn connect(addr: SocketAddr, limit: Duration) -> io::Result<TcpStream> {
    let connected = timeout(limit, Async::<std::net::TcpStream>::connect(addr)).await??;
    let stream = TcpStream::from_std(connected.into_inner()?)?;
    stream.set_nodelay(true)?;
    Ok(stream)
}

/// Runs `fut`, failing with `TimedOut` if it does not finish within `limit`.
///
/// On a worker thread this is a coarse timeout (late by at most
/// [`TIMEOUT_TICK`]) that costs nothing, not even a clock read, when `fut`
/// is ready at once; on other threads it is an exact async-io timer.
pub fn timeout<F: Future>(limit: Duration, fut: F) -> Timeout<F> {
    Timeout { fut, expiry: Expiring::Unarmed(limit) }
}

pin_project_lite::pin_project! {
    /// The future of [`timeout`]. A plain future rather than an `async fn`:
    /// that kept `fut` twice (as its argument and inside the race), which
    /// made a timed upstream exchange 3.3 KiB instead of 1.1 KiB.
    pub struct Timeout<F> {
        #[pin]
        fut: F,
        expiry: Expiring,
    }
}

/// A [`Timeout`]'s deadline, armed when `fut` first returns pending.
enum Expiring {
    Unarmed(Duration),
    Coarse(Expiry),
    Exact(async_io::Timer),
}

impl<F: Future> Future for Timeout<F> {
    type Output = io::Result<F::Output>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.project();
        if let Poll::Ready(v) = this.fut.poll(cx) {
            return Poll::Ready(Ok(v));
        }
        if let Expiring::Unarmed(limit) = *this.expiry {
            let deadline = now() + limit;
            *this.expiry = if on_worker() {
                Expiring::Coarse(Expiry { deadline, slot: None })
            } else {
                Expiring::Exact(async_io::Timer::at(deadline))
            };
        }
        let expired = match this.expiry {
            Expiring::Coarse(expiry) => Pin::new(expiry).poll(cx).is_ready(),
            Expiring::Exact(timer) => Pin::new(timer).poll(cx).is_ready(),
            Expiring::Unarmed(_) => false,
        };
        if expired { Poll::Ready(Err(io::ErrorKind::TimedOut.into())) } else { Poll::Pending }
    }
}

/// The time for deadlines and durations on the request path. On a worker
/// it is when the worker's loop last woke up, read once per wake-up (as
/// nginx caches its time): it trails the clock by the work done since
/// then, and saves the requests of one wake-up about ten clock reads each.
/// Elsewhere it is the clock.
pub fn now() -> Instant {
    edge::woke().unwrap_or_else(Instant::now)
}

/// Sleeps on the reactor's timer.
pub async fn sleep(duration: Duration) {
    async_io::Timer::after(duration).await;
}

/// Polls `fut` exactly once.
pub async fn poll_once<F: Future + Unpin>(fut: F) -> Option<F::Output> {
    futures_lite::future::poll_once(fut).await
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Runs `f` on a real worker thread and returns its result.
    fn on_worker_thread<T: Send + 'static>(f: impl Future<Output = T> + 'static + Send) -> T {
        let timers = TimerRuntime::new().expect("timer runtime");
        let (tx, rx) = std::sync::mpsc::channel();
        let worker = spawn_worker("test-worker".into(), &timers, move || async move {
            let _ = tx.send(f.await);
        })
        .expect("spawn");
        worker.join().expect("worker ends");
        rx.recv().expect("result")
    }

    /// Runs the checks `check` makes on a real worker thread, then off the
    /// workers (where sockets are async-io's).
    fn on_and_off_a_worker<Fut: Future<Output = ()> + 'static>(check: impl Fn() -> Fut + Copy + Send + 'static) {
        let timers = TimerRuntime::new().expect("timer runtime");
        let worker = spawn_worker("test-worker".into(), &timers, check).expect("spawn");
        worker.join().expect("the checks pass on a worker");
        futures_lite::future::block_on(check());
    }

    /// Accepted connections are non-blocking, have `TCP_NODELAY` (inherited
    /// from the listener) and know their peer, on workers and off them.
    #[test]
    fn accepted_connections_are_ready_to_use() {
        let check = || async {
            let std = bind("127.0.0.1:0".parse().expect("addr")).expect("bind");
            let addr = std.local_addr().expect("addr");
            let listener = local_listener(std).expect("listener");
            let client = std::net::TcpStream::connect(addr).expect("connect");
            let (accepted, peer) = listener.accept().await.expect("accept");
            let stream = accepted.register().expect("register");
            assert_eq!(peer, client.local_addr().expect("client addr"));
            assert!(stream.std().nodelay().expect("nodelay"), "TCP_NODELAY");
            let mut byte = [0u8; 1];
            let read = std::io::Read::read(&mut stream.std(), &mut byte);
            assert_eq!(read.map_err(|e| e.kind()).err(), Some(io::ErrorKind::WouldBlock), "non-blocking");
        };
        on_and_off_a_worker(check);
    }

    #[test]
    fn idle_connections_tell_when_the_peer_closed_or_spoke() {
        let check = || async {
            let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
            let addr = listener.local_addr().expect("addr");
            let mut pairs = Vec::new();
            for _ in 0..3 {
                let ours = connect(addr, Duration::from_secs(1)).await.expect("connect");
                pairs.push((ours, listener.accept().expect("accept").0));
            }
            let [(quiet, _peer), (spoken_to, mut speaker), (closed, closer)] = <[_; 3]>::try_from(pairs).expect("3");
            assert!(!quiet.is_stale() && !spoken_to.is_stale() && !closed.is_stale(), "fresh connections");
            std::io::Write::write_all(&mut speaker, b"x").expect("write");
            drop(closer);
            // Let the events arrive (on a worker, its loop delivers them).
            sleep(Duration::from_millis(50)).await;
            assert!(!quiet.is_stale(), "a silent peer");
            assert!(spoken_to.is_stale(), "bytes nobody asked for");
            assert!(closed.is_stale(), "the peer closed");
        };
        on_and_off_a_worker(check);
    }

    /// On a worker, `now` is the loop's last wake-up: the same through one
    /// wake-up's work, behind the clock, and new after a wait. Elsewhere it
    /// is the clock.
    #[test]
    fn now_is_the_worker_loops_wake_up() {
        let (first, again, clock, after_wait, clock_after_wait) = on_worker_thread(async {
            let first = now();
            std::thread::sleep(Duration::from_millis(20));
            let (again, clock) = (now(), Instant::now());
            sleep(Duration::from_millis(20)).await;
            (first, again, clock, now(), Instant::now())
        });
        assert_eq!(first, again, "one wake-up, one time");
        assert!(clock >= first + Duration::from_millis(20), "the clock went on meanwhile");
        assert!(after_wait >= clock && after_wait <= clock_after_wait, "read again on waking");
        let off_worker = now();
        std::thread::sleep(Duration::from_millis(2));
        assert!(off_worker >= clock_after_wait, "off a worker, the clock");
        assert!(now() >= off_worker + Duration::from_millis(2), "off a worker, the clock");
    }

    #[test]
    fn coarse_timeouts_fire_late_by_at_most_a_tick() {
        let cases: &[(u64, u64, bool)] = &[
            // (limit ms, work ms, expect timeout)
            (100, 0, false),
            (100, 20, false),
            (60, 400, true),
            (200, 600, true),
        ];
        for &(limit, work, expect_timeout) in cases {
            let (result, elapsed, armed) = on_worker_thread(async move {
                let start = Instant::now();
                let r = timeout(Duration::from_millis(limit), sleep(Duration::from_millis(work))).await;
                let armed = WHEEL.with(|w| w.borrow().as_ref().map_or(0, |w| w.slots.len()));
                (r.is_err(), start.elapsed(), armed)
            });
            assert_eq!(result, expect_timeout, "limit {limit} work {work}");
            assert_eq!(armed, 0, "a finished timeout leaves no slot behind");
            if expect_timeout {
                let late = elapsed.saturating_sub(Duration::from_millis(limit));
                assert!(elapsed >= Duration::from_millis(limit), "fired early: {elapsed:?}");
                assert!(late <= TIMEOUT_TICK + Duration::from_millis(100), "fired {late:?} late");
            }
        }
    }

    #[test]
    fn ready_futures_arm_nothing() {
        let armed = on_worker_thread(async {
            for _ in 0..100 {
                let r = timeout(Duration::from_secs(1), async { 7 }).await;
                assert_eq!(r.ok(), Some(7));
            }
            WHEEL.with(|w| w.borrow().as_ref().map_or(usize::MAX, |w| w.slots.slots()))
        });
        assert_eq!(armed, 0);
    }
}
