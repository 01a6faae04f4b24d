//! Idle keep-alive connections to backends, pooled per worker thread.
//!
//! Each worker owns one [`ConnPool`]: a connection is only ever used by the
//! thread that opened it, so the pool needs no lock. Idle connections are
//! capped per backend and expire after an idle timeout that is shorter than
//! typical backend keep-alive timeouts, so a reused connection is rarely one
//! the backend has just closed (and when it is, the session retries once on
//! a fresh connection).

use std::collections::HashMap;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use crate::runtime::TcpStream;

/// An idle upstream connection and when it went idle.
#[derive(Debug)]
struct Idle {
    stream: TcpStream,
    since: Instant,
}

/// Idle upstream connections of one worker, by backend address.
#[derive(Debug)]
pub struct ConnPool {
    idle: HashMap<SocketAddr, Vec<Idle>>,
    max_idle: usize,
    idle_timeout: Duration,
}

impl ConnPool {
    /// An empty pool keeping at most `max_idle` connections per backend.
    pub fn new(max_idle: usize, idle_timeout: Duration) -> Self {
        Self { idle: HashMap::new(), max_idle, idle_timeout }
    }

    /// Takes the most recently used idle connection to `addr` that has not
    /// expired (the newest is the least likely to have been closed).
    pub fn take(&mut self, addr: SocketAddr, now: Instant) -> Option<TcpStream> {
        let list = self.idle.get_mut(&addr)?;
        while let Some(idle) = list.pop() {
            if now.duration_since(idle.since) < self.idle_timeout {
                return Some(idle.stream);
            }
        }
        None
    }

    /// Returns a connection whose last exchange completed cleanly.
    pub fn put(&mut self, addr: SocketAddr, stream: TcpStream, now: Instant) {
        let list = self.idle.entry(addr).or_default();
        if list.len() >= self.max_idle {
            // Drop the oldest: it is the most likely to be closed soon.
            list.remove(0);
        }
        list.push(Idle { stream, since: now });
    }

    /// Closes connections idle for longer than the timeout.
    pub fn expire(&mut self, now: Instant) -> usize {
        let mut closed = 0;
        for list in self.idle.values_mut() {
            let before = list.len();
            list.retain(|i| now.duration_since(i.since) < self.idle_timeout);
            closed += before - list.len();
        }
        closed
    }

    /// Closes every idle connection to `addr` (the backend failed or left).
    pub fn forget(&mut self, addr: SocketAddr) {
        self.idle.remove(&addr);
    }

    /// Number of idle connections to `addr`.
    pub fn idle_count(&self, addr: SocketAddr) -> usize {
        self.idle.get(&addr).map_or(0, Vec::len)
    }
}
