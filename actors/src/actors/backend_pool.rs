//! The BackendPool actor: the single owner of the backend list and its state.
//!
//! - **Owns**: the backends (address, weight), whether each is up, and the
//!   latest [`PoolSnapshot`].
//! - **Receives**: [`Subscribe`] from each worker's Balancer, [`BackendFailed`]
//!   from sessions (passive health: a refused or reset connection), and the
//!   [`PoolStatus`] query.
//! - **Sends**: [`SnapshotPublished`] to every subscribed Balancer whenever
//!   eligibility changes, so a pick never waits for this actor.
//! - **Restart policy**: permanent (supervised). A restart keeps the backend
//!   list and subscribers and re-arms the timers that bring backends back.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use actix::prelude::*;
use log::{error, info, warn};

use crate::balance::{BackendView, PoolSnapshot};
use crate::settings::UpstreamSettings;

/// A Balancer wants every new snapshot (it gets the current one at once).
#[derive(Message)]
#[rtype(result = "()")]
pub struct Subscribe(pub Recipient<SnapshotPublished>);

/// A new picture of the pool.
#[derive(Message, Clone, Debug)]
#[rtype(result = "()")]
pub struct SnapshotPublished(pub Arc<PoolSnapshot>);

/// A session could not use a backend (connect refused, reset, timed out).
#[derive(Message, Debug, Clone)]
#[rtype(result = "()")]
pub struct BackendFailed {
    /// The backend.
    pub addr: SocketAddr,
    /// What happened, for the log.
    pub reason: &'static str,
}

/// Query: the state of every backend.
#[derive(Message, Debug)]
#[rtype(result = "Vec<BackendStatus>")]
pub struct PoolStatus;

/// One backend's state, as [`PoolStatus`] reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BackendStatus {
    /// Its address.
    pub addr: SocketAddr,
    /// Its weight.
    pub weight: u32,
    /// Whether requests go to it.
    pub up: bool,
    /// Passive failures seen since it was last marked up.
    pub failures: u32,
}

#[derive(Debug)]
struct Backend {
    addr: SocketAddr,
    weight: u32,
    down_until: Option<Instant>,
    failures: u32,
}

/// Owns the backends and their health; publishes snapshots.
#[derive(Debug)]
pub struct BackendPool {
    backends: Vec<Backend>,
    subscribers: Vec<Recipient<SnapshotPublished>>,
    down_backoff: Duration,
    version: u64,
    current: Arc<PoolSnapshot>,
}

impl BackendPool {
    /// A pool with every configured backend up.
    pub fn new(settings: &UpstreamSettings) -> Self {
        let backends = settings
            .backends
            .iter()
            .map(|b| Backend { addr: b.address, weight: b.weight, down_until: None, failures: 0 })
            .collect();
        let mut pool = Self {
            backends,
            subscribers: Vec::new(),
            down_backoff: settings.down_backoff,
            version: 0,
            current: Arc::default(),
        };
        pool.current = Arc::new(pool.build_snapshot());
        pool
    }

    /// The snapshot every balancer starts from.
    pub fn snapshot(&self) -> Arc<PoolSnapshot> {
        self.current.clone()
    }

    fn build_snapshot(&mut self) -> PoolSnapshot {
        self.version += 1;
        let views = self
            .backends
            .iter()
            .map(|b| BackendView { addr: b.addr, weight: b.weight, eligible: b.down_until.is_none() })
            .collect();
        PoolSnapshot::new(views, self.version)
    }

    fn publish(&mut self) {
        self.current = Arc::new(self.build_snapshot());
        if self.current.eligible().is_empty() {
            error!("all backends down backends={}", self.backends.len());
        }
        let msg = SnapshotPublished(self.current.clone());
        self.subscribers.retain(|s| s.try_send(msg.clone()).is_ok() || s.connected());
    }

    /// Brings back every backend whose backoff has passed; re-arms the timer
    /// for the next one.
    fn restore_due(&mut self, ctx: &mut Context<Self>) {
        let now = Instant::now();
        let mut changed = false;
        for b in &mut self.backends {
            if b.down_until.is_some_and(|t| t <= now) {
                b.down_until = None;
                b.failures = 0;
                info!("backend restored addr={} after=backoff", b.addr);
                changed = true;
            }
        }
        if changed {
            self.publish();
        }
        self.arm_restore(ctx);
    }

    fn arm_restore(&self, ctx: &mut Context<Self>) {
        if let Some(next) = self.backends.iter().filter_map(|b| b.down_until).min() {
            let wait = next.saturating_duration_since(Instant::now());
            ctx.run_later(wait, |pool, ctx| pool.restore_due(ctx));
        }
    }
}

impl Actor for BackendPool {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Context<Self>) {
        ctx.set_mailbox_capacity(1024);
        self.arm_restore(ctx);
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
        let Some(b) = self.backends.iter_mut().find(|b| b.addr == msg.addr) else {
            return;
        };
        b.failures += 1;
        if b.down_until.is_some() {
            return;
        }
        b.down_until = Some(Instant::now() + self.down_backoff);
        warn!("backend down addr={} reason={} backoff_ms={}", b.addr, msg.reason, self.down_backoff.as_millis());
        self.publish();
        self.arm_restore(ctx);
    }
}

impl Handler<PoolStatus> for BackendPool {
    type Result = Vec<BackendStatus>;

    fn handle(&mut self, _: PoolStatus, _: &mut Context<Self>) -> Self::Result {
        self.backends
            .iter()
            .map(|b| BackendStatus { addr: b.addr, weight: b.weight, up: b.down_until.is_none(), failures: b.failures })
            .collect()
    }
}

// Live control, used by `pool_control.rs` (add, remove, drain, re-weight).
// Draining is expressed as "down until far in the future" so that the
// eligibility rule stays in one place.
/// How long a drained backend stays out of rotation (until undrained).
const DRAINED_FOR: Duration = Duration::from_secs(365 * 24 * 3600);

impl BackendPool {
    /// Adds a backend (up); `false` if the address is already in the pool.
    pub(crate) fn add_backend(&mut self, addr: SocketAddr, weight: u32) -> bool {
        if self.backends.iter().any(|b| b.addr == addr) {
            return false;
        }
        self.backends.push(Backend { addr, weight, down_until: None, failures: 0 });
        self.publish();
        true
    }

    /// Removes a backend; sessions already talking to it finish.
    pub(crate) fn remove_backend(&mut self, addr: SocketAddr) -> bool {
        let before = self.backends.len();
        self.backends.retain(|b| b.addr != addr);
        let removed = self.backends.len() != before;
        if removed {
            self.publish();
        }
        removed
    }

    /// Changes a backend's weight.
    pub(crate) fn set_weight(&mut self, addr: SocketAddr, weight: u32) -> bool {
        let Some(b) = self.backends.iter_mut().find(|b| b.addr == addr) else { return false };
        if b.weight != weight {
            b.weight = weight;
            self.publish();
        }
        true
    }

    /// Takes a backend out of rotation (`drained`) or brings it back.
    pub(crate) fn set_drained(&mut self, addr: SocketAddr, drained: bool) -> bool {
        let Some(b) = self.backends.iter_mut().find(|b| b.addr == addr) else { return false };
        b.down_until = drained.then(|| Instant::now() + DRAINED_FOR);
        b.failures = 0;
        self.publish();
        true
    }

    /// The backends' addresses and weights.
    pub(crate) fn members(&self) -> Vec<(SocketAddr, u32)> {
        self.backends.iter().map(|b| (b.addr, b.weight)).collect()
    }
}
