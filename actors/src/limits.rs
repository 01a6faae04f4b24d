//! Per-client admission policy: CIDR allow/deny lists, concurrent
//! connections per client IP, and a request-rate token bucket per client IP.
//!
//! Policy only: no actix, no sockets, no clock (time is a parameter). The
//! [`ClientLimits`] state is shared by every worker of one proxy (an `Arc`
//! with short mutex sections at connection open/close and, only when a rate
//! is configured, once per request), so a client cannot multiply its share
//! by landing on several workers. Memory stays bounded: the rate table holds
//! at most [`MAX_TRACKED_CLIENTS`] addresses and drops full buckets first.

use std::collections::HashMap;
use std::net::IpAddr;
use std::str::FromStr;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

use crate::settings::ListenerSettings;

/// Most client addresses the rate limiter tracks at once. When full, buckets
/// that have refilled completely (clients that are within their rate) are
/// forgotten; if none has, new clients are refused until some refill.
pub const MAX_TRACKED_CLIENTS: usize = 100_000;

/// A CIDR block such as `10.0.0.0/8`, `2001:db8::/32` or a single address.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct IpNet {
    addr: IpAddr,
    prefix: u8,
}

/// Why a CIDR block could not be parsed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum IpNetError {
    /// The address part is not an IPv4 or IPv6 address.
    #[error("`{0}` is not an IP address or CIDR block")]
    Address(String),
    /// The prefix length is not a number within the family's width.
    #[error("`{0}` has an invalid prefix length")]
    Prefix(String),
}

impl FromStr for IpNet {
    type Err = IpNetError;

    fn from_str(s: &str) -> Result<Self, IpNetError> {
        let s = s.trim();
        let (addr, prefix) = match s.split_once('/') {
            Some((a, p)) => (a, Some(p)),
            None => (s, None),
        };
        let parsed: IpAddr = addr.parse().map_err(|_| IpNetError::Address(s.to_owned()))?;
        let width = if parsed.is_ipv4() { 32 } else { 128 };
        let prefix = match prefix {
            None => width,
            Some(p) => p.parse::<u8>().ok().filter(|&p| p <= width).ok_or_else(|| IpNetError::Prefix(s.to_owned()))?,
        };
        // An IPv4-mapped block (`::ffff:10.0.0.0/104`) is kept as IPv4.
        match canonical(parsed) {
            IpAddr::V4(v4) if parsed.is_ipv6() => {
                let prefix = prefix.checked_sub(96).ok_or_else(|| IpNetError::Prefix(s.to_owned()))?;
                Ok(Self { addr: IpAddr::V4(v4), prefix })
            }
            addr => Ok(Self { addr, prefix }),
        }
    }
}

impl IpNet {
    /// Whether `ip` lies inside this block (IPv4-mapped IPv6 addresses are
    /// compared as IPv4).
    pub fn contains(&self, ip: IpAddr) -> bool {
        match (self.addr, canonical(ip)) {
            (IpAddr::V4(net), IpAddr::V4(ip)) => {
                prefix_eq(u128::from(u32::from(net)) << 96, u128::from(u32::from(ip)) << 96, self.prefix)
            }
            (IpAddr::V6(net), IpAddr::V6(ip)) => prefix_eq(u128::from(net), u128::from(ip), self.prefix),
            _ => false,
        }
    }
}

fn prefix_eq(a: u128, b: u128, prefix: u8) -> bool {
    match prefix {
        0 => true,
        p => (a ^ b) >> (128 - u32::from(p).min(128)) == 0,
    }
}

/// `::ffff:a.b.c.d` as `a.b.c.d`; anything else unchanged.
pub fn canonical(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
        v4 => v4,
    }
}

/// Which client addresses a listener accepts.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AccessList {
    allow: Vec<IpNet>,
    deny: Vec<IpNet>,
}

impl AccessList {
    /// A list from parsed blocks. An empty `allow` allows everyone not denied.
    pub fn new(allow: Vec<IpNet>, deny: Vec<IpNet>) -> Self {
        Self { allow, deny }
    }

    /// Whether `ip` may connect: not in any deny block, and in an allow block
    /// when there are any. Deny wins.
    pub fn permits(&self, ip: IpAddr) -> bool {
        !self.deny.iter().any(|n| n.contains(ip))
            && (self.allow.is_empty() || self.allow.iter().any(|n| n.contains(ip)))
    }
}

/// A token bucket: `rate` tokens per second up to `burst`.
#[derive(Debug, Clone, Copy)]
struct Bucket {
    tokens: f64,
    at: Instant,
}

/// Request-rate limiter per client IP (token buckets).
#[derive(Debug)]
pub struct RateLimiter {
    rate: f64,
    burst: f64,
    max_tracked: usize,
    buckets: HashMap<IpAddr, Bucket>,
}

impl RateLimiter {
    /// `rate` requests per second on average, bursts of up to `burst`.
    pub fn new(rate: f64, burst: u32, max_tracked: usize) -> Self {
        Self { rate, burst: f64::from(burst.max(1)), max_tracked, buckets: HashMap::new() }
    }

    /// Takes one token for `ip` at `now`. `Err(wait)` when the bucket is
    /// empty: the time until a token is available again.
    pub fn check(&mut self, ip: IpAddr, now: Instant) -> Result<(), Duration> {
        let ip = canonical(ip);
        if !self.buckets.contains_key(&ip) && self.buckets.len() >= self.max_tracked {
            self.forget_full(now);
            if self.buckets.len() >= self.max_tracked {
                return Err(Duration::from_secs(1));
            }
        }
        let (rate, burst) = (self.rate, self.burst);
        let b = self.buckets.entry(ip).or_insert(Bucket { tokens: burst, at: now });
        let elapsed = now.saturating_duration_since(b.at).as_secs_f64();
        b.tokens = (b.tokens + elapsed * rate).min(burst);
        b.at = now;
        if b.tokens >= 1.0 {
            b.tokens -= 1.0;
            Ok(())
        } else {
            Err(Duration::from_secs_f64((1.0 - b.tokens) / rate))
        }
    }

    /// Drops buckets that would be full by `now` (their clients are idle or
    /// within their rate: forgetting them changes nothing).
    fn forget_full(&mut self, now: Instant) {
        let (rate, burst) = (self.rate, self.burst);
        self.buckets.retain(|_, b| b.tokens + now.saturating_duration_since(b.at).as_secs_f64() * rate < burst);
    }

    /// Addresses currently tracked.
    pub fn tracked(&self) -> usize {
        self.buckets.len()
    }
}

/// Open connections per client IP.
#[derive(Debug, Default)]
pub struct ConnCounts {
    open: HashMap<IpAddr, u32>,
}

impl ConnCounts {
    /// Counts one more connection from `ip` unless it already has `max`.
    pub fn try_open(&mut self, ip: IpAddr, max: u32) -> bool {
        let n = self.open.entry(canonical(ip)).or_insert(0);
        if *n >= max {
            return false;
        }
        *n += 1;
        true
    }

    /// Counts one connection from `ip` as closed.
    pub fn close(&mut self, ip: IpAddr) {
        let ip = canonical(ip);
        if let Some(n) = self.open.get_mut(&ip) {
            *n = n.saturating_sub(1);
            if *n == 0 {
                self.open.remove(&ip);
            }
        }
    }

    /// Open connections from `ip`.
    pub fn open(&self, ip: IpAddr) -> u32 {
        self.open.get(&canonical(ip)).copied().unwrap_or(0)
    }
}

/// The admission state one proxy shares among its workers.
#[derive(Debug)]
pub struct ClientLimits {
    /// Who may connect at all.
    pub access: AccessList,
    /// Concurrent connections per client IP (0: no limit).
    pub max_connections_per_ip: u32,
    conns: Mutex<ConnCounts>,
    rate: Option<Mutex<RateLimiter>>,
}

impl ClientLimits {
    /// Limits from their parts; `rate` is `(requests per second, burst)`,
    /// `None` or a non-positive rate for no rate limit.
    pub fn new(access: AccessList, max_connections_per_ip: u32, rate: Option<(f64, u32)>) -> Self {
        let rate = rate.filter(|(r, _)| *r > 0.0).map(|(r, b)| Mutex::new(RateLimiter::new(r, b, MAX_TRACKED_CLIENTS)));
        Self { access, max_connections_per_ip, conns: Mutex::default(), rate }
    }

    /// The limits a validated listener configuration asks for (blocks that
    /// do not parse are skipped: [`crate::Settings::validate`] rejects them).
    pub fn from_settings(l: &ListenerSettings) -> Self {
        let nets = |v: &[String]| v.iter().filter_map(|s| s.parse().ok()).collect();
        Self::new(
            AccessList::new(nets(&l.allow), nets(&l.deny)),
            l.max_connections_per_ip,
            Some((l.requests_per_second, l.request_burst)),
        )
    }

    /// No limits at all.
    pub fn unlimited() -> Self {
        Self::new(AccessList::default(), 0, None)
    }

    /// Admits a new connection from `ip`, or `None` when the client already
    /// has its share of connections. The permit releases on drop.
    pub fn admit(self: &Arc<Self>, ip: IpAddr) -> Option<ConnPermit> {
        if self.max_connections_per_ip == 0 {
            return Some(ConnPermit { limits: None, ip });
        }
        lock(&self.conns)
            .try_open(ip, self.max_connections_per_ip)
            .then(|| ConnPermit { limits: Some(self.clone()), ip })
    }

    /// Takes one request token for `ip`; `Err(wait)` when over its rate.
    pub fn check_rate(&self, ip: IpAddr, now: Instant) -> Result<(), Duration> {
        match &self.rate {
            Some(r) => lock(r).check(ip, now),
            None => Ok(()),
        }
    }
}

/// One admitted connection; releases its per-IP slot when dropped.
#[derive(Debug)]
pub struct ConnPermit {
    limits: Option<Arc<ClientLimits>>,
    ip: IpAddr,
}

impl Drop for ConnPermit {
    fn drop(&mut self) {
        if let Some(l) = &self.limits {
            lock(&l.conns).close(self.ip);
        }
    }
}

/// The counters stay consistent even if a holder panicked (each update is
/// one map operation), so a poisoned lock is used as is.
fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn cidr_table() {
        const CASES: &[(&str, &str, bool)] = &[
            ("10.0.0.0/8", "10.1.2.3", true),
            ("10.0.0.0/8", "11.0.0.0", false),
            ("192.168.1.0/24", "192.168.1.255", true),
            ("192.168.1.0/24", "192.168.2.0", false),
            ("0.0.0.0/0", "8.8.8.8", true),
            ("0.0.0.0/0", "::1", false),
            ("127.0.0.1", "127.0.0.1", true),
            ("127.0.0.1", "127.0.0.2", false),
            ("127.0.0.1/32", "::ffff:127.0.0.1", true),
            ("::ffff:10.0.0.0/104", "10.9.9.9", true),
            ("2001:db8::/32", "2001:db8:ffff::1", true),
            ("2001:db8::/32", "2001:db9::1", false),
            ("::/0", "::1", true),
            ("::1/128", "::1", true),
            ("10.0.0.1/31", "10.0.0.0", true),
        ];
        for (net, addr, want) in CASES {
            let n: IpNet = net.parse().unwrap_or_else(|e| panic!("{net}: {e}"));
            assert_eq!(n.contains(ip(addr)), *want, "{net} contains {addr}");
        }
    }

    #[test]
    fn cidr_parse_errors() {
        for bad in ["", "10.0.0.0/33", "::/129", "10.0.0/8", "10.0.0.0/", "10.0.0.0/x", "host.example/8"] {
            assert!(bad.parse::<IpNet>().is_err(), "{bad:?} should not parse");
        }
    }

    #[test]
    fn access_list_table() {
        let nets = |v: &[&str]| v.iter().map(|s| s.parse().unwrap()).collect::<Vec<IpNet>>();
        // (allow, deny, address, permitted)
        let cases: &[(&[&str], &[&str], &str, bool)] = &[
            (&[], &[], "1.2.3.4", true),
            (&[], &["1.2.3.0/24"], "1.2.3.4", false),
            (&[], &["1.2.3.0/24"], "1.2.4.4", true),
            (&["10.0.0.0/8"], &[], "10.0.0.1", true),
            (&["10.0.0.0/8"], &[], "1.2.3.4", false),
            (&["10.0.0.0/8"], &["10.0.0.0/24"], "10.0.0.1", false),
            (&["10.0.0.0/8"], &["10.0.0.0/24"], "10.0.1.1", true),
        ];
        for (allow, deny, addr, want) in cases {
            let list = AccessList::new(nets(allow), nets(deny));
            assert_eq!(list.permits(ip(addr)), *want, "allow={allow:?} deny={deny:?} addr={addr}");
        }
    }

    #[test]
    fn token_bucket_refills_at_rate() {
        let t0 = Instant::now();
        let mut r = RateLimiter::new(2.0, 3, 10);
        let a = ip("1.1.1.1");
        // Burst of 3, then refused with the wait until the next token.
        for i in 0..3 {
            assert_eq!(r.check(a, t0), Ok(()), "burst {i}");
        }
        let wait = r.check(a, t0).expect_err("bucket empty");
        assert_eq!(wait, Duration::from_millis(500));
        // Another client is unaffected.
        assert_eq!(r.check(ip("2.2.2.2"), t0), Ok(()));
        // After 500 ms exactly one more token.
        let t1 = t0 + Duration::from_millis(500);
        assert_eq!(r.check(a, t1), Ok(()));
        assert!(r.check(a, t1).is_err());
        // Long idle refills only up to the burst.
        let t2 = t1 + Duration::from_secs(60);
        for _ in 0..3 {
            assert_eq!(r.check(a, t2), Ok(()));
        }
        assert!(r.check(a, t2).is_err());
    }

    #[test]
    fn rate_table_is_bounded() {
        let t0 = Instant::now();
        let mut r = RateLimiter::new(1.0, 1, 4);
        for i in 0..4u8 {
            assert_eq!(r.check(IpAddr::from([10, 0, 0, i]), t0), Ok(()));
        }
        // Full and nobody has refilled: a new client is refused, table unchanged.
        assert!(r.check(ip("10.0.1.0"), t0).is_err());
        assert_eq!(r.tracked(), 4);
        // A second later every bucket is full again and may be forgotten.
        let t1 = t0 + Duration::from_secs(1);
        assert_eq!(r.check(ip("10.0.1.0"), t1), Ok(()));
        assert!(r.tracked() <= 4);
    }

    #[test]
    fn connection_permits_release_on_drop() {
        let limits = Arc::new(ClientLimits::new(AccessList::default(), 2, None));
        let a = ip("127.0.0.1");
        let p1 = limits.admit(a).expect("first");
        let p2 = limits.admit(ip("::ffff:127.0.0.1")).expect("second, same client");
        assert!(limits.admit(a).is_none(), "third over the limit");
        assert!(limits.admit(ip("127.0.0.2")).is_some(), "other client");
        drop(p1);
        let p3 = limits.admit(a).expect("slot freed");
        drop((p2, p3));
        assert_eq!(lock(&limits.conns).open(a), 0);
        let unlimited = Arc::new(ClientLimits::unlimited());
        let many: Vec<_> = (0..100).filter_map(|_| unlimited.admit(a)).collect();
        assert_eq!(many.len(), 100);
    }
}
