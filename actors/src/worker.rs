//! One worker thread's shared state and its main function.
//!
//! A worker hosts its own Listener (accepting from the shared listening
//! sockets), its Balancer, its sessions and its upstream connection pool.
//! Everything here is thread-local (`Rc`, `Cell`): a request never crosses
//! threads.

use std::cell::{Cell, RefCell};
use std::future::Future;
use std::net::TcpListener as StdTcpListener;
use std::pin::Pin;
use std::rc::Rc;
use std::sync::Arc;
use std::task::{Context as TaskContext, Poll, Waker};
use std::time::{Duration, Instant};

use actix::prelude::*;
use log::{debug, info};
use rustls::ServerConfig;

use crate::actors::backend_pool::{BackendFailed, BackendPool, Subscribe};
use crate::actors::balancer::{Balancer, BalancerHandle};
use crate::actors::listener::{Listener, Spread};
use crate::actors::supervisor::{self, Fatal, SupervisorSpec};
use crate::balance::{self, PoolSnapshot};
use crate::http1::Limits;
use crate::io::BufPool;
use crate::limits::ClientLimits;
use crate::metrics::{LocalMetrics, Metrics};
use crate::runtime;
use crate::settings::Settings;
use crate::slab::Slab;
use crate::supervision::RestartPolicy;
use crate::upstream::ConnPool;

/// How often idle upstream connections are checked for expiry.
const POOL_SWEEP_INTERVAL: Duration = Duration::from_secs(1);

/// State shared by everything on one worker thread.
pub struct Worker {
    /// Worker index, for logs.
    pub index: usize,
    /// The settings this worker was started with.
    pub settings: Arc<Settings>,
    /// TLS configuration for new handshakes (replaced by the Listener on
    /// certificate replacement; sessions clone the `Arc` at accept).
    pub tls: RefCell<Arc<ServerConfig>>,
    /// This worker's counters.
    pub metrics: LocalMetrics,
    /// Parsing limits derived from the settings.
    pub limits: Limits,
    /// This worker's balancer.
    pub balancer: BalancerHandle,
    /// This worker's idle upstream connections.
    pub pool: RefCell<ConnPool>,
    /// I/O buffers lent to sessions while they serve a request.
    pub bufs: BufPool,
    /// Open client sessions.
    pub sessions: Cell<usize>,
    /// The session counts of all workers, and their Listeners.
    pub spread: Arc<Spread>,
    /// Per-client-IP admission state, shared by all workers of the proxy.
    pub clients: Arc<ClientLimits>,
    next_conn: Cell<u64>,
    /// Fired when the proxy shuts down: sessions waiting for the next
    /// request on an idle connection see it and close.
    pub shutdown: ShutdownSignal,
}

impl Worker {
    /// A fresh connection id, unique within this worker.
    pub fn next_conn_id(&self) -> u64 {
        let id = self.next_conn.get();
        self.next_conn.set(id + 1);
        (id << 8) | (self.index as u64 & 0xff)
    }
}

/// A worker's shutdown signal: fired once, it wakes every session waiting
/// on it. Sessions wait on it each time they go idle, so a wait must be
/// cheap: it takes a slot in a reused table (a channel receiver allocated
/// and registered a listener per wait, about 2 % of a keep-alive request's
/// instructions).
#[derive(Debug, Default)]
pub struct ShutdownSignal {
    fired: Cell<bool>,
    waiters: RefCell<Slab<Waker>>,
}

impl ShutdownSignal {
    /// Whether the signal has fired.
    pub fn is_fired(&self) -> bool {
        self.fired.get()
    }

    /// Fires the signal and wakes every waiter.
    pub fn fire(&self) {
        self.fired.set(true);
        for waker in self.waiters.borrow_mut().iter_mut() {
            waker.wake_by_ref();
        }
    }

    /// Completes once the signal has fired.
    pub fn wait(&self) -> ShutdownWait<'_> {
        ShutdownWait { signal: self, slot: None }
    }
}

/// The future of [`ShutdownSignal::wait`].
#[derive(Debug)]
pub struct ShutdownWait<'a> {
    signal: &'a ShutdownSignal,
    slot: Option<usize>,
}

impl Future for ShutdownWait<'_> {
    type Output = ();

    fn poll(self: Pin<&mut Self>, cx: &mut TaskContext<'_>) -> Poll<()> {
        let this = self.get_mut();
        if this.signal.fired.get() {
            return Poll::Ready(());
        }
        let mut waiters = this.signal.waiters.borrow_mut();
        match this.slot.and_then(|i| waiters.get_mut(i)) {
            Some(waker) if waker.will_wake(cx.waker()) => {}
            Some(waker) => *waker = cx.waker().clone(),
            None => this.slot = Some(waiters.insert(cx.waker().clone())),
        }
        Poll::Pending
    }
}

impl Drop for ShutdownWait<'_> {
    fn drop(&mut self) {
        if let Some(slot) = self.slot {
            self.signal.waiters.borrow_mut().remove(slot);
        }
    }
}

/// What a worker thread needs to start.
pub struct WorkerSpec {
    /// Worker index.
    pub index: usize,
    /// Settings.
    pub settings: Arc<Settings>,
    /// TLS configuration.
    pub tls: Arc<ServerConfig>,
    /// Listening sockets (clones of the proxy's).
    pub listeners: Vec<StdTcpListener>,
    /// The backend pool actor.
    pub pool: Addr<BackendPool>,
    /// The pool's snapshot at start.
    pub snapshot: Arc<PoolSnapshot>,
    /// Closed when the proxy shuts down.
    pub shutdown: async_channel::Receiver<()>,
    /// Round-robin position shared by the workers.
    pub cursor: balance::SharedCursor,
    /// Per-client-IP admission state shared by the workers.
    pub clients: Arc<ClientLimits>,
    /// Session counts of the workers, for spreading connections.
    pub spread: Arc<Spread>,
    /// How long in-flight sessions may take to finish after shutdown.
    pub drain: Duration,
    /// Restart policy and escalation of this worker's Listener and Balancer.
    pub policy: RestartPolicy,
    /// Receives [`Fatal`] when a worker actor's budget is exhausted.
    pub on_fatal: Option<Recipient<Fatal>>,
    /// The proxy's metrics (this worker registers its counters there).
    pub metrics: Arc<Metrics>,
}

/// The actors of one worker, reported back at start.
#[derive(Debug, Clone)]
pub struct WorkerAddrs {
    /// The worker's Listener.
    pub listener: Addr<Listener>,
    /// The worker's Balancer.
    pub balancer: Addr<Balancer>,
}

/// The worker thread's main future: starts the actors, waits for shutdown,
/// drains, returns.
pub async fn run(spec: WorkerSpec, ready: std::sync::mpsc::Sender<std::io::Result<WorkerAddrs>>) {
    let settings = spec.settings;
    let balancer = BalancerHandle::new(
        spec.snapshot,
        &settings.upstream,
        &spec.cursor,
        spec.index as u64,
        spec.pool.clone().recipient::<BackendFailed>(),
    );
    let worker = Rc::new(Worker {
        index: spec.index,
        limits: Limits { max_head_bytes: settings.http.max_head_bytes, max_headers: settings.http.max_headers },
        tls: RefCell::new(spec.tls),
        metrics: LocalMetrics::new(spec.metrics.register_worker()),
        balancer: balancer.clone(),
        pool: RefCell::new(ConnPool::new(settings.upstream.pool_max_idle, settings.upstream.pool_idle_timeout)),
        bufs: BufPool::new(settings.http.max_head_bytes),
        sessions: Cell::new(0),
        spread: spec.spread,
        clients: spec.clients,
        next_conn: Cell::new(1),
        shutdown: ShutdownSignal::default(),
        settings,
    });
    let supervised = |name: &str| SupervisorSpec {
        name: format!("{name} worker={}", spec.index),
        policy: spec.policy,
        on_fatal: spec.on_fatal.clone(),
        metrics: spec.metrics.clone(),
    };
    let balancer_addr = supervisor::start_local(supervised("balancer"), Balancer::new(balancer));
    spec.pool.do_send(Subscribe(balancer_addr.clone().recipient()));
    let listener = match Listener::new(spec.listeners, worker.clone()) {
        Ok(l) => supervisor::start_local(supervised("listener"), l),
        Err(e) => {
            let _ = ready.send(Err(e));
            return;
        }
    };
    let _ = ready.send(Ok(WorkerAddrs { listener: listener.clone(), balancer: balancer_addr }));
    info!("worker started worker={}", spec.index);

    let sweeper = {
        let worker = worker.clone();
        async move {
            loop {
                runtime::sleep(POOL_SWEEP_INTERVAL).await;
                let closed = worker.pool.borrow_mut().expire(Instant::now());
                if closed > 0 {
                    debug!("idle upstream connections expired worker={} closed={closed}", worker.index);
                }
            }
        }
    };
    futures_lite::future::or(sweeper, async {
        let _ = spec.shutdown.recv().await;
    })
    .await;
    worker.shutdown.fire();

    // Stop accepting, then let in-flight sessions finish up to the deadline.
    listener.do_send(crate::actors::listener::StopAccepting);
    let deadline = Instant::now() + spec.drain;
    while worker.sessions.get() > 0 && Instant::now() < deadline {
        runtime::sleep(Duration::from_millis(10)).await;
    }
    info!("worker stopped worker={} abandoned_sessions={}", spec.index, worker.sessions.get());
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::task::Wake;

    use super::*;

    struct CountingWaker(AtomicUsize);

    impl Wake for CountingWaker {
        fn wake(self: Arc<Self>) {
            self.0.fetch_add(1, Ordering::SeqCst);
        }
    }

    #[test]
    fn shutdown_wakes_every_waiter_and_reuses_slots() {
        let signal = ShutdownSignal::default();
        let counter = Arc::new(CountingWaker(AtomicUsize::new(0)));
        let waker = Waker::from(counter.clone());
        let mut cx = TaskContext::from_waker(&waker);

        let mut first = signal.wait();
        let mut second = signal.wait();
        assert!(Pin::new(&mut first).poll(&mut cx).is_pending());
        assert!(Pin::new(&mut second).poll(&mut cx).is_pending());
        // Polled again, a waiter keeps its slot.
        assert!(Pin::new(&mut first).poll(&mut cx).is_pending());
        assert_eq!(signal.waiters.borrow().slots(), 2);

        // A wait that ends gives its slot to the next one.
        drop(second);
        let mut third = signal.wait();
        assert!(Pin::new(&mut third).poll(&mut cx).is_pending());
        assert_eq!(signal.waiters.borrow().slots(), 2);

        signal.fire();
        assert_eq!(counter.0.load(Ordering::SeqCst), 2, "both live waiters are woken");
        assert!(Pin::new(&mut first).poll(&mut cx).is_ready());
        assert!(Pin::new(&mut third).poll(&mut cx).is_ready());
        assert!(Pin::new(&mut signal.wait()).poll(&mut cx).is_ready(), "a wait after the fire ends at once");
    }
}
