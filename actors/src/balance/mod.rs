//! Balancing policy: which backend serves the next request.
//!
//! Pure code: no I/O, no clock, no logging. The BackendPool actor decides
//! *eligibility* (up, not ejected, not drained; or everyone in panic mode)
//! and publishes it as an immutable [`PoolSnapshot`]; a [`Strategy`] only
//! *proposes* among the eligible ones. Live load (requests in flight,
//! latency) is read from the snapshot's shared [`Load`]; time and
//! randomness come in as parameters ([`PickRequest::now`], seeded
//! [`SplitMix64`]), so every strategy is deterministic under test.
//!
//! | strategy | module | reads |
//! |---|---|---|
//! | round robin, smooth weighted round robin | here | turn, weights |
//! | least connections (weighted) | [`least_conn`] | in flight, weights |
//! | power of two choices + peak-EWMA | [`p2c`] | in flight, latency, weights, randomness |
//! | Maglev consistent hashing | [`maglev`] | the request key |
//! | sticky sessions (signed cookie) | [`sticky`] | the cookie, then a fallback strategy |

pub mod key;
pub mod least_conn;
pub mod load;
pub mod maglev;
pub mod p2c;
pub mod sticky;

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Instant;

pub use crate::balance::least_conn::LeastConnections;
pub use crate::balance::load::{FailureKind, InFlight, Load};
pub use crate::balance::maglev::Maglev;
pub use crate::balance::p2c::PowerOfTwoChoices;
pub use crate::balance::sticky::{Sticky, StickyCodec};
use crate::settings::{StrategyKind, UpstreamSettings};

/// Index of a backend in the pool's list. Stable for the life of a pool.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct BackendId(pub usize);

impl std::fmt::Display for BackendId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "#{}", self.0)
    }
}

impl Default for BackendId {
    /// A placeholder id that names no backend.
    fn default() -> Self {
        BackendId(usize::MAX)
    }
}

/// One backend as the balancers see it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BackendView {
    /// Its address.
    pub addr: SocketAddr,
    /// Its weight now: the configured one, lower while slow start ramps it.
    pub weight: u32,
    /// Whether requests may go to it now.
    pub eligible: bool,
}

/// An immutable picture of the pool, shared by every balancer.
#[derive(Debug, Clone)]
pub struct PoolSnapshot {
    backends: Vec<BackendView>,
    eligible: Vec<BackendId>,
    load: Arc<Load>,
    sticky: Option<Arc<StickyCodec>>,
    /// Bumped by the pool on every change.
    pub version: u64,
    /// Too few backends are healthy: every backend is eligible (panic mode).
    pub panic: bool,
}

impl Default for PoolSnapshot {
    fn default() -> Self {
        Self::new(Vec::new(), 0)
    }
}

impl PoolSnapshot {
    /// Builds a snapshot with fresh load counters; the eligible list is
    /// derived from `backends`.
    pub fn new(backends: Vec<BackendView>, version: u64) -> Self {
        let load = Load::new(backends.len(), Instant::now());
        Self::with_load(backends, version, load)
    }

    /// Builds a snapshot over the pool's live `load` counters.
    pub fn with_load(backends: Vec<BackendView>, version: u64, load: Arc<Load>) -> Self {
        let eligible = (0..backends.len()).filter(|&i| backends[i].eligible).map(BackendId).collect();
        Self { backends, eligible, load, sticky: None, version, panic: false }
    }

    /// Marks the snapshot as built in panic mode.
    pub fn in_panic(mut self, panic: bool) -> Self {
        self.panic = panic;
        self
    }

    /// Attaches the sticky-cookie codec.
    pub fn with_sticky(mut self, codec: Option<Arc<StickyCodec>>) -> Self {
        self.sticky = codec;
        self
    }

    /// Backends requests may go to now, in pool order.
    pub fn eligible(&self) -> &[BackendId] {
        &self.eligible
    }

    /// Whether `id` is eligible now.
    pub fn is_eligible(&self, id: BackendId) -> bool {
        self.backends.get(id.0).is_some_and(|b| b.eligible)
    }

    /// Every backend, eligible or not.
    pub fn backends(&self) -> &[BackendView] {
        &self.backends
    }

    /// One backend. Ids come from this snapshot, so the index is in range;
    /// an id from another pool would be a bug, answered with `None`.
    pub fn backend(&self, id: BackendId) -> Option<&BackendView> {
        self.backends.get(id.0)
    }

    /// The weight of `id` now (0 for an unknown id).
    pub fn weight(&self, id: BackendId) -> u32 {
        self.backend(id).map_or(0, |b| b.weight)
    }

    /// The live load counters shared by every worker.
    pub fn load(&self) -> &Arc<Load> {
        &self.load
    }

    /// The sticky-cookie codec, when the strategy is `sticky`.
    pub fn sticky(&self) -> Option<&Arc<StickyCodec>> {
        self.sticky.as_ref()
    }
}

/// What a strategy may know about the request being balanced.
#[derive(Debug, Clone, Copy)]
pub struct PickRequest {
    /// Hash of the request's consistent-hashing key, if it has one.
    pub key: Option<u64>,
    /// The backend named by a valid sticky cookie.
    pub sticky: Option<BackendId>,
    /// The time of the pick (latency estimates decay with time).
    pub now: Instant,
}

impl PickRequest {
    /// A request with no key and no cookie, at `now`.
    pub fn at(now: Instant) -> Self {
        Self { key: None, sticky: None, now }
    }
}

/// A small, fast, seedable pseudo-random generator (SplitMix64): strategies
/// that need randomness take one, so tests can fix the seed.
#[derive(Debug, Clone)]
pub struct SplitMix64(u64);

impl SplitMix64 {
    /// A generator starting from `seed`.
    pub fn new(seed: u64) -> Self {
        Self(seed)
    }

    /// The next 64 random bits.
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// A number in `0..n` (`n` > 0), by multiply-shift.
    pub fn below(&mut self, n: usize) -> usize {
        ((u128::from(self.next_u64()) * n as u128) >> 64) as usize
    }
}

/// The eligible backends not in `exclude`, into `out` (reused).
fn candidates(snap: &PoolSnapshot, exclude: &[BackendId], out: &mut Vec<BackendId>) {
    out.clear();
    out.extend(snap.eligible().iter().copied().filter(|id| !exclude.contains(id)));
}

/// Chooses among eligible backends.
pub trait Strategy: Send + 'static {
    /// Proposes an eligible backend not in `exclude` (already tried for this
    /// request, or over its circuit-breaker limit); `None` when there is none.
    fn choose(&mut self, snap: &PoolSnapshot, req: &PickRequest, exclude: &[BackendId]) -> Option<BackendId>;
    /// Called once per new snapshot: rebuild lookup tables here, never per pick.
    fn reset(&mut self, _snap: &PoolSnapshot) {}
    /// The strategy's name in settings and logs.
    fn name(&self) -> &'static str;
    /// Why `req` would go to the backend this strategy proposes, for the
    /// `WhyBackend` query.
    fn explain(&self, _snap: &PoolSnapshot, _req: &PickRequest) -> String {
        format!("{} does not depend on the request key; the next pick depends on the turn and load", self.name())
    }
}

/// Position shared by the round-robin strategies of every worker of one
/// proxy, so that consecutive requests take turns whichever worker serves
/// them (one uncontended atomic add per pick).
#[derive(Debug, Clone, Default)]
pub struct SharedCursor(Arc<AtomicUsize>);

impl SharedCursor {
    fn advance(&self) -> usize {
        self.0.fetch_add(1, Ordering::Relaxed)
    }
}

/// Builds the strategy named in the settings; `cursor` is shared by the
/// workers of one proxy, `seed` feeds the randomised strategies.
pub fn strategy(up: &UpstreamSettings, cursor: &SharedCursor, seed: u64) -> Box<dyn Strategy> {
    match up.strategy {
        StrategyKind::Sticky => Box::new(Sticky::new(simple(up, up.sticky.fallback, cursor, seed))),
        kind => simple(up, kind, cursor, seed),
    }
}

fn simple(up: &UpstreamSettings, kind: StrategyKind, cursor: &SharedCursor, seed: u64) -> Box<dyn Strategy> {
    match kind {
        StrategyKind::RoundRobin => Box::new(RoundRobin::shared(cursor.clone())),
        StrategyKind::WeightedRoundRobin => Box::<SmoothWeighted>::default(),
        StrategyKind::LeastConnections => Box::<LeastConnections>::default(),
        StrategyKind::PowerOfTwoChoices => Box::new(PowerOfTwoChoices::new(SplitMix64::new(seed), up.ewma_decay)),
        StrategyKind::Maglev => Box::new(Maglev::new(maglev::DEFAULT_TABLE_SIZE, SplitMix64::new(seed))),
        // Validation rules out a sticky fallback; round robin if it happens.
        StrategyKind::Sticky => Box::new(RoundRobin::shared(cursor.clone())),
    }
}

/// Each eligible backend in turn.
#[derive(Debug, Default)]
pub struct RoundRobin {
    next: SharedCursor,
}

impl RoundRobin {
    /// A round robin whose position is shared with other workers.
    pub fn shared(next: SharedCursor) -> Self {
        Self { next }
    }
}

impl Strategy for RoundRobin {
    fn choose(&mut self, snap: &PoolSnapshot, _: &PickRequest, exclude: &[BackendId]) -> Option<BackendId> {
        let ids = snap.eligible();
        for _ in 0..ids.len() {
            let id = ids[self.next.advance() % ids.len()];
            if !exclude.contains(&id) {
                return Some(id);
            }
        }
        None
    }

    fn name(&self) -> &'static str {
        "round_robin"
    }
}

/// Smooth weighted round robin (as in nginx): each pick adds every eligible
/// backend's weight to its current score, picks the highest score and
/// subtracts the total from it. Spreads heavy backends evenly, so weights
/// 5:1:1 give `a a b a c a a`, not `a a a a a b c`.
#[derive(Debug, Default)]
pub struct SmoothWeighted {
    current: Vec<i64>,
}

impl Strategy for SmoothWeighted {
    fn choose(&mut self, snap: &PoolSnapshot, _: &PickRequest, exclude: &[BackendId]) -> Option<BackendId> {
        if self.current.len() != snap.backends().len() {
            self.current = vec![0; snap.backends().len()];
        }
        let mut total = 0i64;
        let mut best: Option<BackendId> = None;
        for &id in snap.eligible() {
            if exclude.contains(&id) {
                continue;
            }
            let weight = snap.backend(id).map_or(0, |b| i64::from(b.weight));
            self.current[id.0] += weight;
            total += weight;
            if best.is_none_or(|b| self.current[id.0] > self.current[b.0]) {
                best = Some(id);
            }
        }
        if let Some(b) = best {
            self.current[b.0] -= total;
        }
        best
    }

    fn reset(&mut self, snap: &PoolSnapshot) {
        self.current = vec![0; snap.backends().len()];
    }

    fn name(&self) -> &'static str {
        "weighted_round_robin"
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A snapshot of backends `(weight, eligible)` on ports 9000, 9001, ...
    pub(crate) fn snap(weights: &[(u32, bool)]) -> PoolSnapshot {
        let backends = weights
            .iter()
            .enumerate()
            .map(|(i, &(weight, eligible))| BackendView {
                addr: SocketAddr::from(([127, 0, 0, 1], 9000 + i as u16)),
                weight,
                eligible,
            })
            .collect();
        PoolSnapshot::new(backends, 1)
    }

    pub(crate) fn picks(s: &mut dyn Strategy, snap: &PoolSnapshot, n: usize) -> Vec<usize> {
        let req = PickRequest::at(Instant::now());
        (0..n).map(|_| s.choose(snap, &req, &[]).map_or(usize::MAX, |id| id.0)).collect()
    }

    /// Picks per backend over `n` picks.
    pub(crate) fn counts(s: &mut dyn Strategy, snap: &PoolSnapshot, n: usize) -> Vec<usize> {
        let mut c = vec![0; snap.backends().len()];
        for id in picks(s, snap, n) {
            c[id] += 1;
        }
        c
    }

    #[test]
    fn round_robin_cycles_over_eligible_only() {
        let s = snap(&[(1, true), (1, false), (1, true)]);
        assert_eq!(picks(&mut RoundRobin::default(), &s, 4), vec![0, 2, 0, 2]);
    }

    #[test]
    fn shared_round_robin_takes_turns_across_workers() {
        let s = snap(&[(1, true), (1, true)]);
        let cursor = SharedCursor::default();
        let req = PickRequest::at(Instant::now());
        let (mut w1, mut w2) = (RoundRobin::shared(cursor.clone()), RoundRobin::shared(cursor));
        let got: Vec<usize> = (0..4)
            .map(|i| if i % 3 == 0 { &mut w1 } else { &mut w2 }.choose(&s, &req, &[]).map_or(9, |id| id.0))
            .collect();
        assert_eq!(got, vec![0, 1, 0, 1]);
    }

    #[test]
    fn smooth_weighted_interleaves() {
        let cases: &[(&[(u32, bool)], &[usize])] = &[
            (&[(5, true), (1, true), (1, true)], &[0, 0, 1, 0, 2, 0, 0]),
            (&[(1, true), (1, true)], &[0, 1, 0, 1]),
            (&[(3, true), (1, false), (1, true)], &[0, 0, 2, 0]),
        ];
        for (weights, want) in cases {
            let s = snap(weights);
            let mut wrr = SmoothWeighted::default();
            wrr.reset(&s);
            assert_eq!(picks(&mut wrr, &s, want.len()), *want, "weights {weights:?}");
        }
    }

    #[test]
    fn weighted_distribution_matches_weights() {
        let s = snap(&[(3, true), (2, true), (1, true)]);
        let mut wrr = SmoothWeighted::default();
        let mut counts = [0usize; 3];
        for id in picks(&mut wrr, &s, 6000) {
            counts[id] += 1;
        }
        assert_eq!(counts, [3000, 2000, 1000]);
    }

    /// Every strategy kind, as the factory builds it.
    pub(crate) fn every_strategy() -> Vec<Box<dyn Strategy>> {
        let kinds = StrategyKind::ALL;
        let up = UpstreamSettings::default();
        kinds
            .iter()
            .map(|&kind| strategy(&UpstreamSettings { strategy: kind, ..up.clone() }, &SharedCursor::default(), 7))
            .collect()
    }

    #[test]
    fn exclusions_and_empty_pools() {
        let s = snap(&[(1, true), (1, true)]);
        let mut req = PickRequest::at(Instant::now());
        for mut st in every_strategy() {
            st.reset(&s);
            for key in 0..8 {
                req.key = Some(key);
                assert_eq!(st.choose(&s, &req, &[BackendId(0)]), Some(BackendId(1)), "{}", st.name());
            }
            assert_eq!(st.choose(&s, &req, &[BackendId(0), BackendId(1)]), None, "{}", st.name());
            let none = snap(&[(1, false)]);
            st.reset(&none);
            assert_eq!(st.choose(&none, &req, &[]), None, "{}", st.name());
            let empty = PoolSnapshot::default();
            st.reset(&empty);
            assert_eq!(st.choose(&empty, &req, &[]), None, "{}", st.name());
        }
    }

    #[test]
    fn every_strategy_spreads_over_eligible_backends() {
        let s = snap(&[(1, true), (1, false), (1, true), (1, true)]);
        let mut rng = SplitMix64::new(3);
        for mut st in every_strategy() {
            st.reset(&s);
            let mut c = [0usize; 4];
            for _ in 0..3000 {
                let req = PickRequest { key: Some(rng.next_u64()), sticky: None, now: Instant::now() };
                let id = st.choose(&s, &req, &[]).expect("an eligible backend");
                c[id.0] += 1;
            }
            assert_eq!(c[1], 0, "{} picked an ineligible backend", st.name());
            for i in [0, 2, 3] {
                assert!((800..=1200).contains(&c[i]), "{}: {c:?}", st.name());
            }
        }
    }

    #[test]
    fn splitmix_is_deterministic_and_bounded() {
        let (mut a, mut b) = (SplitMix64::new(42), SplitMix64::new(42));
        for _ in 0..100 {
            assert_eq!(a.next_u64(), b.next_u64());
            assert!(a.below(7) < 7);
            b.below(7);
        }
    }
}
