//! The BackendPool actor: the single owner of the backend list and its health.
//!
//! - **Owns**: the backends (address, configured weight), their
//!   [`HealthTable`] (active check state, ejections, drain, slow start,
//!   transition history), the live [`Load`] counters every snapshot shares,
//!   the latest [`PoolSnapshot`], and one [`HealthChecker`] per backend when
//!   active checks are on.
//! - **Receives**: [`Subscribe`] from each worker's Balancer,
//!   [`BackendFailed`] (passive health: a run of failures reached the
//!   outlier threshold), [`ProbeCompleted`] from the HealthCheckers,
//!   [`DrainBackend`], and the [`PoolStatus`] and [`WhyBackend`] queries.
//! - **Sends**: [`SnapshotPublished`] to every subscribed Balancer whenever
//!   eligibility or weights change, so a pick never waits for this actor.
//! - **Restart policy**: permanent (supervised). A restart keeps the health
//!   table, subscribers and checkers, and re-arms the timers that restore
//!   ejected backends and ramp slow starts.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use actix::prelude::*;
use log::{debug, error, info, warn};

use crate::actors::health_checker::{HealthChecker, Retire};
use crate::actors::supervisor::{self, SupervisorSpec};
use crate::balance::{
    self, BackendId, BackendView, FailureKind, Load, PickRequest, PoolSnapshot, SharedCursor, StickyCodec, Strategy,
    key,
};
use crate::health::{self, HealthState, HealthTable, Transition, TransitionKind};
use crate::settings::{BackendSettings, StrategyKind, UpstreamSettings};

/// Slow-start weights are republished this many times per window.
const RAMP_STEPS: u32 = 20;
/// Shortest time between two slow-start republications.
const MIN_RAMP_TICK: Duration = Duration::from_millis(50);

/// A Balancer wants every new snapshot (it gets the current one at once).
#[derive(Message)]
#[rtype(result = "()")]
pub struct Subscribe(pub Recipient<SnapshotPublished>);

/// A new picture of the pool.
#[derive(Message, Clone, Debug)]
#[rtype(result = "()")]
pub struct SnapshotPublished(pub Arc<PoolSnapshot>);

/// Sessions saw a run of consecutive failures of one backend that reached
/// the outlier threshold (sent by the worker's balancer handle).
#[derive(Message, Debug, Clone)]
#[rtype(result = "()")]
pub struct BackendFailed {
    /// The backend.
    pub id: BackendId,
    /// Its address (checked against the id).
    pub addr: SocketAddr,
    /// The failure class of the run.
    pub kind: FailureKind,
    /// Length of the run.
    pub consecutive: u32,
    /// The last failure, for the log.
    pub reason: &'static str,
}

/// A HealthChecker's probe finished.
#[derive(Message, Debug, Clone)]
#[rtype(result = "()")]
pub struct ProbeCompleted {
    /// The backend probed.
    pub id: BackendId,
    /// Whether the probe counts as a success.
    pub ok: bool,
    /// What happened (`status=200`, `timeout`, ...), for the log.
    pub detail: String,
}

/// Drain a backend (no new requests; in-flight ones finish) or put it back.
#[derive(Message, Debug, Clone)]
#[rtype(result = "Result<(), PoolError>")]
pub struct DrainBackend {
    /// The backend.
    pub addr: SocketAddr,
    /// `true` drains, `false` undrains.
    pub drain: bool,
}

/// Query: the state of every backend.
#[derive(Message, Debug)]
#[rtype(result = "Vec<BackendStatus>")]
pub struct PoolStatus;

/// Query: which backend the strategy would pick for a request key, and why.
#[derive(Message, Debug, Clone)]
#[rtype(result = "Why")]
pub struct WhyBackend {
    /// The key as text: a client IP, or a header, cookie or path value,
    /// per `upstream.hash_key`.
    pub key: String,
}

/// The answer to [`WhyBackend`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Why {
    /// The backend the strategy would propose now, if any.
    pub backend: Option<SocketAddr>,
    /// The strategy's name.
    pub strategy: &'static str,
    /// Whether the pool is in panic mode.
    pub panic: bool,
    /// Eligible backends now.
    pub eligible: usize,
    /// The explanation.
    pub reason: String,
}

/// Errors of pool commands.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum PoolError {
    /// No backend has that address.
    #[error("no backend {0}")]
    UnknownBackend(SocketAddr),
}

/// One transition in a backend's recent history.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TransitionRecord {
    /// How long ago it happened.
    pub ago: Duration,
    /// What happened.
    pub kind: TransitionKind,
    /// Why.
    pub reason: String,
}

/// One backend's state, as [`PoolStatus`] reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BackendStatus {
    /// Its address.
    pub addr: SocketAddr,
    /// Its configured weight.
    pub weight: u32,
    /// Its weight now in percent of the configured one (slow start).
    pub weight_percent: u32,
    /// Whether requests go to it now.
    pub up: bool,
    /// Its health state.
    pub state: HealthState,
    /// Requests in flight to it, across workers.
    pub in_flight: u32,
    /// Peak-EWMA of its time to response head, decayed to now.
    pub ewma_latency: Duration,
    /// Recent ejections (the multiplier of the next ejection time).
    pub ejections: u32,
    /// Failure runs reported to the pool since it was last restored.
    pub failures: u32,
    /// Requests refused by its circuit breaker.
    pub overflows: u64,
    /// Requests sent to it.
    pub requests: u64,
    /// Recent transitions, oldest first.
    pub history: Vec<TransitionRecord>,
}

/// Owns the backends and their health; publishes snapshots.
pub struct BackendPool {
    addrs: Vec<SocketAddr>,
    weights: Vec<u32>,
    failures: Vec<u32>,
    table: HealthTable,
    load: Arc<Load>,
    sticky: Option<Arc<StickyCodec>>,
    /// Kept so that sticky cookies stay valid when membership changes.
    sticky_secret: Vec<u8>,
    subscribers: Vec<Recipient<SnapshotPublished>>,
    version: u64,
    current: Arc<PoolSnapshot>,
    panic: bool,
    settings: UpstreamSettings,
    explainer: Box<dyn Strategy>,
    checkers: Vec<Addr<HealthChecker>>,
    /// Restart policy of the health checkers (set by `Proxy::start`); without
    /// it they run under actix's plain Supervisor.
    checker_supervision: Option<CheckerSupervision>,
    restore_timer: Option<SpawnHandle>,
    ramp_timer: Option<SpawnHandle>,
}

impl std::fmt::Debug for BackendPool {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BackendPool")
            .field("addrs", &self.addrs)
            .field("version", &self.version)
            .finish_non_exhaustive()
    }
}

impl BackendPool {
    /// A pool with every configured backend up.
    pub fn new(settings: &UpstreamSettings) -> Self {
        let addrs: Vec<SocketAddr> = settings.backends.iter().map(|b| b.address).collect();
        let policy = health::Policy {
            rise: settings.health.rise,
            fall: settings.health.fall,
            base_ejection: settings.down_backoff,
            max_ejection: settings.outlier.max_ejection.max(settings.down_backoff),
            max_ejected_percent: settings.outlier.max_ejected_percent,
            panic_threshold: settings.panic_threshold,
            slow_start: settings.slow_start,
        };
        let sticky_secret = if settings.sticky.secret.is_empty() {
            StickyCodec::random_secret()
        } else {
            settings.sticky.secret.as_bytes().to_vec()
        };
        let sticky =
            (settings.strategy == StrategyKind::Sticky).then(|| Arc::new(StickyCodec::new(&sticky_secret, &addrs)));
        let mut pool = Self {
            weights: settings.backends.iter().map(|b| b.weight).collect(),
            failures: vec![0; addrs.len()],
            table: HealthTable::new(addrs.len(), policy),
            load: Load::new(addrs.len(), Instant::now()),
            sticky,
            sticky_secret,
            subscribers: Vec::new(),
            version: 0,
            current: Arc::default(),
            panic: false,
            explainer: balance::strategy(settings, &SharedCursor::default(), 0),
            settings: settings.clone(),
            checkers: Vec::new(),
            checker_supervision: None,
            restore_timer: None,
            ramp_timer: None,
            addrs,
        };
        pool.current = Arc::new(pool.build_snapshot(Instant::now()));
        pool.explainer.reset(&pool.current);
        pool
    }

    /// The snapshot every balancer starts from.
    pub fn snapshot(&self) -> Arc<PoolSnapshot> {
        self.current.clone()
    }

    fn build_snapshot(&mut self, now: Instant) -> PoolSnapshot {
        self.version += 1;
        let elig = self.table.eligibility();
        let weights = self.table.weights(&self.weights, now);
        let views = self
            .addrs
            .iter()
            .zip(weights)
            .zip(&elig.eligible)
            .map(|((&addr, weight), &eligible)| BackendView { addr, weight, eligible })
            .collect();
        if elig.panic != self.panic {
            self.panic = elig.panic;
            if elig.panic {
                warn!(
                    "panic mode on: too few healthy backends, balancing across all healthy={} backends={} threshold={}",
                    elig.healthy, elig.total, self.settings.panic_threshold
                );
            } else {
                info!("panic mode off healthy={} backends={}", elig.healthy, elig.total);
            }
        }
        PoolSnapshot::with_load(views, self.version, self.load.clone())
            .in_panic(elig.panic)
            .with_sticky(self.sticky.clone())
    }

    fn publish(&mut self, ctx: &mut Context<Self>) {
        let now = Instant::now();
        self.current = Arc::new(self.build_snapshot(now));
        self.explainer.reset(&self.current);
        if self.current.eligible().is_empty() {
            error!("all backends down backends={}", self.addrs.len());
        }
        let msg = SnapshotPublished(self.current.clone());
        self.subscribers.retain(|s| s.try_send(msg.clone()).is_ok() || s.connected());
        self.arm_ramp(ctx, now);
    }

    fn log(&self, i: usize, t: &Transition) {
        let addr = self.addrs[i];
        let kind = t.kind.as_str();
        match t.kind {
            TransitionKind::Down | TransitionKind::Ejected | TransitionKind::Drained => {
                warn!("backend {kind} addr={addr} reason=\"{}\"", t.reason)
            }
            _ => info!("backend {kind} addr={addr} reason=\"{}\"", t.reason),
        }
    }

    /// Brings back every backend whose ejection is over; re-arms the timer.
    fn restore_due(&mut self, ctx: &mut Context<Self>) {
        let restored = self.table.restore_due(Instant::now());
        for (i, t) in &restored {
            self.log(*i, t);
            self.load.clear_failures(BackendId(*i));
            if t.kind == TransitionKind::Restored {
                self.failures[*i] = 0;
            }
        }
        if !restored.is_empty() {
            self.publish(ctx);
        }
        self.arm_restore(ctx);
    }

    fn arm_restore(&mut self, ctx: &mut Context<Self>) {
        if let Some(old) = self.restore_timer.take() {
            ctx.cancel_future(old);
        }
        if let Some(next) = self.table.next_restore() {
            let wait = next.saturating_duration_since(Instant::now());
            self.restore_timer = Some(ctx.run_later(wait, |pool, ctx| pool.restore_due(ctx)));
        }
    }

    /// While a slow start ramps, republishes weights every step.
    fn arm_ramp(&mut self, ctx: &mut Context<Self>, now: Instant) {
        if self.ramp_timer.is_some() || !self.table.ramping(now) {
            return;
        }
        let tick = (self.settings.slow_start / RAMP_STEPS).max(MIN_RAMP_TICK);
        self.ramp_timer = Some(ctx.run_later(tick, |pool, ctx| {
            pool.ramp_timer = None;
            pool.publish(ctx);
        }));
    }

    fn start_checkers(&mut self, ctx: &mut Context<Self>) {
        if !self.settings.health.enabled || !self.checkers.is_empty() {
            return;
        }
        let recipient = ctx.address().recipient::<ProbeCompleted>();
        for (i, &addr) in self.addrs.iter().enumerate() {
            let checker = HealthChecker::new(BackendId(i), addr, &self.settings.health, recipient.clone());
            let started = match &self.checker_supervision {
                Some(make_spec) => supervisor::start_local(make_spec(), checker),
                None => Supervisor::start(move |_| checker),
            };
            self.checkers.push(started);
        }
        info!(
            "health checks started backends={} interval_ms={} path={}",
            self.addrs.len(),
            self.settings.health.interval.as_millis(),
            self.settings.health.path
        );
    }

    fn index_of(&self, addr: SocketAddr) -> Option<usize> {
        self.addrs.iter().position(|&a| a == addr)
    }
}

impl Actor for BackendPool {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Context<Self>) {
        ctx.set_mailbox_capacity(1024);
        self.restore_timer = None;
        self.ramp_timer = None;
        self.arm_restore(ctx);
        self.arm_ramp(ctx, Instant::now());
        self.start_checkers(ctx);
    }
}

impl Supervised for BackendPool {
    fn restarting(&mut self, _: &mut Context<Self>) {
        warn!("backend pool restarting");
    }
}

impl Handler<Subscribe> for BackendPool {
    type Result = ();

    fn handle(&mut self, msg: Subscribe, _: &mut Context<Self>) {
        let _ = msg.0.try_send(SnapshotPublished(self.current.clone()));
        self.subscribers.push(msg.0);
    }
}

impl Handler<BackendFailed> for BackendPool {
    type Result = ();

    fn handle(&mut self, msg: BackendFailed, ctx: &mut Context<Self>) {
        let i = msg.id.0;
        if self.addrs.get(i) != Some(&msg.addr) {
            return;
        }
        self.failures[i] = self.failures[i].saturating_add(1);
        match self.table.failed(i, msg.kind, msg.consecutive, Instant::now()) {
            Ok(t) => {
                self.log(i, &t);
                self.load.clear_failures(msg.id);
                self.publish(ctx);
                self.arm_restore(ctx);
            }
            Err(why) => debug!(
                "backend not ejected addr={} kind={} consecutive={} last={} why=\"{why}\"",
                msg.addr,
                msg.kind.as_str(),
                msg.consecutive,
                msg.reason
            ),
        }
    }
}

impl Handler<ProbeCompleted> for BackendPool {
    type Result = ();

    fn handle(&mut self, msg: ProbeCompleted, ctx: &mut Context<Self>) {
        let i = msg.id.0;
        if i >= self.addrs.len() {
            return;
        }
        debug!("probe completed addr={} ok={} detail={}", self.addrs[i], msg.ok, msg.detail);
        let transitions = self.table.probe(i, msg.ok, &msg.detail, Instant::now());
        for t in &transitions {
            self.log(i, t);
        }
        if !transitions.is_empty() {
            self.publish(ctx);
        }
    }
}

impl Handler<DrainBackend> for BackendPool {
    type Result = Result<(), PoolError>;

    fn handle(&mut self, msg: DrainBackend, ctx: &mut Context<Self>) -> Self::Result {
        let i = self.index_of(msg.addr).ok_or(PoolError::UnknownBackend(msg.addr))?;
        let reason = if msg.drain { "drain requested" } else { "undrain requested" };
        let transitions = self.table.set_drained(i, msg.drain, reason, Instant::now());
        for t in &transitions {
            self.log(i, t);
        }
        if !transitions.is_empty() {
            self.publish(ctx);
        }
        Ok(())
    }
}

impl Handler<PoolStatus> for BackendPool {
    type Result = Vec<BackendStatus>;

    fn handle(&mut self, _: PoolStatus, _: &mut Context<Self>) -> Self::Result {
        let now = Instant::now();
        let policy = self.table.policy().clone();
        (0..self.addrs.len())
            .filter_map(|i| {
                let h = self.table.backend(i)?;
                let id = BackendId(i);
                let stats = self.load.stats(id);
                let full = self.weights[i].saturating_mul(health::WEIGHT_SCALE).max(1);
                Some(BackendStatus {
                    addr: self.addrs[i],
                    weight: self.weights[i],
                    weight_percent: h.weight(self.weights[i], now, &policy) * 100 / full,
                    up: self.current.is_eligible(id),
                    state: h.state(now, &policy),
                    in_flight: stats.in_flight(),
                    ewma_latency: self.load.latency(id, now, self.settings.ewma_decay),
                    ejections: h.ejections(),
                    failures: self.failures[i],
                    overflows: stats.overflows(),
                    requests: stats.requests(),
                    history: h
                        .history()
                        .map(|t| TransitionRecord {
                            ago: now.saturating_duration_since(t.at),
                            kind: t.kind,
                            reason: t.reason.clone(),
                        })
                        .collect(),
                })
            })
            .collect()
    }
}

impl Handler<WhyBackend> for BackendPool {
    type Result = MessageResult<WhyBackend>;

    fn handle(&mut self, msg: WhyBackend, _: &mut Context<Self>) -> Self::Result {
        let snap = self.current.clone();
        let mut req = PickRequest::at(Instant::now());
        req.key = Some(key::value_key(&self.settings.hash_key, &msg.key));
        if let Some(codec) = snap.sticky() {
            req.sticky = codec.decode(msg.key.trim().as_bytes());
        }
        let chosen = self.explainer.choose(&snap, &req, &[]);
        let mut reason = self.explainer.explain(&snap, &req);
        if snap.panic {
            reason.push_str("; panic mode: unhealthy backends are eligible too");
        }
        MessageResult(Why {
            backend: chosen.and_then(|id| snap.backend(id)).map(|b| b.addr),
            strategy: self.explainer.name(),
            panic: snap.panic,
            eligible: snap.eligible().len(),
            reason,
        })
    }
}

/// Builds the supervision spec of each health checker.
pub(crate) type CheckerSupervision = Box<dyn Fn() -> SupervisorSpec + Send>;

// Live membership changes, used by `pool_control.rs` (and so by reloads).
impl BackendPool {
    /// Runs the health checkers under the proxy's restart policy (panics
    /// contained, restarts budgeted, exhaustion escalated as `Fatal`).
    pub(crate) fn supervise_checkers(&mut self, make_spec: CheckerSupervision) {
        self.checker_supervision = Some(make_spec);
    }

    /// The backends' addresses and weights.
    pub(crate) fn members(&self) -> Vec<(SocketAddr, u32)> {
        self.addrs.iter().copied().zip(self.weights.iter().copied()).collect()
    }

    /// Changes a backend's weight; `false` if it is not in the pool.
    pub(crate) fn set_weight(&mut self, addr: SocketAddr, weight: u32, ctx: &mut Context<Self>) -> bool {
        let Some(i) = self.index_of(addr) else { return false };
        if self.weights[i] != weight {
            self.weights[i] = weight;
            if let Some(b) = self.settings.backends.get_mut(i) {
                b.weight = weight;
            }
            self.publish(ctx);
        }
        true
    }

    /// Adds a backend (up); `false` if it is already in the pool.
    pub(crate) fn add_backend(&mut self, addr: SocketAddr, weight: u32, ctx: &mut Context<Self>) -> bool {
        if self.index_of(addr).is_some() {
            return false;
        }
        let mut backends = self.settings.backends.clone();
        backends.push(BackendSettings { address: addr, weight });
        self.rebuild(backends, ctx);
        true
    }

    /// Removes a backend; sessions already talking to it finish.
    pub(crate) fn remove_backend(&mut self, addr: SocketAddr, ctx: &mut Context<Self>) -> bool {
        if self.index_of(addr).is_none() {
            return false;
        }
        let backends = self.settings.backends.iter().filter(|b| b.address != addr).cloned().collect();
        self.rebuild(backends, ctx);
        true
    }

    /// Membership changed: the index-based state (health table, load
    /// counters, checkers, Maglev table) is rebuilt for the new list and a
    /// snapshot published. Backends that stay start again as up; passive and
    /// active checks find a failing one again within their thresholds.
    /// Sessions in flight keep the load counters of the snapshot they picked
    /// from, so their accounting stays consistent.
    fn rebuild(&mut self, backends: Vec<BackendSettings>, ctx: &mut Context<Self>) {
        let mut settings = self.settings.clone();
        settings.backends = backends;
        let mut fresh = BackendPool::new(&settings);
        if fresh.sticky.is_some() {
            // Same secret: cookies of backends that stay keep working.
            fresh.sticky = Some(Arc::new(StickyCodec::new(&self.sticky_secret, &fresh.addrs)));
            fresh.sticky_secret = std::mem::take(&mut self.sticky_secret);
            fresh.current = Arc::new(fresh.build_snapshot(Instant::now()));
        }
        fresh.subscribers = std::mem::take(&mut self.subscribers);
        fresh.checker_supervision = self.checker_supervision.take();
        fresh.version = self.version;
        if let Some(t) = self.restore_timer.take() {
            ctx.cancel_future(t);
        }
        if let Some(t) = self.ramp_timer.take() {
            ctx.cancel_future(t);
        }
        for checker in self.checkers.drain(..) {
            checker.do_send(Retire);
        }
        *self = fresh;
        self.publish(ctx);
        self.arm_restore(ctx);
        self.start_checkers(ctx);
    }
}

/// Test-only: makes the first health checker panic inside its handler.
#[cfg(any(test, feature = "fault-injection"))]
#[derive(Message, Debug, Clone, Copy)]
#[rtype(result = "bool")]
pub struct InjectCheckerPanic;

#[cfg(any(test, feature = "fault-injection"))]
impl Handler<InjectCheckerPanic> for BackendPool {
    type Result = bool;

    fn handle(&mut self, _: InjectCheckerPanic, _: &mut Context<Self>) -> bool {
        let Some(checker) = self.checkers.first() else { return false };
        checker.do_send(supervisor::InjectPanic);
        true
    }
}
