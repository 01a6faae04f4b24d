//! Live changes to the BackendPool: the messages an embedder (or a reload)
//! sends to add, remove and re-weight backends (draining is the pool's own
//! [`DrainBackend`](crate::actors::backend_pool::DrainBackend)).
//!
//! Each change publishes a new snapshot to every worker's Balancer; sessions
//! already talking to a removed or drained backend finish their requests.

use std::net::SocketAddr;

use actix::prelude::*;
use log::info;

use crate::actors::backend_pool::BackendPool;

/// Why a pool change was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum PoolControlError {
    /// The backend is already in the pool.
    #[error("backend {0} is already in the pool")]
    AlreadyPresent(SocketAddr),
    /// No backend with that address.
    #[error("backend {0} is not in the pool")]
    NotFound(SocketAddr),
    /// Weight outside 1..=1000.
    #[error("weight {0} is outside 1..=1000")]
    BadWeight(u32),
    /// Removing it would leave the pool empty.
    #[error("cannot remove the last backend {0}")]
    LastBackend(SocketAddr),
}

fn check_weight(weight: u32) -> Result<(), PoolControlError> {
    if (1..=1000).contains(&weight) { Ok(()) } else { Err(PoolControlError::BadWeight(weight)) }
}

/// Add a backend; it takes traffic at once.
#[derive(Message, Debug, Clone)]
#[rtype(result = "Result<(), PoolControlError>")]
pub struct AddBackend {
    /// Its plain-HTTP address.
    pub address: SocketAddr,
    /// Its weight (1 to 1000).
    pub weight: u32,
}

/// Remove a backend; requests in flight on it finish.
#[derive(Message, Debug, Clone)]
#[rtype(result = "Result<(), PoolControlError>")]
pub struct RemoveBackend {
    /// Its address.
    pub address: SocketAddr,
}

/// Change a backend's weight.
#[derive(Message, Debug, Clone)]
#[rtype(result = "Result<(), PoolControlError>")]
pub struct SetWeight {
    /// Its address.
    pub address: SocketAddr,
    /// The new weight (1 to 1000).
    pub weight: u32,
}

/// Query: addresses and weights of the backends in the pool.
#[derive(Message, Debug, Clone)]
#[rtype(result = "Vec<(SocketAddr, u32)>")]
pub struct PoolMembers;

impl Handler<AddBackend> for BackendPool {
    type Result = Result<(), PoolControlError>;
    fn handle(&mut self, msg: AddBackend, ctx: &mut Context<Self>) -> Self::Result {
        check_weight(msg.weight)?;
        if !self.add_backend(msg.address, msg.weight, ctx) {
            return Err(PoolControlError::AlreadyPresent(msg.address));
        }
        info!("backend added addr={} weight={}", msg.address, msg.weight);
        Ok(())
    }
}

impl Handler<RemoveBackend> for BackendPool {
    type Result = Result<(), PoolControlError>;
    fn handle(&mut self, msg: RemoveBackend, ctx: &mut Context<Self>) -> Self::Result {
        let members = self.members();
        if !members.iter().any(|(a, _)| *a == msg.address) {
            return Err(PoolControlError::NotFound(msg.address));
        }
        if members.len() == 1 {
            return Err(PoolControlError::LastBackend(msg.address));
        }
        self.remove_backend(msg.address, ctx);
        info!("backend removed addr={}", msg.address);
        Ok(())
    }
}

impl Handler<SetWeight> for BackendPool {
    type Result = Result<(), PoolControlError>;
    fn handle(&mut self, msg: SetWeight, ctx: &mut Context<Self>) -> Self::Result {
        check_weight(msg.weight)?;
        if !self.set_weight(msg.address, msg.weight, ctx) {
            return Err(PoolControlError::NotFound(msg.address));
        }
        info!("backend weight set addr={} weight={}", msg.address, msg.weight);
        Ok(())
    }
}

impl Handler<PoolMembers> for BackendPool {
    type Result = Vec<(SocketAddr, u32)>;
    fn handle(&mut self, _: PoolMembers, _: &mut Context<Self>) -> Self::Result {
        self.members()
    }
}
