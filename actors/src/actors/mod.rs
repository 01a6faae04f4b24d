//! The actors: one file each.

pub mod backend_pool;
pub mod balancer;
pub mod health_checker;
pub mod listener;
pub mod tls_session;
