//! Power of two choices over in-flight requests and peak-EWMA latency (as
//! linkerd and Finagle do): draw two eligible backends at random, take the
//! one with the lower `latency × (in_flight + 1) / weight`. Pure: the
//! randomness is a seeded [`SplitMix64`] and the time comes with the pick.

use std::time::Duration;

use crate::balance::{BackendId, PickRequest, PoolSnapshot, SplitMix64, Strategy, candidates};

/// Two random choices, the cheaper wins.
#[derive(Debug)]
pub struct PowerOfTwoChoices {
    rng: SplitMix64,
    decay: Duration,
    buf: Vec<BackendId>,
}

impl PowerOfTwoChoices {
    /// A strategy drawing from `rng`, with latency estimates decaying over `decay`.
    pub fn new(rng: SplitMix64, decay: Duration) -> Self {
        Self { rng, decay, buf: Vec::new() }
    }

    /// The cost of sending one more request to `id`.
    fn cost(&self, snap: &PoolSnapshot, req: &PickRequest, id: BackendId) -> f64 {
        let load = snap.load();
        // An unmeasured backend costs 1 ns: it is tried, and then measured.
        let latency = load.latency(id, req.now, self.decay).as_nanos().max(1) as f64;
        let in_flight = f64::from(load.stats(id).in_flight()) + 1.0;
        latency * in_flight / f64::from(snap.weight(id).max(1))
    }
}

impl Strategy for PowerOfTwoChoices {
    fn choose(&mut self, snap: &PoolSnapshot, req: &PickRequest, exclude: &[BackendId]) -> Option<BackendId> {
        let mut buf = std::mem::take(&mut self.buf);
        candidates(snap, exclude, &mut buf);
        let pick = match buf.len() {
            0 => None,
            1 => Some(buf[0]),
            n => {
                let a = self.rng.below(n);
                let mut b = self.rng.below(n - 1);
                if b >= a {
                    b += 1;
                }
                let (a, b) = (buf[a], buf[b]);
                Some(if self.cost(snap, req, b) < self.cost(snap, req, a) { b } else { a })
            }
        };
        self.buf = buf;
        pick
    }

    fn name(&self) -> &'static str {
        "p2c"
    }

    fn explain(&self, snap: &PoolSnapshot, req: &PickRequest) -> String {
        let costs: Vec<String> = snap
            .eligible()
            .iter()
            .filter_map(|&id| {
                let b = snap.backend(id)?;
                let s = snap.load().stats(id);
                Some(format!(
                    "{} in_flight={} latency_us={} weight={}",
                    b.addr,
                    s.in_flight(),
                    snap.load().latency(id, req.now, self.decay).as_micros(),
                    b.weight
                ))
            })
            .collect();
        format!("p2c draws two eligible backends at random and takes the cheaper: {}", costs.join("; "))
    }
}

#[cfg(test)]
mod tests {
    use std::time::Instant;

    use super::*;
    use crate::balance::tests::snap;

    const DECAY: Duration = Duration::from_secs(10);

    #[test]
    fn same_seed_same_picks() {
        let s = snap(&[(1, true), (1, true), (1, true), (1, true)]);
        let req = PickRequest::at(Instant::now());
        let run = |seed| {
            let mut p = PowerOfTwoChoices::new(SplitMix64::new(seed), DECAY);
            (0..50).map(|_| p.choose(&s, &req, &[]).map_or(99, |id| id.0)).collect::<Vec<_>>()
        };
        assert_eq!(run(1), run(1));
        assert_ne!(run(1), run(2));
    }

    #[test]
    fn a_slow_backend_gets_little_traffic() {
        let now = Instant::now();
        let s = snap(&[(1, true), (1, true), (1, true)]);
        let load = s.load();
        for (i, ms) in [(0, 10), (1, 10), (2, 100)] {
            load.observe_latency(BackendId(i), Duration::from_millis(ms), now, DECAY);
        }
        let mut p = PowerOfTwoChoices::new(SplitMix64::new(9), DECAY);
        let req = PickRequest::at(now);
        let mut c = [0usize; 3];
        for _ in 0..3000 {
            c[p.choose(&s, &req, &[]).expect("pick").0] += 1;
        }
        // Every draw that includes the slow backend pairs it with a faster
        // one, so while the estimates stand it gets nothing.
        assert_eq!(c[2], 0, "{c:?}");
        assert!(c[0].abs_diff(c[1]) < 300, "{c:?}");
    }

    #[test]
    fn in_flight_requests_outweigh_latency() {
        let now = Instant::now();
        let s = snap(&[(1, true), (1, true)]);
        let load = s.load();
        load.observe_latency(BackendId(0), Duration::from_millis(10), now, DECAY);
        load.observe_latency(BackendId(1), Duration::from_millis(20), now, DECAY);
        let held: Vec<_> = (0..4).map(|_| load.begin(BackendId(0))).collect();
        let mut p = PowerOfTwoChoices::new(SplitMix64::new(1), DECAY);
        // 10 ms × 5 > 20 ms × 1.
        assert_eq!(p.choose(&s, &PickRequest::at(now), &[]), Some(BackendId(1)));
        drop(held);
        assert_eq!(p.choose(&s, &PickRequest::at(now), &[]), Some(BackendId(0)));
    }

    #[test]
    fn stale_latency_decays_so_a_recovered_backend_is_tried_again() {
        let now = Instant::now();
        let s = snap(&[(1, true), (1, true)]);
        s.load().observe_latency(BackendId(0), Duration::from_millis(1000), now, DECAY);
        s.load().observe_latency(BackendId(1), Duration::from_millis(10), now + Duration::from_secs(60), DECAY);
        let mut p = PowerOfTwoChoices::new(SplitMix64::new(1), DECAY);
        // 60 s later, 1000 ms × e^-6 ≈ 2.5 ms < 10 ms.
        let later = PickRequest::at(now + Duration::from_secs(60));
        assert_eq!(p.choose(&s, &later, &[]), Some(BackendId(0)));
    }
}
