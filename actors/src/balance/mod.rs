//! Balancing policy: which backend serves the next request.
//!
//! Pure code: no I/O, no clock, no logging. The BackendPool actor decides
//! *eligibility* (up and enabled) and publishes it as an immutable
//! [`PoolSnapshot`]; a [`Strategy`] only *proposes* among the eligible ones.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use crate::settings::StrategyKind;

/// Index of a backend in the pool's list. Stable for the life of a pool.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct BackendId(pub usize);

impl std::fmt::Display for BackendId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "#{}", self.0)
    }
}

/// One backend as the balancers see it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BackendView {
    /// Its address.
    pub addr: SocketAddr,
    /// Its configured weight.
    pub weight: u32,
    /// Whether requests may go to it now.
    pub eligible: bool,
}

/// An immutable picture of the pool, shared by every balancer.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PoolSnapshot {
    backends: Vec<BackendView>,
    eligible: Vec<BackendId>,
    /// Bumped by the pool on every change.
    pub version: u64,
}

impl PoolSnapshot {
    /// Builds a snapshot; the eligible list is derived from `backends`.
    pub fn new(backends: Vec<BackendView>, version: u64) -> Self {
        let eligible = (0..backends.len()).filter(|&i| backends[i].eligible).map(BackendId).collect();
        Self { backends, eligible, version }
    }

    /// Backends requests may go to now, in pool order.
    pub fn eligible(&self) -> &[BackendId] {
        &self.eligible
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
}

/// Chooses among eligible backends.
pub trait Strategy: Send + 'static {
    /// Proposes a backend, skipping those in `exclude` (already tried for
    /// this request) when another is eligible.
    fn choose(&mut self, snap: &PoolSnapshot, exclude: &[BackendId]) -> Option<BackendId>;
    /// Called once per new snapshot: rebuild lookup tables here, never per pick.
    fn reset(&mut self, _snap: &PoolSnapshot) {}
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
/// workers of one proxy.
pub fn strategy(kind: StrategyKind, cursor: &SharedCursor) -> Box<dyn Strategy> {
    match kind {
        StrategyKind::RoundRobin => Box::new(RoundRobin::shared(cursor.clone())),
        StrategyKind::WeightedRoundRobin => Box::<SmoothWeighted>::default(),
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
    fn choose(&mut self, snap: &PoolSnapshot, exclude: &[BackendId]) -> Option<BackendId> {
        let ids = snap.eligible();
        for _ in 0..ids.len() {
            let id = ids[self.next.advance() % ids.len()];
            if !exclude.contains(&id) {
                return Some(id);
            }
        }
        None
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
    fn choose(&mut self, snap: &PoolSnapshot, exclude: &[BackendId]) -> Option<BackendId> {
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
}

#[cfg(test)]
mod tests {
    use super::*;

    fn snap(weights: &[(u32, bool)]) -> PoolSnapshot {
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

    fn picks(s: &mut dyn Strategy, snap: &PoolSnapshot, n: usize) -> Vec<usize> {
        (0..n).map(|_| s.choose(snap, &[]).map_or(usize::MAX, |id| id.0)).collect()
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
        let (mut w1, mut w2) = (RoundRobin::shared(cursor.clone()), RoundRobin::shared(cursor));
        let got: Vec<usize> =
            (0..4).map(|i| if i % 3 == 0 { &mut w1 } else { &mut w2 }.choose(&s, &[]).map_or(9, |id| id.0)).collect();
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

    #[test]
    fn exclusions_and_empty_pools() {
        let s = snap(&[(1, true), (1, true)]);
        let strategies: Vec<Box<dyn Strategy>> = vec![Box::<RoundRobin>::default(), Box::<SmoothWeighted>::default()];
        for mut st in strategies {
            for _ in 0..4 {
                assert_eq!(st.choose(&s, &[BackendId(0)]), Some(BackendId(1)));
            }
            assert_eq!(st.choose(&s, &[BackendId(0), BackendId(1)]), None);
            assert_eq!(st.choose(&snap(&[(1, false)]), &[]), None);
            assert_eq!(st.choose(&PoolSnapshot::default(), &[]), None);
        }
    }
}
