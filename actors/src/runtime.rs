//! The runtime seam: the only module that names async-std, async-io, tokio's
//! local task set and the worker threads.
//!
//! Terminus drives its sockets with async-std (async-io underneath) and its
//! actors with actix. The measured layout (see `docs/architecture.md`) is one
//! thread per worker that runs `async_io::block_on` over a tokio `LocalSet`:
//! the thread drives the async-io reactor itself, so readiness events never
//! cross threads, while actix actors spawn onto the `LocalSet`. Swapping the
//! runtime (async-std is discontinued upstream; smol is its successor) means
//! changing this file only.

use std::future::Future;
use std::io;
use std::net::{SocketAddr, TcpListener as StdTcpListener};
use std::thread;
use std::time::Duration;

pub use async_std::net::{TcpListener, TcpStream};

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

/// Starts a worker thread that drives the async-io reactor and runs
/// `main` (and every actor it starts) on a local task set.
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
        async_io::block_on(local.run_until(main()));
    })
}

/// Wraps a bound std listener for use on the current worker thread.
pub fn listener(std: StdTcpListener) -> io::Result<TcpListener> {
    std.set_nonblocking(true)?;
    Ok(TcpListener::from(std))
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
    let stream = timeout(limit, TcpStream::connect(addr)).await??;
    stream.set_nodelay(true)?;
    Ok(stream)
}

/// Runs `fut`, failing with `TimedOut` if it does not finish within `limit`.
pub async fn timeout<F: Future>(limit: Duration, fut: F) -> io::Result<F::Output> {
    async_std::future::timeout(limit, fut).await.map_err(|_| io::Error::from(io::ErrorKind::TimedOut))
}

/// Sleeps on the reactor's timer.
pub async fn sleep(duration: Duration) {
    async_io::Timer::after(duration).await;
}

/// Polls `fut` exactly once.
pub async fn poll_once<F: Future + Unpin>(fut: F) -> Option<F::Output> {
    futures_lite::future::poll_once(fut).await
}
