#![allow(dead_code)]
//! End-to-end test helpers: in-process HTTP/1.1 backends, TLS and plain
//! HTTP/1.1 clients, test certificates and a memory probe.
//!
//! Every socket operation is bounded by a timeout, so a hung proxy fails the
//! test instead of hanging CI.

pub mod backend;
pub mod certs;
pub mod client;
pub mod embedded;
pub mod proxy;

#[allow(unused_imports)]
pub use backend::*;
#[allow(unused_imports)]
pub use certs::*;
#[allow(unused_imports)]
pub use client::*;
#[allow(unused_imports)]
pub use proxy::*;

use std::time::{Duration, Instant};

/// Resident set size of the current process in KiB (VmRSS from /proc/self/status).
pub fn rss_kib() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").expect("read /proc/self/status");
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .expect("VmRSS in /proc/self/status")
}

/// Polls `f` every 10 ms until it returns true (→ `true`) or `timeout` elapses (→ `false`).
pub fn wait_until(timeout: Duration, mut f: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + timeout;
    loop {
        if f() {
            return true;
        }
        if Instant::now() >= deadline {
            return false;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
}
