//! The actors: one file each.

pub mod admin;
pub mod backend_pool;
pub mod balancer;
pub mod control;
pub mod health_checker;
pub mod listener;
pub mod pool_control;
pub mod redirect;
pub mod supervisor;
pub mod tls_session;
