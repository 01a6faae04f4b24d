//! Live per-backend counters shared by every worker of one proxy.
//!
//! The pool's snapshots are immutable, but load is not: requests in flight,
//! latency, consecutive failures. These live in one [`Load`] per proxy
//! (an `Arc` of plain atomics, indexed by [`BackendId`]) that every
//! snapshot carries, so strategies on all workers see the same numbers and
//! the BackendPool can report them, with no message per request. Clocks are
//! passed in as `Instant`s; nothing here reads one.

use std::sync::Arc;
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use crate::balance::BackendId;

/// Counters of one backend.
#[derive(Debug, Default)]
pub struct BackendStats {
    in_flight: AtomicU32,
    connecting: AtomicU32,
    /// Peak-EWMA of the time to the response head, in nanoseconds.
    ewma_ns: AtomicU64,
    /// When `ewma_ns` was last updated, in nanoseconds since [`Load`]'s epoch.
    stamp_ns: AtomicU64,
    consecutive_connect: AtomicU32,
    consecutive_errors: AtomicU32,
    overflows: AtomicU64,
    requests: AtomicU64,
}

impl BackendStats {
    /// Requests now being served by this backend.
    pub fn in_flight(&self) -> u32 {
        self.in_flight.load(Ordering::Relaxed)
    }

    /// Connects to this backend now in progress.
    pub fn connecting(&self) -> u32 {
        self.connecting.load(Ordering::Relaxed)
    }

    /// Requests refused by the circuit breaker.
    pub fn overflows(&self) -> u64 {
        self.overflows.load(Ordering::Relaxed)
    }

    /// Requests sent to this backend.
    pub fn requests(&self) -> u64 {
        self.requests.load(Ordering::Relaxed)
    }
}

/// A failure seen by a session, as passive health counts it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum FailureKind {
    /// The connect was refused, reset or timed out.
    Connect,
    /// The connection was reset (or closed) before any response byte.
    Reset,
    /// No response head within the first-byte timeout.
    Timeout,
    /// A 5xx response.
    Status5xx,
}

impl FailureKind {
    /// Stable name for logs and status.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Connect => "connect_failure",
            Self::Reset => "reset",
            Self::Timeout => "timeout",
            Self::Status5xx => "5xx",
        }
    }
}

/// The live counters of every backend of one proxy.
#[derive(Debug)]
pub struct Load {
    epoch: Instant,
    backends: Box<[BackendStats]>,
    retries_in_flight: AtomicU32,
}

impl Load {
    /// Counters for `n` backends; latency stamps count from `epoch`.
    pub fn new(n: usize, epoch: Instant) -> Arc<Self> {
        Arc::new(Self {
            epoch,
            backends: (0..n).map(|_| BackendStats::default()).collect(),
            retries_in_flight: AtomicU32::new(0),
        })
    }

    /// One backend's counters (a zeroed dummy for an unknown id).
    pub fn stats(&self, id: BackendId) -> &BackendStats {
        static NONE: BackendStats = BackendStats {
            in_flight: AtomicU32::new(0),
            connecting: AtomicU32::new(0),
            ewma_ns: AtomicU64::new(0),
            stamp_ns: AtomicU64::new(0),
            consecutive_connect: AtomicU32::new(0),
            consecutive_errors: AtomicU32::new(0),
            overflows: AtomicU64::new(0),
            requests: AtomicU64::new(0),
        };
        self.backends.get(id.0).unwrap_or(&NONE)
    }

    /// Number of backends counted.
    pub fn len(&self) -> usize {
        self.backends.len()
    }

    /// Whether no backend is counted.
    pub fn is_empty(&self) -> bool {
        self.backends.is_empty()
    }

    fn nanos(&self, now: Instant) -> u64 {
        u64::try_from(now.saturating_duration_since(self.epoch).as_nanos()).unwrap_or(u64::MAX)
    }

    /// The latency estimate of `id` as of `now`: the stored peak-EWMA,
    /// decayed towards zero for the time since it was last updated, so that
    /// a backend that was slow once is tried again after a while.
    pub fn latency(&self, id: BackendId, now: Instant, decay: Duration) -> Duration {
        let s = self.stats(id);
        let ewma = s.ewma_ns.load(Ordering::Relaxed);
        let elapsed = self.nanos(now).saturating_sub(s.stamp_ns.load(Ordering::Relaxed));
        Duration::from_nanos(decayed(ewma, elapsed, decay))
    }

    /// Records one response time of `id` (request sent to response head).
    pub fn observe_latency(&self, id: BackendId, rtt: Duration, now: Instant, decay: Duration) {
        let s = self.stats(id);
        let now_ns = self.nanos(now);
        let prev = s.ewma_ns.load(Ordering::Relaxed);
        let elapsed = now_ns.saturating_sub(s.stamp_ns.load(Ordering::Relaxed));
        let rtt_ns = u64::try_from(rtt.as_nanos()).unwrap_or(u64::MAX);
        // Races between workers lose an observation at worst.
        s.ewma_ns.store(peak_ewma(prev, elapsed, rtt_ns, decay), Ordering::Relaxed);
        s.stamp_ns.store(now_ns, Ordering::Relaxed);
    }

    /// Marks a request as sent to `id`; the guard ends it when dropped.
    pub fn begin(self: &Arc<Self>, id: BackendId) -> InFlight {
        let s = self.stats(id);
        s.in_flight.fetch_add(1, Ordering::Relaxed);
        s.requests.fetch_add(1, Ordering::Relaxed);
        InFlight { load: self.clone(), id }
    }

    /// Marks a connect to `id` as started; the guard ends it when dropped.
    pub fn begin_connect(self: &Arc<Self>, id: BackendId) -> Connecting {
        self.stats(id).connecting.fetch_add(1, Ordering::Relaxed);
        Connecting { load: self.clone(), id }
    }

    /// Counts a request the circuit breaker refused.
    pub fn count_overflow(&self, id: BackendId) {
        self.stats(id).overflows.fetch_add(1, Ordering::Relaxed);
    }

    /// Counts a failure; returns the new number of consecutive failures of
    /// that class (connect failures and the other errors count apart).
    pub fn record_failure(&self, id: BackendId, kind: FailureKind) -> u32 {
        let s = self.stats(id);
        let counter = if kind == FailureKind::Connect { &s.consecutive_connect } else { &s.consecutive_errors };
        counter.fetch_add(1, Ordering::Relaxed).saturating_add(1)
    }

    /// A connect succeeded: ends the run of connect failures.
    pub fn record_connected(&self, id: BackendId) {
        reset(&self.stats(id).consecutive_connect);
    }

    /// A response arrived that is not an error: ends the run of errors.
    pub fn record_success(&self, id: BackendId) {
        reset(&self.stats(id).consecutive_errors);
    }

    /// Forgets the failure runs of `id` (it was ejected or restored).
    pub fn clear_failures(&self, id: BackendId) {
        let s = self.stats(id);
        reset(&s.consecutive_connect);
        reset(&s.consecutive_errors);
    }

    /// Requests in flight across all backends.
    pub fn total_in_flight(&self) -> u32 {
        self.backends.iter().map(BackendStats::in_flight).sum()
    }

    /// Takes a retry token if the budget allows: retries in flight may be
    /// `percent`% of requests in flight, and at least `min`.
    pub fn try_retry(self: &Arc<Self>, percent: u32, min: u32) -> Option<RetryToken> {
        let allowed = retry_allowance(self.total_in_flight(), percent, min);
        let mut current = self.retries_in_flight.load(Ordering::Relaxed);
        loop {
            if current >= allowed {
                return None;
            }
            match self.retries_in_flight.compare_exchange_weak(
                current,
                current + 1,
                Ordering::Relaxed,
                Ordering::Relaxed,
            ) {
                Ok(_) => return Some(RetryToken { load: self.clone() }),
                Err(now) => current = now,
            }
        }
    }

    /// Retries now in flight.
    pub fn retries_in_flight(&self) -> u32 {
        self.retries_in_flight.load(Ordering::Relaxed)
    }
}

/// Stores zero only if needed, so the success path does not dirty a shared
/// cache line on every request.
fn reset(counter: &AtomicU32) {
    if counter.load(Ordering::Relaxed) != 0 {
        counter.store(0, Ordering::Relaxed);
    }
}

/// Retries in flight allowed when `in_flight` requests are in flight.
pub fn retry_allowance(in_flight: u32, percent: u32, min: u32) -> u32 {
    let share = u64::from(in_flight) * u64::from(percent) / 100;
    u32::try_from(share).unwrap_or(u32::MAX).max(min)
}

/// `value` decayed over `elapsed_ns` with time constant `decay`.
fn decayed(value: u64, elapsed_ns: u64, decay: Duration) -> u64 {
    let tau = decay.as_nanos() as f64;
    if value == 0 || tau <= 0.0 {
        return value;
    }
    (value as f64 * (-(elapsed_ns as f64) / tau).exp()) as u64
}

/// Peak-EWMA (Finagle, linkerd): a sample above the estimate replaces it at
/// once (react to a slowdown immediately); a lower one is averaged in with
/// a weight that grows with the time since the last sample.
pub fn peak_ewma(prev_ns: u64, elapsed_ns: u64, rtt_ns: u64, decay: Duration) -> u64 {
    if rtt_ns >= prev_ns || prev_ns == 0 {
        return rtt_ns;
    }
    let tau = decay.as_nanos() as f64;
    let w = if tau <= 0.0 { 0.0 } else { (-(elapsed_ns as f64) / tau).exp() };
    (prev_ns as f64 * w + rtt_ns as f64 * (1.0 - w)) as u64
}

/// A request in flight to one backend; dropping it ends the request.
#[derive(Debug)]
pub struct InFlight {
    load: Arc<Load>,
    id: BackendId,
}

impl Drop for InFlight {
    fn drop(&mut self) {
        self.load.stats(self.id).in_flight.fetch_sub(1, Ordering::Relaxed);
    }
}

/// A connect in progress to one backend; dropping it ends the connect.
#[derive(Debug)]
pub struct Connecting {
    load: Arc<Load>,
    id: BackendId,
}

impl Drop for Connecting {
    fn drop(&mut self) {
        self.load.stats(self.id).connecting.fetch_sub(1, Ordering::Relaxed);
    }
}

/// A retry in flight, counted against the retry budget until dropped.
#[derive(Debug)]
pub struct RetryToken {
    load: Arc<Load>,
}

impl Drop for RetryToken {
    fn drop(&mut self) {
        self.load.retries_in_flight.fetch_sub(1, Ordering::Relaxed);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const TAU: Duration = Duration::from_secs(10);

    #[test]
    fn peak_ewma_jumps_up_and_decays_down() {
        let cases: &[(u64, u64, u64, u64)] = &[
            // prev, elapsed, rtt, want
            (0, 0, 500, 500),
            (100, 0, 500, 500),
            (1000, 0, 100, 1000),
            (1000, 10_000_000_000, 100, 100 + (900.0 * (-1.0f64).exp()) as u64),
            (1000, u64::MAX / 2, 100, 100),
        ];
        for &(prev, elapsed, rtt, want) in cases {
            let got = peak_ewma(prev, elapsed, rtt, TAU);
            assert!(got.abs_diff(want) <= 1, "prev={prev} elapsed={elapsed} rtt={rtt}: {got} != {want}");
        }
    }

    #[test]
    fn guards_count_and_release() {
        let load = Load::new(2, Instant::now());
        let a = load.begin(BackendId(0));
        let b = load.begin(BackendId(0));
        let c = load.begin_connect(BackendId(1));
        assert_eq!((load.stats(BackendId(0)).in_flight(), load.stats(BackendId(1)).connecting()), (2, 1));
        assert_eq!(load.total_in_flight(), 2);
        drop((a, b, c));
        assert_eq!((load.stats(BackendId(0)).in_flight(), load.stats(BackendId(1)).connecting()), (0, 0));
        assert_eq!(load.stats(BackendId(0)).requests(), 2);
        assert_eq!(load.stats(BackendId(99)).in_flight(), 0, "unknown ids read as idle");
    }

    #[test]
    fn failure_runs_count_apart_and_reset() {
        let load = Load::new(1, Instant::now());
        let id = BackendId(0);
        assert_eq!(load.record_failure(id, FailureKind::Connect), 1);
        assert_eq!(load.record_failure(id, FailureKind::Reset), 1);
        assert_eq!(load.record_failure(id, FailureKind::Status5xx), 2);
        load.record_success(id);
        assert_eq!(load.record_failure(id, FailureKind::Timeout), 1);
        assert_eq!(load.record_failure(id, FailureKind::Connect), 2);
        load.record_connected(id);
        assert_eq!(load.record_failure(id, FailureKind::Connect), 1);
    }

    #[test]
    fn retry_budget_is_a_share_of_live_requests() {
        let cases: &[(u32, u32, u32, u32)] = &[(0, 20, 3, 3), (10, 20, 3, 3), (100, 20, 3, 20), (1000, 0, 0, 0)];
        for &(live, pct, min, want) in cases {
            assert_eq!(retry_allowance(live, pct, min), want, "live={live} pct={pct} min={min}");
        }
        let load = Load::new(1, Instant::now());
        let tokens: Vec<_> = (0..5).filter_map(|_| load.try_retry(20, 3)).collect();
        assert_eq!(tokens.len(), 3, "only the minimum with nothing in flight");
        drop(tokens);
        assert_eq!(load.retries_in_flight(), 0);
        assert!(load.try_retry(20, 3).is_some());
    }

    #[test]
    fn latency_is_observed_and_decays() {
        let epoch = Instant::now();
        let load = Load::new(1, epoch);
        let id = BackendId(0);
        load.observe_latency(id, Duration::from_millis(100), epoch, TAU);
        assert_eq!(load.latency(id, epoch, TAU), Duration::from_millis(100));
        let later = load.latency(id, epoch + TAU, TAU);
        assert!(later < Duration::from_millis(40) && later > Duration::from_millis(30), "{later:?}");
    }
}
