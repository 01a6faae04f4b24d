//! Idle keep-alive connections to backends, pooled per worker thread.
//!
//! Each worker owns one [`ConnPool`]: a connection is only ever used by the
//! thread that opened it, so the pool needs no lock. Idle connections are
//! capped per backend and expire after an idle timeout that is shorter than
//! typical backend keep-alive timeouts, so a reused connection is rarely one
//! the backend has just closed (and when it is, the session retries once on
//! a fresh connection).

use std::collections::HashMap;
use std::hash::{BuildHasherDefault, Hasher};
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use crate::runtime::TcpStream;

/// An idle upstream connection and when it went idle.
#[derive(Debug)]
struct Idle {
    stream: TcpStream,
    since: Instant,
}

/// Hashes backend addresses for the pool's map with FxHash (rustc's hash):
/// a few instructions where std's SipHash takes about a hundred, on a
/// lookup made twice per request. The keys are the operator's backend
/// addresses, never client input, so flooding resistance is not needed.
#[derive(Debug, Default, Clone, Copy)]
struct AddrHasher(u64);

impl AddrHasher {
    fn add(&mut self, word: u64) {
        self.0 = (self.0.rotate_left(5) ^ word).wrapping_mul(0x51_7c_c1_b7_27_22_0a_95);
    }
}

impl Hasher for AddrHasher {
    fn write(&mut self, bytes: &[u8]) {
        for chunk in bytes.chunks(8) {
            let mut word = [0u8; 8];
            word[..chunk.len()].copy_from_slice(chunk);
            self.add(u64::from_le_bytes(word));
        }
    }
    fn write_u8(&mut self, n: u8) {
        self.add(u64::from(n));
    }
    fn write_u16(&mut self, n: u16) {
        self.add(u64::from(n));
    }
    fn write_u32(&mut self, n: u32) {
        self.add(u64::from(n));
    }
    fn write_u64(&mut self, n: u64) {
        self.add(n);
    }
    fn write_usize(&mut self, n: usize) {
        self.add(n as u64);
    }
    fn finish(&self) -> u64 {
        self.0
    }
}

/// Idle upstream connections of one worker, by backend address.
#[derive(Debug)]
pub struct ConnPool {
    idle: HashMap<SocketAddr, Vec<Idle>, BuildHasherDefault<AddrHasher>>,
    max_idle: usize,
    idle_timeout: Duration,
}

impl ConnPool {
    /// An empty pool keeping at most `max_idle` connections per backend.
    pub fn new(max_idle: usize, idle_timeout: Duration) -> Self {
        Self { idle: HashMap::default(), max_idle, idle_timeout }
    }

    /// Takes the most recently used idle connection to `addr` that has not
    /// expired (the newest is the least likely to have been closed) and
    /// that the backend has not closed ([`TcpStream::is_stale`]: a request
    /// body streamed onto a closed connection could not be sent again).
    pub fn take(&mut self, addr: SocketAddr, now: Instant) -> Option<TcpStream> {
        let list = self.idle.get_mut(&addr)?;
        while let Some(idle) = list.pop() {
            if now.duration_since(idle.since) < self.idle_timeout && !idle.stream.is_stale() {
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
