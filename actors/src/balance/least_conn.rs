//! Weighted least connections: the backend with the fewest requests in
//! flight per unit of weight. Pure.

use crate::balance::{BackendId, PickRequest, PoolSnapshot, Strategy};

/// Fewest `(in_flight + 1) / weight`; ties take turns, so an idle pool is
/// still spread evenly.
#[derive(Debug, Default)]
pub struct LeastConnections {
    turn: usize,
}

/// Whether load `a` (in flight, weight) is strictly below `b`, comparing
/// `(a.0 + 1) / a.1 < (b.0 + 1) / b.1` without division.
pub(crate) fn lighter(a: (u32, u32), b: (u32, u32)) -> bool {
    (u64::from(a.0) + 1) * u64::from(b.1.max(1)) < (u64::from(b.0) + 1) * u64::from(a.1.max(1))
}

impl Strategy for LeastConnections {
    fn choose(&mut self, snap: &PoolSnapshot, _: &PickRequest, exclude: &[BackendId]) -> Option<BackendId> {
        let load = snap.load();
        let score = |id: BackendId| (load.stats(id).in_flight(), snap.weight(id));
        let open = || snap.eligible().iter().copied().filter(|id| !exclude.contains(id));
        // Two passes over a handful of backends: the lightest load, then
        // the turn's pick among the backends tied at it.
        let mut best: Option<(u32, u32)> = None;
        let mut ties = 0usize;
        for id in open() {
            let this = score(id);
            match best {
                Some(b) if lighter(b, this) => {}
                Some(b) if !lighter(this, b) => ties += 1,
                _ => (best, ties) = (Some(this), 1),
            }
        }
        let best = best?;
        let nth = self.turn % ties;
        self.turn = self.turn.wrapping_add(1);
        // Other workers may change loads between the passes: any open backend then.
        open().filter(|&id| !lighter(best, score(id))).nth(nth).or_else(|| open().next())
    }

    fn name(&self) -> &'static str {
        "least_connections"
    }
}

#[cfg(test)]
mod tests {
    use std::time::Instant;

    use super::*;
    use crate::balance::tests::{counts, snap};

    #[test]
    fn lighter_compares_weighted_load() {
        let cases: &[((u32, u32), (u32, u32), bool)] = &[
            ((0, 1), (1, 1), true),
            ((1, 1), (1, 1), false),
            ((1, 2), (0, 1), false),
            ((2, 2), (1, 1), true),
            ((1, 3), (0, 1), true),
        ];
        for &(a, b, want) in cases {
            assert_eq!(lighter(a, b), want, "{a:?} vs {b:?}");
        }
    }

    #[test]
    fn picks_the_least_loaded_and_spreads_ties() {
        let s = snap(&[(1, true), (1, true), (1, true)]);
        let busy: Vec<_> = (0..3).map(|_| s.load().begin(BackendId(0))).collect();
        let mut lc = LeastConnections::default();
        let c = counts(&mut lc, &s, 1000);
        assert_eq!(c[0], 0, "the busy backend is avoided: {c:?}");
        assert_eq!((c[1], c[2]), (500, 500), "ties take turns: {c:?}");
        drop(busy);
    }

    #[test]
    fn held_requests_fill_backends_in_weight_proportion() {
        // Requests that never finish: each pick raises that backend's load.
        let s = snap(&[(3, true), (1, true), (2, true)]);
        let mut lc = LeastConnections::default();
        let req = PickRequest::at(Instant::now());
        let held: Vec<_> = (0..600).map(|_| s.load().begin(lc.choose(&s, &req, &[]).expect("pick"))).collect();
        let got: Vec<u32> = (0..3).map(|i| s.load().stats(BackendId(i)).in_flight()).collect();
        assert_eq!(got, [300, 100, 200]);
        drop(held);
    }
}
