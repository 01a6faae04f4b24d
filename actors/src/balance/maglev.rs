//! Maglev consistent hashing (Eisenbud et al., NSDI 2016): a lookup table
//! of prime size where every backend owns an almost equal share of slots,
//! filled from per-backend permutations so that removing a backend moves
//! few keys. Pure.
//!
//! The table is built over *every* configured backend and rebuilt only when
//! the backend list changes. A backend that leaves for health reasons keeps
//! its slots; a lookup landing on one walks on to the next slot whose
//! backend is eligible. So when one of N backends leaves, exactly the keys
//! it owned move (about 1/N), every other key stays, and they all return
//! to it when it comes back.

use std::net::SocketAddr;

use crate::balance::key::hash64;
use crate::balance::{BackendId, PickRequest, PoolSnapshot, SplitMix64, Strategy};

/// Default table size: a prime well above 100 × any sensible backend count,
/// so shares differ by under 1%.
pub const DEFAULT_TABLE_SIZE: usize = 65_537;
/// Seeds of the two permutation hashes.
const OFFSET_SEED: u64 = 0x6d61_676c_6576_0001;
const SKIP_SEED: u64 = 0x6d61_676c_6576_0002;

/// Consistent hashing over the request key.
#[derive(Debug)]
pub struct Maglev {
    size: usize,
    table: Vec<u32>,
    built_for: Vec<SocketAddr>,
    rng: SplitMix64,
}

impl Maglev {
    /// A strategy with a table of `size` slots (a prime); requests without
    /// a key are spread with `rng`.
    pub fn new(size: usize, rng: SplitMix64) -> Self {
        Self { size, table: Vec::new(), built_for: Vec::new(), rng }
    }

    /// Fills the lookup table for `addrs` (the Maglev population).
    pub fn populate(size: usize, addrs: &[SocketAddr]) -> Vec<u32> {
        let n = addrs.len();
        if n == 0 || size == 0 {
            return Vec::new();
        }
        let perms: Vec<(usize, usize)> = addrs
            .iter()
            .map(|a| {
                let text = a.to_string();
                let offset = (hash64(OFFSET_SEED, text.as_bytes()) % size as u64) as usize;
                let skip = (hash64(SKIP_SEED, text.as_bytes()) % (size as u64 - 1).max(1)) as usize + 1;
                (offset, skip)
            })
            .collect();
        let mut next = vec![0usize; n];
        let mut table = vec![u32::MAX; size];
        let mut filled = 0;
        loop {
            for (i, &(offset, skip)) in perms.iter().enumerate() {
                let mut slot = (offset + next[i] * skip) % size;
                while table[slot] != u32::MAX {
                    next[i] += 1;
                    slot = (offset + next[i] * skip) % size;
                }
                table[slot] = i as u32;
                next[i] += 1;
                filled += 1;
                if filled == size {
                    return table;
                }
            }
        }
    }

    /// The slot a key lands on, and the backend that slot leads to.
    fn lookup(&self, snap: &PoolSnapshot, key: u64, exclude: &[BackendId]) -> Option<(usize, usize, BackendId)> {
        if self.table.is_empty() || !snap.eligible().iter().any(|id| !exclude.contains(id)) {
            return None;
        }
        let slot = (key % self.size as u64) as usize;
        (0..self.size).find_map(|step| {
            let id = BackendId(self.table[(slot + step) % self.size] as usize);
            (snap.is_eligible(id) && !exclude.contains(&id)).then_some((slot, step, id))
        })
    }
}

impl Strategy for Maglev {
    fn choose(&mut self, snap: &PoolSnapshot, req: &PickRequest, exclude: &[BackendId]) -> Option<BackendId> {
        let key = match req.key {
            Some(k) => k,
            None => self.rng.next_u64(),
        };
        self.lookup(snap, key, exclude).map(|(_, _, id)| id)
    }

    fn reset(&mut self, snap: &PoolSnapshot) {
        let same = snap.backends().len() == self.built_for.len()
            && snap.backends().iter().zip(&self.built_for).all(|(b, a)| b.addr == *a);
        if !same {
            self.built_for = snap.backends().iter().map(|b| b.addr).collect();
            self.table = Self::populate(self.size, &self.built_for);
        }
    }

    fn name(&self) -> &'static str {
        "maglev"
    }

    fn explain(&self, snap: &PoolSnapshot, req: &PickRequest) -> String {
        let Some(key) = req.key else {
            return "maglev: the request has no key, so it is spread at random".to_owned();
        };
        match self.lookup(snap, key, &[]) {
            None => "maglev: no eligible backend".to_owned(),
            Some((slot, 0, _)) => format!("maglev: key hash {key:#018x} lands on slot {slot} of {}", self.size),
            Some((slot, step, _)) => format!(
                "maglev: key hash {key:#018x} lands on slot {slot} of {}, whose backend is not eligible; \
                 {step} slot(s) further on is the first eligible one",
                self.size
            ),
        }
    }
}

#[cfg(test)]
mod tests {
    use std::time::Instant;

    use super::*;
    use crate::balance::tests::snap;

    /// Backend chosen for each of `keys` keys.
    fn assign(m: &mut Maglev, s: &PoolSnapshot, keys: u64) -> Vec<usize> {
        m.reset(s);
        (0..keys)
            .map(|k| {
                let req = PickRequest { key: Some(hash64(0, &k.to_le_bytes())), sticky: None, now: Instant::now() };
                m.choose(s, &req, &[]).map_or(usize::MAX, |id| id.0)
            })
            .collect()
    }

    #[test]
    fn shares_are_nearly_equal() {
        for n in [2usize, 3, 5, 10] {
            let addrs: Vec<SocketAddr> = (0..n).map(|i| SocketAddr::from(([10, 0, 0, i as u8], 80))).collect();
            let table = Maglev::populate(DEFAULT_TABLE_SIZE, &addrs);
            let mut shares = vec![0usize; n];
            for &b in &table {
                shares[b as usize] += 1;
            }
            let ideal = DEFAULT_TABLE_SIZE / n;
            assert!(shares.iter().all(|&c| c.abs_diff(ideal) <= 1), "n={n}: {shares:?}");
        }
    }

    #[test]
    fn one_of_n_leaving_moves_only_its_keys() {
        const KEYS: u64 = 20_000;
        for n in [3usize, 5, 8] {
            let mut all = vec![(1, true); n];
            let before = assign(&mut Maglev::new(DEFAULT_TABLE_SIZE, SplitMix64::new(1)), &snap(&all), KEYS);
            all[1].1 = false;
            let after = assign(&mut Maglev::new(DEFAULT_TABLE_SIZE, SplitMix64::new(1)), &snap(&all), KEYS);
            let mut kept = 0;
            for (b, a) in before.iter().zip(&after) {
                assert_ne!(*a, 1, "a key went to the departed backend");
                if *b != 1 {
                    assert_eq!(a, b, "a key of a remaining backend moved (n={n})");
                }
                kept += usize::from(a == b);
            }
            // Over the whole key space (every slot), at least (N-1)/N stays.
            let table =
                Maglev::populate(DEFAULT_TABLE_SIZE, &snap(&all).backends().iter().map(|b| b.addr).collect::<Vec<_>>());
            let slots_kept = table.iter().filter(|&&b| b != 1).count();
            assert!(slots_kept * n + n >= DEFAULT_TABLE_SIZE * (n - 1), "n={n}: {slots_kept} slots kept");
            let share = kept as f64 / KEYS as f64;
            let bound = (n - 1) as f64 / n as f64;
            // Keys are random, so the leaving backend owns 1/N of them give
            // or take sampling noise (3σ ≈ 1% at 20 000 keys).
            assert!(share >= bound - 0.01, "n={n}: kept {share:.4}, bound {bound:.4}");
            // Its keys spread over the others rather than landing on one.
            let moved: Vec<usize> = before.iter().zip(&after).filter(|(b, _)| **b == 1).map(|(_, a)| *a).collect();
            let max_one = (0..n).map(|i| moved.iter().filter(|&&a| a == i).count()).max().unwrap_or(0);
            assert!(max_one < moved.len() * 2 / (n - 1) + 50, "n={n}: moved keys pile up on one backend");
        }
    }

    #[test]
    fn removal_from_the_list_keeps_most_keys() {
        // A backend removed from the configuration (table rebuilt).
        const KEYS: u64 = 20_000;
        let n = 5;
        let mut m = Maglev::new(DEFAULT_TABLE_SIZE, SplitMix64::new(1));
        let s5 = snap(&vec![(1, true); n]);
        let before = assign(&mut m, &s5, KEYS);
        let views: Vec<_> = s5.backends()[..n - 1].to_vec();
        let s4 = PoolSnapshot::new(views, 2);
        let after = assign(&mut m, &s4, KEYS);
        let kept_others = before.iter().zip(&after).filter(|(b, a)| **b != n - 1 && a == b).count();
        let others = before.iter().filter(|&&b| b != n - 1).count();
        assert!(kept_others as f64 / others as f64 >= 0.97, "{kept_others}/{others}");
    }

    #[test]
    fn same_key_same_backend_and_exclusion_walks_on() {
        let s = snap(&[(1, true), (1, true), (1, true)]);
        let mut m = Maglev::new(DEFAULT_TABLE_SIZE, SplitMix64::new(1));
        m.reset(&s);
        let req = PickRequest { key: Some(12345), sticky: None, now: Instant::now() };
        let first = m.choose(&s, &req, &[]).expect("pick");
        for _ in 0..10 {
            assert_eq!(m.choose(&s, &req, &[]), Some(first));
        }
        let other = m.choose(&s, &req, &[first]).expect("another");
        assert_ne!(other, first);
        assert!(m.explain(&s, &req).contains("slot"));
    }
}
