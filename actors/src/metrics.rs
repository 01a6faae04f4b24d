//! Counters for the operator's view: cheap on the hot path, aggregated on
//! scrape.
//!
//! Each worker owns a [`WorkerMetrics`] (relaxed atomics written only by
//! that worker's thread: no lock, no contention) and a thread-local cache of
//! per-backend counters. The admin listener sums the workers when scraped.
//! Control-plane events (restarts, health transitions) are rare and kept
//! behind a mutex.

use std::cell::RefCell;
use std::collections::{BTreeMap, VecDeque};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering::Relaxed};
use std::sync::{Arc, Mutex, PoisonError, RwLock};
use std::time::{Duration, SystemTime};

/// Upper bounds (seconds) of the upstream latency histogram buckets.
pub const LATENCY_BUCKETS: [f64; 12] = [0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0];
/// Recent restarts and health transitions kept for the dashboard.
const RECENT_EVENTS: usize = 50;

/// Why a TLS handshake failed, as counted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HandshakeFailure {
    /// The client did not finish in time.
    Timeout,
    /// The handshake was rejected (protocol error, no common cipher, ...).
    Protocol,
    /// The connection failed underneath (reset, EOF).
    Io,
}

impl HandshakeFailure {
    /// All reasons, in metric order.
    pub const ALL: [HandshakeFailure; 3] =
        [HandshakeFailure::Timeout, HandshakeFailure::Protocol, HandshakeFailure::Io];

    /// The `reason` label.
    pub fn label(self) -> &'static str {
        match self {
            HandshakeFailure::Timeout => "timeout",
            HandshakeFailure::Protocol => "protocol",
            HandshakeFailure::Io => "io",
        }
    }

    /// Classifies a handshake error.
    pub fn of(e: &std::io::Error) -> Self {
        match e.kind() {
            std::io::ErrorKind::InvalidData => HandshakeFailure::Protocol,
            std::io::ErrorKind::TimedOut => HandshakeFailure::Timeout,
            _ => HandshakeFailure::Io,
        }
    }
}

/// A latency histogram with atomic buckets.
#[derive(Debug, Default)]
pub struct Histogram {
    buckets: [AtomicU64; LATENCY_BUCKETS.len()],
    count: AtomicU64,
    sum_us: AtomicU64,
}

impl Histogram {
    /// Records one observation.
    pub fn observe(&self, d: Duration) {
        let secs = d.as_secs_f64();
        if let Some(i) = LATENCY_BUCKETS.iter().position(|&b| secs <= b) {
            self.buckets[i].fetch_add(1, Relaxed);
        }
        self.count.fetch_add(1, Relaxed);
        self.sum_us.fetch_add(d.as_micros() as u64, Relaxed);
    }
}

/// Requests and latency of one backend as seen by one worker.
#[derive(Debug, Default)]
pub struct BackendCounters {
    /// Responses relayed from it.
    pub requests: AtomicU64,
    /// Sum of their durations, in microseconds.
    pub latency_us: AtomicU64,
}

/// One worker's counters. Written only by that worker.
#[derive(Debug, Default)]
pub struct WorkerMetrics {
    /// Requests by status class: index 0 = 1xx ... 4 = 5xx.
    pub requests: [AtomicU64; 5],
    /// Open client connections.
    pub active_connections: AtomicI64,
    /// Completed TLS handshakes.
    pub handshakes: AtomicU64,
    /// Failed TLS handshakes, indexed like [`HandshakeFailure::ALL`].
    pub handshake_failures: [AtomicU64; 3],
    /// Requests retried on another connection or backend.
    pub retries: AtomicU64,
    /// Request durations of requests that reached a backend.
    pub upstream_latency: Histogram,
    backends: RwLock<Vec<(SocketAddr, Arc<BackendCounters>)>>,
}

/// A worker's side of its metrics: the shared counters plus a thread-local
/// lookup of per-backend counters (the lock is taken only the first time a
/// worker sees a backend).
#[derive(Debug, Default)]
pub struct LocalMetrics {
    /// The shared counters.
    pub shared: Arc<WorkerMetrics>,
    cache: RefCell<Vec<(SocketAddr, Arc<BackendCounters>)>>,
}

impl LocalMetrics {
    /// Wraps a worker's shared counters.
    pub fn new(shared: Arc<WorkerMetrics>) -> Self {
        Self { shared, cache: RefCell::default() }
    }

    /// Counts one finished request.
    pub fn request(&self, status: u16, upstream: Option<SocketAddr>, took: Duration) {
        let class = usize::from(status / 100).clamp(1, 5) - 1;
        self.shared.requests[class].fetch_add(1, Relaxed);
        let Some(addr) = upstream else { return };
        self.shared.upstream_latency.observe(took);
        let mut cache = self.cache.borrow_mut();
        let counters = match cache.iter().find(|(a, _)| *a == addr) {
            Some((_, c)) => c.clone(),
            None => {
                let c = Arc::new(BackendCounters::default());
                self.shared.backends.write().unwrap_or_else(PoisonError::into_inner).push((addr, c.clone()));
                cache.push((addr, c.clone()));
                c
            }
        };
        counters.requests.fetch_add(1, Relaxed);
        counters.latency_us.fetch_add(took.as_micros() as u64, Relaxed);
    }

    /// Counts a handshake outcome.
    pub fn handshake(&self, result: Result<(), HandshakeFailure>) {
        match result {
            Ok(()) => self.shared.handshakes.fetch_add(1, Relaxed),
            Err(r) => self.shared.handshake_failures[r as usize].fetch_add(1, Relaxed),
        };
    }

    /// A connection opened (+1) or closed (-1).
    pub fn connections(&self, delta: i64) {
        self.shared.active_connections.fetch_add(delta, Relaxed);
    }

    /// Counts a retry.
    pub fn retry(&self) {
        self.shared.retries.fetch_add(1, Relaxed);
    }
}

/// A restart or health transition, for the dashboard.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Event {
    /// Seconds since the Unix epoch.
    pub at: u64,
    /// What it is about (`backend_pool`, `127.0.0.1:8080`).
    pub subject: String,
    /// What happened (`restarted: <reason>`, `down`, `up`).
    pub what: String,
}

#[derive(Debug, Default)]
struct ControlCounters {
    restarts: BTreeMap<String, u64>,
    ejections: u64,
    recent_restarts: VecDeque<Event>,
    recent_transitions: VecDeque<Event>,
}

/// All metrics of one proxy.
#[derive(Debug, Default)]
pub struct Metrics {
    workers: RwLock<Vec<Arc<WorkerMetrics>>>,
    control: Mutex<ControlCounters>,
}

/// Sums over all workers, as scraped.
#[derive(Debug, Default, Clone)]
pub struct Totals {
    /// Requests by status class (1xx..5xx).
    pub requests: [u64; 5],
    /// Open client connections.
    pub active_connections: i64,
    /// Completed TLS handshakes.
    pub handshakes: u64,
    /// Failed handshakes by [`HandshakeFailure::ALL`] index.
    pub handshake_failures: [u64; 3],
    /// Retries.
    pub retries: u64,
    /// Latency histogram buckets (non-cumulative), count and sum in seconds.
    pub latency_buckets: [u64; LATENCY_BUCKETS.len()],
    /// Observations.
    pub latency_count: u64,
    /// Sum of observations, seconds.
    pub latency_sum: f64,
    /// Per backend: requests and summed latency (µs).
    pub backends: BTreeMap<SocketAddr, (u64, u64)>,
    /// Restarts per actor.
    pub restarts: BTreeMap<String, u64>,
    /// Backends taken out of rotation after failures.
    pub ejections: u64,
}

impl Metrics {
    /// Registers a worker's counters.
    pub fn register_worker(&self) -> Arc<WorkerMetrics> {
        let w = Arc::new(WorkerMetrics::default());
        self.workers.write().unwrap_or_else(PoisonError::into_inner).push(w.clone());
        w
    }

    fn control(&self) -> std::sync::MutexGuard<'_, ControlCounters> {
        self.control.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Counts a restart of `actor`.
    pub fn record_restart(&self, actor: &str, reason: &str) {
        let mut c = self.control();
        *c.restarts.entry(actor.to_owned()).or_default() += 1;
        push_recent(&mut c.recent_restarts, Event { at: now(), subject: actor.to_owned(), what: reason.to_owned() });
    }

    /// Records a backend going up or down.
    pub fn record_transition(&self, backend: SocketAddr, up: bool) {
        let mut c = self.control();
        if !up {
            c.ejections += 1;
        }
        let what = if up { "up" } else { "down" };
        push_recent(&mut c.recent_transitions, Event { at: now(), subject: backend.to_string(), what: what.into() });
    }

    /// Restarts of all actors.
    pub fn restarts_total(&self) -> u64 {
        self.control().restarts.values().sum()
    }

    /// Recent restarts and health transitions, newest last.
    pub fn recent(&self) -> (Vec<Event>, Vec<Event>) {
        let c = self.control();
        (c.recent_restarts.iter().cloned().collect(), c.recent_transitions.iter().cloned().collect())
    }

    /// Sums every worker's counters.
    pub fn totals(&self) -> Totals {
        let mut t = Totals::default();
        for w in self.workers.read().unwrap_or_else(PoisonError::into_inner).iter() {
            for (i, r) in w.requests.iter().enumerate() {
                t.requests[i] += r.load(Relaxed);
            }
            t.active_connections += w.active_connections.load(Relaxed);
            t.handshakes += w.handshakes.load(Relaxed);
            for (i, f) in w.handshake_failures.iter().enumerate() {
                t.handshake_failures[i] += f.load(Relaxed);
            }
            t.retries += w.retries.load(Relaxed);
            for (i, b) in w.upstream_latency.buckets.iter().enumerate() {
                t.latency_buckets[i] += b.load(Relaxed);
            }
            t.latency_count += w.upstream_latency.count.load(Relaxed);
            t.latency_sum += w.upstream_latency.sum_us.load(Relaxed) as f64 / 1e6;
            for (addr, c) in w.backends.read().unwrap_or_else(PoisonError::into_inner).iter() {
                let e = t.backends.entry(*addr).or_default();
                e.0 += c.requests.load(Relaxed);
                e.1 += c.latency_us.load(Relaxed);
            }
        }
        let c = self.control();
        t.restarts = c.restarts.clone();
        t.ejections = c.ejections;
        t
    }
}

fn push_recent(q: &mut VecDeque<Event>, e: Event) {
    if q.len() == RECENT_EVENTS {
        q.pop_front();
    }
    q.push_back(e);
}

fn now() -> u64 {
    SystemTime::now().duration_since(SystemTime::UNIX_EPOCH).map_or(0, |d| d.as_secs())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn totals_sum_workers_and_classes() {
        let m = Metrics::default();
        let a = LocalMetrics::new(m.register_worker());
        let b = LocalMetrics::new(m.register_worker());
        let be: SocketAddr = "127.0.0.1:1".parse().unwrap();
        let cases = [(&a, 200, Some(be), 2), (&a, 503, None, 0), (&b, 204, Some(be), 3), (&b, 404, Some(be), 1)];
        for (w, status, up, ms) in cases {
            w.request(status, up, Duration::from_millis(ms));
        }
        a.handshake(Err(HandshakeFailure::Timeout));
        b.handshake(Ok(()));
        a.connections(1);
        b.connections(1);
        a.connections(-1);
        m.record_restart("listener worker=0", "boom");
        m.record_transition(be, false);
        let t = m.totals();
        assert_eq!(t.requests, [0, 2, 0, 1, 1]);
        assert_eq!(t.latency_count, 3);
        assert_eq!(t.latency_buckets[..2], [1, 2], "1 ms in the 1 ms bucket, 2 and 3 ms in the 5 ms one");
        assert_eq!(t.backends[&be], (3, 6000));
        assert_eq!((t.handshakes, t.handshake_failures), (1, [1, 0, 0]));
        assert_eq!(t.active_connections, 1);
        assert_eq!((t.ejections, m.restarts_total()), (1, 1));
    }
}
