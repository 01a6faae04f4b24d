//! The Balancer actor: one per worker thread, the fast reader of pool health.
//!
//! - **Owns**: this worker's copy of the latest [`PoolSnapshot`] and the
//!   balancing [`Strategy`] state, shared with the worker's sessions through
//!   a [`BalancerHandle`] (same thread, no lock, no message per request).
//! - **Receives**: [`SnapshotPublished`] from the BackendPool.
//! - **Sends**: [`BackendFailed`] to the BackendPool when a backend's run of
//!   consecutive failures reaches the outlier threshold (never per request).
//! - **Restart policy**: lives as long as its worker; a restart would keep
//!   the handle, whose next snapshot comes from the pool.
//!
//! Load that all workers must agree on (requests in flight, latency,
//! failure runs, the retry budget) lives in the snapshot's shared
//! [`Load`](crate::balance::Load) atomics; the handle updates them.

use std::cell::RefCell;
use std::net::{IpAddr, SocketAddr};
use std::rc::Rc;
use std::sync::Arc;
use std::time::{Duration, Instant};

use actix::prelude::*;
use log::debug;

use crate::actors::backend_pool::{BackendFailed, SnapshotPublished};
use crate::balance::load::{Connecting, RetryToken};
use crate::balance::{self, BackendId, FailureKind, InFlight, PickRequest, PoolSnapshot, SharedCursor, Strategy, key};
use crate::http1::RequestHead;
use crate::settings::{HashKey, StrategyKind, UpstreamSettings};

/// Picks backends for this worker's sessions.
pub struct Balancer {
    handle: BalancerHandle,
}

impl Balancer {
    /// A balancer whose sessions use `handle`.
    pub fn new(handle: BalancerHandle) -> Self {
        Self { handle }
    }
}

impl Actor for Balancer {
    type Context = Context<Self>;
}

impl Handler<SnapshotPublished> for Balancer {
    type Result = ();

    fn handle(&mut self, msg: SnapshotPublished, _: &mut Context<Self>) {
        let mut state = self.handle.0.borrow_mut();
        if msg.0.version <= state.snapshot.version {
            return;
        }
        debug!("snapshot applied version={} eligible={}", msg.0.version, msg.0.eligible().len());
        state.strategy.reset(&msg.0);
        state.snapshot = msg.0;
    }
}

/// The parts of the upstream settings a pick needs, copied once.
#[derive(Debug, Clone)]
struct Policy {
    hash_key: Option<HashKey>,
    sticky_cookie: Option<String>,
    max_connections: u32,
    max_pending: u32,
    consecutive_connect: u32,
    consecutive_errors: u32,
    count_resets: bool,
    count_timeouts: bool,
    count_5xx: bool,
    ewma_decay: Duration,
    budget_percent: u32,
    budget_min: u32,
}

impl Policy {
    fn new(up: &UpstreamSettings) -> Self {
        Self {
            hash_key: (up.strategy == StrategyKind::Maglev).then(|| up.hash_key.clone()),
            sticky_cookie: (up.strategy == StrategyKind::Sticky).then(|| up.sticky.cookie.clone()),
            max_connections: up.max_connections,
            max_pending: up.max_pending,
            consecutive_connect: up.outlier.consecutive_connect_failures,
            consecutive_errors: up.outlier.consecutive_errors,
            count_resets: up.outlier.count_resets,
            count_timeouts: up.outlier.count_timeouts,
            count_5xx: up.outlier.count_5xx,
            ewma_decay: up.ewma_decay,
            budget_percent: up.retry.budget_percent,
            budget_min: up.retry.budget_min,
        }
    }

    fn counts(&self, kind: FailureKind) -> (bool, u32) {
        match kind {
            FailureKind::Connect => (true, self.consecutive_connect),
            FailureKind::Reset => (self.count_resets, self.consecutive_errors),
            FailureKind::Timeout => (self.count_timeouts, self.consecutive_errors),
            FailureKind::Status5xx => (self.count_5xx, self.consecutive_errors),
        }
    }
}

struct State {
    snapshot: Arc<PoolSnapshot>,
    strategy: Box<dyn Strategy>,
    pool: Recipient<BackendFailed>,
    policy: Policy,
    /// Exclusions of the current pick (tried + over their limits), reused.
    skip: Vec<BackendId>,
}

/// A backend chosen for one attempt of a request.
#[derive(Debug)]
pub struct Pick {
    /// The backend.
    pub id: BackendId,
    /// Its address.
    pub addr: SocketAddr,
    /// Counts the attempt as in flight until dropped.
    pub in_flight: InFlight,
}

/// Why no backend could be picked.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PickError {
    /// No backend is eligible (or every one was tried already).
    NoneEligible,
    /// Eligible backends exist but every one is at its circuit-breaker limit.
    Overloaded,
}

/// The sessions' side of this worker's Balancer: a synchronous pick.
#[derive(Clone)]
pub struct BalancerHandle(Rc<RefCell<State>>);

impl BalancerHandle {
    /// A handle over an initial snapshot, with the strategy and limits of
    /// `up`; `pool` receives failure reports. `seed` feeds randomised
    /// strategies (give each worker its own).
    pub fn new(
        snapshot: Arc<PoolSnapshot>,
        up: &UpstreamSettings,
        cursor: &SharedCursor,
        seed: u64,
        pool: Recipient<BackendFailed>,
    ) -> Self {
        Self::with_strategy(snapshot, balance::strategy(up, cursor, seed), up, pool)
    }

    /// A handle with an explicit strategy (tests, embedders).
    pub fn with_strategy(
        snapshot: Arc<PoolSnapshot>,
        mut strategy: Box<dyn Strategy>,
        up: &UpstreamSettings,
        pool: Recipient<BackendFailed>,
    ) -> Self {
        strategy.reset(&snapshot);
        let policy = Policy::new(up);
        Self(Rc::new(RefCell::new(State { snapshot, strategy, pool, policy, skip: Vec::new() })))
    }

    /// What the strategy may know about `req` from `client`: its hash key
    /// and the backend its sticky cookie names.
    pub fn request(&self, req: &RequestHead, client: IpAddr, now: Instant) -> PickRequest {
        let state = self.0.borrow();
        let mut pick = PickRequest::at(now);
        if let Some(spec) = &state.policy.hash_key {
            pick.key = key::request_key(spec, req, client);
        }
        if let (Some(name), Some(codec)) = (&state.policy.sticky_cookie, state.snapshot.sticky()) {
            pick.sticky = key::cookie(req, name).and_then(|v| codec.decode(v));
        }
        pick
    }

    /// Chooses a backend not in `exclude` and under its circuit-breaker
    /// limits; a backend over them is skipped and its overflow counted.
    pub fn pick(&self, req: &PickRequest, exclude: &[BackendId]) -> Result<Pick, PickError> {
        let mut guard = self.0.borrow_mut();
        let State { snapshot, strategy, policy, skip, .. } = &mut *guard;
        skip.clear();
        skip.extend_from_slice(exclude);
        let mut overflowed = false;
        loop {
            let Some(id) = strategy.choose(snapshot, req, skip) else {
                return Err(if overflowed { PickError::Overloaded } else { PickError::NoneEligible });
            };
            let load = snapshot.load();
            let stats = load.stats(id);
            let over = (policy.max_connections > 0 && stats.in_flight() >= policy.max_connections)
                || (policy.max_pending > 0 && stats.connecting() >= policy.max_pending);
            if over {
                load.count_overflow(id);
                overflowed = true;
                skip.push(id);
                continue;
            }
            let Some(addr) = snapshot.backend(id).map(|b| b.addr) else {
                return Err(PickError::NoneEligible);
            };
            return Ok(Pick { id, addr, in_flight: load.begin(id) });
        }
    }

    /// The `Set-Cookie` value to send with a response from `id`, when the
    /// strategy is sticky and the request did not already name `id`.
    pub fn sticky_cookie(&self, req: &PickRequest, id: BackendId) -> Option<String> {
        let state = self.0.borrow();
        let name = state.policy.sticky_cookie.as_ref()?;
        if req.sticky == Some(id) {
            return None;
        }
        let token = state.snapshot.sticky()?.token(id)?;
        Some(format!("{name}={token}; Path=/; Secure; HttpOnly; SameSite=Lax"))
    }

    /// Counts a connect to `id` as in progress until the guard is dropped.
    pub fn connecting(&self, id: BackendId) -> Connecting {
        self.0.borrow().snapshot.load().begin_connect(id)
    }

    /// A connect to `id` succeeded.
    pub fn connected(&self, id: BackendId) {
        self.0.borrow().snapshot.load().record_connected(id);
    }

    /// A response head arrived from `id` after `rtt`: feeds its latency
    /// estimate, and ends its run of errors unless it is a counted 5xx.
    pub fn responded(&self, id: BackendId, addr: SocketAddr, status: u16, rtt: Duration, now: Instant) {
        let state = self.0.borrow();
        state.snapshot.load().observe_latency(id, rtt, now, state.policy.ewma_decay);
        drop(state);
        if status >= 500 {
            self.failed(id, addr, FailureKind::Status5xx, "5xx response");
        } else {
            self.0.borrow().snapshot.load().record_success(id);
        }
    }

    /// Counts a failure of `id`; when its run reaches the outlier threshold,
    /// tells the pool (which ejects it, within its limits).
    pub fn failed(&self, id: BackendId, addr: SocketAddr, kind: FailureKind, reason: &'static str) {
        let state = self.0.borrow();
        let (counted, threshold) = state.policy.counts(kind);
        if !counted {
            if kind == FailureKind::Status5xx {
                state.snapshot.load().record_success(id);
            }
            return;
        }
        let run = state.snapshot.load().record_failure(id, kind);
        if threshold > 0 && run >= threshold {
            state.pool.do_send(BackendFailed { id, addr, kind, consecutive: run, reason });
        }
    }

    /// A token for one retry, if the retry budget allows it now.
    pub fn try_retry(&self) -> Option<RetryToken> {
        let state = self.0.borrow();
        state.snapshot.load().try_retry(state.policy.budget_percent, state.policy.budget_min)
    }

    /// Number of backends eligible now.
    pub fn eligible(&self) -> usize {
        self.0.borrow().snapshot.eligible().len()
    }

    /// Whether an eligible backend exists that is not in `exclude`.
    pub fn has_other(&self, exclude: &[BackendId]) -> bool {
        self.0.borrow().snapshot.eligible().iter().any(|id| !exclude.contains(id))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::balance::BackendView;

    struct Sink(std::sync::mpsc::Sender<BackendFailed>);
    impl Actor for Sink {
        type Context = Context<Self>;
    }
    impl Handler<BackendFailed> for Sink {
        type Result = ();
        fn handle(&mut self, msg: BackendFailed, _: &mut Context<Self>) {
            let _ = self.0.send(msg);
        }
    }

    fn snapshot(n: usize) -> Arc<PoolSnapshot> {
        let views = (0..n)
            .map(|i| BackendView {
                addr: SocketAddr::from(([127, 0, 0, 1], 9000 + i as u16)),
                weight: 1,
                eligible: true,
            })
            .collect();
        Arc::new(PoolSnapshot::new(views, 1))
    }

    #[actix::test]
    async fn circuit_breaker_skips_full_backends_then_overloads() {
        let (tx, _rx) = std::sync::mpsc::channel();
        let sink = Sink(tx).start().recipient();
        let up = UpstreamSettings { max_connections: 1, ..UpstreamSettings::default() };
        let h = BalancerHandle::new(snapshot(2), &up, &SharedCursor::default(), 1, sink);
        let req = PickRequest::at(Instant::now());
        let a = h.pick(&req, &[]).expect("first");
        let b = h.pick(&req, &[]).expect("second goes to the other backend");
        assert_ne!(a.id, b.id);
        assert_eq!(h.pick(&req, &[]).map(|p| p.id), Err(PickError::Overloaded));
        drop(a);
        assert!(h.pick(&req, &[]).is_ok(), "a finished request frees a slot");
        assert_eq!(h.pick(&req, &[BackendId(0), BackendId(1)]).map(|p| p.id), Err(PickError::NoneEligible));
    }

    #[actix::test]
    async fn failure_runs_report_once_the_threshold_is_reached() {
        let (tx, rx) = std::sync::mpsc::channel();
        let sink = Sink(tx).start().recipient();
        let mut up = UpstreamSettings::default();
        up.outlier.consecutive_errors = 3;
        up.outlier.count_timeouts = false;
        let h = BalancerHandle::new(snapshot(1), &up, &SharedCursor::default(), 1, sink);
        let (id, addr) = (BackendId(0), SocketAddr::from(([127, 0, 0, 1], 9000)));
        let now = Instant::now();
        h.responded(id, addr, 500, Duration::from_millis(1), now);
        h.responded(id, addr, 500, Duration::from_millis(1), now);
        h.responded(id, addr, 200, Duration::from_millis(1), now);
        h.failed(id, addr, FailureKind::Timeout, "timeout");
        h.failed(id, addr, FailureKind::Reset, "reset");
        h.failed(id, addr, FailureKind::Reset, "reset");
        actix::clock::sleep(Duration::from_millis(50)).await;
        assert!(rx.try_recv().is_err(), "a success broke the run and timeouts are not counted");
        h.responded(id, addr, 503, Duration::from_millis(1), now);
        actix::clock::sleep(Duration::from_millis(50)).await;
        let msg = rx.try_recv().expect("report at the threshold");
        assert_eq!((msg.kind, msg.consecutive), (FailureKind::Status5xx, 3));
        h.failed(id, addr, FailureKind::Connect, "connect refused");
        actix::clock::sleep(Duration::from_millis(50)).await;
        assert_eq!(rx.try_recv().map(|m| m.kind).ok(), Some(FailureKind::Connect), "one refused connect is enough");
    }
}
