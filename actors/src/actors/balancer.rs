//! The Balancer actor: one per worker thread, the fast reader of pool health.
//!
//! - **Owns**: this worker's copy of the latest [`PoolSnapshot`] and the
//!   balancing [`Strategy`] state, shared with the worker's sessions through
//!   a [`BalancerHandle`] (same thread, no lock, no message per request).
//! - **Receives**: [`SnapshotPublished`] from the BackendPool.
//! - **Sends**: [`BackendFailed`] to the BackendPool when a session reports a
//!   backend it could not use.
//! - **Restart policy**: lives as long as its worker; a restart would keep
//!   the handle, whose next snapshot comes from the pool.

use std::cell::RefCell;
use std::net::SocketAddr;
use std::rc::Rc;
use std::sync::Arc;

use actix::prelude::*;
use log::debug;

use crate::actors::backend_pool::{BackendFailed, SnapshotPublished};
use crate::balance::{BackendId, PoolSnapshot, Strategy};

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

struct State {
    snapshot: Arc<PoolSnapshot>,
    strategy: Box<dyn Strategy>,
    pool: Recipient<BackendFailed>,
}

/// The sessions' side of this worker's Balancer: a synchronous pick.
#[derive(Clone)]
pub struct BalancerHandle(Rc<RefCell<State>>);

impl BalancerHandle {
    /// A handle over an initial snapshot; `pool` receives failure reports.
    pub fn new(snapshot: Arc<PoolSnapshot>, mut strategy: Box<dyn Strategy>, pool: Recipient<BackendFailed>) -> Self {
        strategy.reset(&snapshot);
        Self(Rc::new(RefCell::new(State { snapshot, strategy, pool })))
    }

    /// Chooses a backend not in `exclude`.
    pub fn pick(&self, exclude: &[BackendId]) -> Option<(BackendId, SocketAddr)> {
        let mut guard = self.0.borrow_mut();
        let state = &mut *guard;
        let id = state.strategy.choose(&state.snapshot, exclude)?;
        let addr = state.snapshot.backend(id)?.addr;
        Some((id, addr))
    }

    /// Number of backends eligible now.
    pub fn eligible(&self) -> usize {
        self.0.borrow().snapshot.eligible().len()
    }

    /// Reports a backend a session could not use.
    pub fn report_failure(&self, addr: SocketAddr, reason: &'static str) {
        self.0.borrow().pool.do_send(BackendFailed { addr, reason });
    }
}
