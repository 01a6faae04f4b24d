//! Backend health policy: probe outcomes and failure reports in,
//! transitions out. Pure: no actix, no I/O; time comes in as `Instant`s.
//!
//! A backend is *eligible* (requests may go to it) when it is
//! - **up** by active checks: `rise` successful probes in a row bring a down
//!   backend up, `fall` failed ones take an up backend down (backends start
//!   up, so a proxy serves before the first probe round);
//! - not **ejected** by passive health: a run of consecutive failures seen
//!   by sessions ejects it for `base × ejections` (capped); then it is
//!   restored and tried again. Errors (resets, timeouts, 5xx) eject at most
//!   `max_ejected_percent` of the backends at once; refused connects always
//!   eject (such a backend cannot serve anyway);
//! - not **drained** by the operator.
//!
//! When fewer than `panic_threshold` of the (undrained) backends are
//! healthy, every undrained backend is eligible (panic mode, as in Envoy):
//! better to spread load over possibly-sick backends than to overload the
//! few. A backend that becomes eligible again ramps its weight up over the
//! slow-start window.

pub mod probe;

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use crate::balance::FailureKind;

/// Transitions kept per backend for the status query.
pub const HISTORY: usize = 16;
/// Configured weights are multiplied by this in snapshots, so that slow
/// start can ramp even a weight-1 backend in 1% steps (every strategy is
/// invariant to scaling all weights).
pub const WEIGHT_SCALE: u32 = 100;
/// Share of its weight a backend starts slow start with.
const SLOW_START_FLOOR: f64 = 0.1;

/// What happened to a backend.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum TransitionKind {
    /// Active checks marked it up.
    Up,
    /// Active checks marked it down.
    Down,
    /// Passive health ejected it.
    Ejected,
    /// Its ejection ended.
    Restored,
    /// It became eligible again and ramps its weight up.
    SlowStart,
    /// The operator drained it: no new requests.
    Drained,
    /// The operator put it back in service.
    Undrained,
}

impl TransitionKind {
    /// Stable name for logs and status.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Up => "up",
            Self::Down => "down",
            Self::Ejected => "ejected",
            Self::Restored => "restored",
            Self::SlowStart => "slow_start",
            Self::Drained => "drained",
            Self::Undrained => "undrained",
        }
    }
}

/// One transition, with its reason.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Transition {
    /// When.
    pub at: Instant,
    /// What.
    pub kind: TransitionKind,
    /// Why, for the log and the status query.
    pub reason: String,
}

/// The policies, from the settings.
#[derive(Debug, Clone, PartialEq)]
pub struct Policy {
    /// Successful probes in a row that mark a down backend up.
    pub rise: u32,
    /// Failed probes in a row that mark an up backend down.
    pub fall: u32,
    /// First ejection time; the n-th recent ejection lasts n times this.
    pub base_ejection: Duration,
    /// Longest ejection. A backend not ejected for this long starts its
    /// ejection count afresh.
    pub max_ejection: Duration,
    /// Share of backends (percent) that errors may eject at once.
    pub max_ejected_percent: u32,
    /// Below this share of healthy backends, all are eligible.
    pub panic_threshold: f64,
    /// Weight ramp of a backend that comes back; zero: none.
    pub slow_start: Duration,
}

/// The health of one backend.
#[derive(Debug, Clone)]
pub struct BackendHealth {
    active_up: bool,
    ok_run: u32,
    fail_run: u32,
    ejected_until: Option<Instant>,
    ejections: u32,
    last_restored: Option<Instant>,
    drained: bool,
    slow_start_since: Option<Instant>,
    history: VecDeque<Transition>,
}

impl Default for BackendHealth {
    fn default() -> Self {
        Self {
            active_up: true,
            ok_run: 0,
            fail_run: 0,
            ejected_until: None,
            ejections: 0,
            last_restored: None,
            drained: false,
            slow_start_since: None,
            history: VecDeque::new(),
        }
    }
}

/// A backend's state as the status query names it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HealthState {
    /// Serving at full weight.
    Up,
    /// Serving, weight ramping up.
    SlowStart,
    /// Down by active checks.
    Down,
    /// Ejected by passive health.
    Ejected,
    /// Drained by the operator.
    Draining,
}

impl BackendHealth {
    /// Up by active checks, not ejected, not drained.
    pub fn healthy(&self) -> bool {
        self.active_up && self.ejected_until.is_none() && !self.drained
    }

    /// The state at `now`.
    pub fn state(&self, now: Instant, policy: &Policy) -> HealthState {
        if self.drained {
            HealthState::Draining
        } else if self.ejected_until.is_some() {
            HealthState::Ejected
        } else if !self.active_up {
            HealthState::Down
        } else if self.ramp(now, policy) < 1.0 {
            HealthState::SlowStart
        } else {
            HealthState::Up
        }
    }

    /// Times ejected recently (since its count last started afresh).
    pub fn ejections(&self) -> u32 {
        self.ejections
    }

    /// When the current ejection ends.
    pub fn ejected_until(&self) -> Option<Instant> {
        self.ejected_until
    }

    /// Whether the operator drained it.
    pub fn drained(&self) -> bool {
        self.drained
    }

    /// Recent transitions, oldest first.
    pub fn history(&self) -> impl Iterator<Item = &Transition> {
        self.history.iter()
    }

    /// Share of its weight it gets at `now` (slow start), 0.1 to 1.0.
    fn ramp(&self, now: Instant, policy: &Policy) -> f64 {
        match self.slow_start_since {
            Some(since) if !policy.slow_start.is_zero() => {
                let done = now.saturating_duration_since(since).as_secs_f64() / policy.slow_start.as_secs_f64();
                if done >= 1.0 { 1.0 } else { SLOW_START_FLOOR + (1.0 - SLOW_START_FLOOR) * done }
            }
            _ => 1.0,
        }
    }

    /// Its snapshot weight at `now`: `configured × WEIGHT_SCALE`, ramped.
    pub fn weight(&self, configured: u32, now: Instant, policy: &Policy) -> u32 {
        let full = configured.saturating_mul(WEIGHT_SCALE);
        ((f64::from(full) * self.ramp(now, policy)).round() as u32).clamp(1, full.max(1))
    }

    /// Whether slow start is still ramping at `now`.
    pub fn ramping(&self, now: Instant, policy: &Policy) -> bool {
        self.ramp(now, policy) < 1.0
    }

    fn record(&mut self, at: Instant, kind: TransitionKind, reason: String) -> Transition {
        let t = Transition { at, kind, reason };
        if self.history.len() == HISTORY {
            self.history.pop_front();
        }
        self.history.push_back(t.clone());
        t
    }

    /// Starts slow start if it became healthy (called after each change).
    fn maybe_slow_start(&mut self, was_healthy: bool, now: Instant, policy: &Policy, out: &mut Vec<Transition>) {
        if !was_healthy && self.healthy() && !policy.slow_start.is_zero() {
            self.slow_start_since = Some(now);
            let reason = format!("weight ramps from 10% over {} ms", policy.slow_start.as_millis());
            out.push(self.record(now, TransitionKind::SlowStart, reason));
        }
    }

    /// One active probe result. Returns the transitions it caused.
    pub fn probe(&mut self, ok: bool, detail: &str, now: Instant, policy: &Policy) -> Vec<Transition> {
        let mut out = Vec::new();
        let was_healthy = self.healthy();
        if ok {
            self.fail_run = 0;
            self.ok_run = self.ok_run.saturating_add(1);
            if !self.active_up && self.ok_run >= policy.rise {
                self.active_up = true;
                let reason = format!("{} successful checks in a row ({detail})", self.ok_run);
                out.push(self.record(now, TransitionKind::Up, reason));
            }
        } else {
            self.ok_run = 0;
            self.fail_run = self.fail_run.saturating_add(1);
            if self.active_up && self.fail_run >= policy.fall {
                self.active_up = false;
                self.slow_start_since = None;
                let reason = format!("{} failed checks in a row (last: {detail})", self.fail_run);
                out.push(self.record(now, TransitionKind::Down, reason));
            }
        }
        self.maybe_slow_start(was_healthy, now, policy, &mut out);
        out
    }

    /// Ejects it now for the time its recent ejection count earns; returns
    /// the transition.
    fn eject(&mut self, kind: FailureKind, run: u32, now: Instant, policy: &Policy) -> Transition {
        if self.last_restored.is_some_and(|t| now.saturating_duration_since(t) >= policy.max_ejection) {
            self.ejections = 0;
        }
        self.ejections = self.ejections.saturating_add(1);
        let time = ejection_time(policy.base_ejection, policy.max_ejection, self.ejections);
        self.ejected_until = Some(now + time);
        self.slow_start_since = None;
        let reason = format!(
            "{run} consecutive failures ({}); ejection {} for {} ms",
            kind.as_str(),
            self.ejections,
            time.as_millis()
        );
        self.record(now, TransitionKind::Ejected, reason)
    }

    /// Ends the ejection if it is due at `now`.
    fn restore_if_due(&mut self, now: Instant, policy: &Policy, out: &mut Vec<Transition>) {
        if self.ejected_until.is_some_and(|t| t <= now) {
            let was_healthy = self.healthy();
            self.ejected_until = None;
            self.last_restored = Some(now);
            let reason = format!("ejection {} ended; trying it again", self.ejections);
            out.push(self.record(now, TransitionKind::Restored, reason));
            self.maybe_slow_start(was_healthy, now, policy, out);
        }
    }
}

/// How long the n-th recent ejection lasts: `base × n`, at most `max`.
pub fn ejection_time(base: Duration, max: Duration, n: u32) -> Duration {
    base.saturating_mul(n.max(1)).min(max)
}

/// How many backends of `total` errors may eject at once: `percent`% of
/// them, but at least one when `percent` > 0 (else a small pool could
/// never eject anything).
pub fn ejection_allowance(total: usize, percent: u32) -> usize {
    if percent == 0 {
        return 0;
    }
    (total * percent as usize / 100).max(1)
}

/// Whether `healthy` of `total` backends is below the panic threshold.
pub fn in_panic(healthy: usize, total: usize, threshold: f64) -> bool {
    total > 0 && threshold > 0.0 && (healthy as f64) < threshold * total as f64
}

/// The health of every backend of a pool.
#[derive(Debug, Clone)]
pub struct HealthTable {
    backends: Vec<BackendHealth>,
    policy: Policy,
}

/// Who may take requests now.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Eligibility {
    /// Per backend, in pool order.
    pub eligible: Vec<bool>,
    /// Panic mode: too few healthy, so all undrained are eligible.
    pub panic: bool,
    /// Healthy backends.
    pub healthy: usize,
    /// Undrained backends.
    pub total: usize,
}

impl HealthTable {
    /// `n` backends, all up.
    pub fn new(n: usize, policy: Policy) -> Self {
        Self { backends: vec![BackendHealth::default(); n], policy }
    }

    /// The policies in force.
    pub fn policy(&self) -> &Policy {
        &self.policy
    }

    /// One backend's health.
    pub fn backend(&self, i: usize) -> Option<&BackendHealth> {
        self.backends.get(i)
    }

    /// Number of backends.
    pub fn len(&self) -> usize {
        self.backends.len()
    }

    /// Whether there are no backends.
    pub fn is_empty(&self) -> bool {
        self.backends.is_empty()
    }

    /// A probe result for backend `i`.
    pub fn probe(&mut self, i: usize, ok: bool, detail: &str, now: Instant) -> Vec<Transition> {
        let policy = &self.policy;
        self.backends.get_mut(i).map(|b| b.probe(ok, detail, now, policy)).unwrap_or_default()
    }

    /// A run of `run` consecutive failures of `kind` on backend `i`:
    /// ejects it unless it already is, or the ejection cap forbids it
    /// (`Err` with the reason, for the log).
    pub fn failed(&mut self, i: usize, kind: FailureKind, run: u32, now: Instant) -> Result<Transition, &'static str> {
        let ejected = self.backends.iter().filter(|b| b.ejected_until.is_some()).count();
        let allowance = ejection_allowance(self.backends.len(), self.policy.max_ejected_percent);
        let policy = &self.policy;
        let b = self.backends.get_mut(i).ok_or("unknown backend")?;
        if b.ejected_until.is_some() {
            return Err("already ejected");
        }
        if b.drained {
            return Err("drained");
        }
        if kind != FailureKind::Connect && ejected >= allowance {
            return Err("ejection cap reached");
        }
        Ok(b.eject(kind, run, now, policy))
    }

    /// Restores every backend whose ejection is over at `now`.
    pub fn restore_due(&mut self, now: Instant) -> Vec<(usize, Transition)> {
        let mut out = Vec::new();
        for (i, b) in self.backends.iter_mut().enumerate() {
            let mut ts = Vec::new();
            b.restore_if_due(now, &self.policy, &mut ts);
            out.extend(ts.into_iter().map(|t| (i, t)));
        }
        out
    }

    /// The next ejection end, for the restore timer.
    pub fn next_restore(&self) -> Option<Instant> {
        self.backends.iter().filter_map(|b| b.ejected_until).min()
    }

    /// Drains (`true`) or undrains backend `i`.
    pub fn set_drained(&mut self, i: usize, drained: bool, reason: &str, now: Instant) -> Vec<Transition> {
        let policy = &self.policy;
        let Some(b) = self.backends.get_mut(i) else {
            return Vec::new();
        };
        if b.drained == drained {
            return Vec::new();
        }
        let was_healthy = b.healthy();
        b.drained = drained;
        let kind = if drained { TransitionKind::Drained } else { TransitionKind::Undrained };
        let mut out = vec![b.record(now, kind, reason.to_owned())];
        b.maybe_slow_start(was_healthy, now, policy, &mut out);
        out
    }

    /// Who may take requests now.
    pub fn eligibility(&self) -> Eligibility {
        let total = self.backends.iter().filter(|b| !b.drained).count();
        let healthy = self.backends.iter().filter(|b| b.healthy()).count();
        let panic = in_panic(healthy, total, self.policy.panic_threshold);
        let eligible = self.backends.iter().map(|b| if panic { !b.drained } else { b.healthy() }).collect();
        Eligibility { eligible, panic, healthy, total }
    }

    /// Snapshot weights at `now` from the configured ones.
    pub fn weights(&self, configured: &[u32], now: Instant) -> Vec<u32> {
        self.backends.iter().zip(configured).map(|(b, &w)| b.weight(w, now, &self.policy)).collect()
    }

    /// Whether any backend's weight is still ramping.
    pub fn ramping(&self, now: Instant) -> bool {
        self.backends.iter().any(|b| b.ramping(now, &self.policy))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn policy() -> Policy {
        Policy {
            rise: 2,
            fall: 3,
            base_ejection: Duration::from_secs(1),
            max_ejection: Duration::from_secs(5),
            max_ejected_percent: 50,
            panic_threshold: 0.0,
            slow_start: Duration::ZERO,
        }
    }

    fn kinds(ts: &[Transition]) -> Vec<TransitionKind> {
        ts.iter().map(|t| t.kind).collect()
    }

    #[test]
    fn rise_and_fall_need_runs() {
        use TransitionKind::{Down, Up};
        // Probe results in order, and the transitions expected after each.
        let cases: &[(&[bool], &[Option<TransitionKind>])] = &[
            (&[false, false, false], &[None, None, Some(Down)]),
            (&[false, false, true, false, false], &[None, None, None, None, None]),
            (&[false, false, false, true, true], &[None, None, Some(Down), None, Some(Up)]),
            (&[false, false, false, true, false, true, true], &[None, None, Some(Down), None, None, None, Some(Up)]),
        ];
        for (probes, want) in cases {
            let mut b = BackendHealth::default();
            let now = Instant::now();
            for (i, (&ok, w)) in probes.iter().zip(want.iter()).enumerate() {
                let got = b.probe(ok, "status=200", now, &policy());
                assert_eq!(kinds(&got).first().copied(), *w, "probes {probes:?} step {i}");
            }
        }
    }

    #[test]
    fn alternating_probes_never_flap() {
        let mut b = BackendHealth::default();
        let now = Instant::now();
        for i in 0..100 {
            // Up for two probes, down for two: never three failures in a row.
            let ok = (i / 2) % 2 == 0;
            assert!(b.probe(ok, "x", now, &policy()).is_empty(), "probe {i}");
        }
        assert_eq!(b.history().count(), 0);
    }

    #[test]
    fn ejections_grow_cap_and_start_afresh() {
        let p = policy();
        let t0 = Instant::now();
        let mut table = HealthTable::new(4, p.clone());
        let mut now = t0;
        let mut times = Vec::new();
        for _ in 0..7 {
            let t = table.failed(0, FailureKind::Status5xx, 5, now).expect("ejected");
            assert_eq!(t.kind, TransitionKind::Ejected);
            let until = table.backend(0).and_then(BackendHealth::ejected_until).expect("until");
            times.push((until - now).as_secs());
            now = until;
            let restored = table.restore_due(now);
            assert_eq!(restored.iter().map(|(i, t)| (*i, t.kind)).collect::<Vec<_>>(), [(0, TransitionKind::Restored)]);
        }
        assert_eq!(times, [1, 2, 3, 4, 5, 5, 5]);
        // Healthy for max_ejection: the count starts afresh.
        now += p.max_ejection;
        table.failed(0, FailureKind::Reset, 5, now).expect("ejected");
        assert_eq!(table.backend(0).map(BackendHealth::ejections), Some(1));
    }

    #[test]
    fn error_ejections_are_capped_connect_failures_are_not() {
        let now = Instant::now();
        let mut table = HealthTable::new(4, policy());
        assert!(table.failed(0, FailureKind::Status5xx, 5, now).is_ok());
        assert!(table.failed(1, FailureKind::Timeout, 5, now).is_ok());
        assert_eq!(table.failed(2, FailureKind::Reset, 5, now), Err("ejection cap reached"));
        assert!(table.failed(2, FailureKind::Connect, 1, now).is_ok());
        assert_eq!(table.failed(2, FailureKind::Connect, 1, now), Err("already ejected"));
        assert_eq!(table.eligibility().eligible, [false, false, false, true]);
        let cases: &[(usize, u32, usize)] = &[(4, 50, 2), (1, 50, 1), (3, 10, 1), (10, 0, 0), (10, 100, 10)];
        for &(total, pct, want) in cases {
            assert_eq!(ejection_allowance(total, pct), want, "total={total} pct={pct}");
        }
    }

    #[test]
    fn panic_mode_makes_everyone_but_drained_eligible() {
        let now = Instant::now();
        let mut table = HealthTable::new(4, Policy { panic_threshold: 0.5, max_ejected_percent: 100, ..policy() });
        table.failed(0, FailureKind::Connect, 1, now).expect("eject");
        let e = table.eligibility();
        assert_eq!((e.eligible.as_slice(), e.panic), (&[false, true, true, true][..], false));
        table.failed(1, FailureKind::Connect, 1, now).expect("eject");
        assert!(!table.eligibility().panic, "2 of 4 healthy is not below 50%");
        table.failed(2, FailureKind::Connect, 1, now).expect("eject");
        table.set_drained(3, true, "operator", now);
        let e = table.eligibility();
        assert_eq!((e.eligible.as_slice(), e.panic, e.healthy, e.total), (&[true, true, true, false][..], true, 0, 3));
        let cases: &[(usize, usize, f64, bool)] =
            &[(0, 0, 0.5, false), (1, 4, 0.5, true), (2, 4, 0.5, false), (0, 4, 0.0, false)];
        for &(h, t, th, want) in cases {
            assert_eq!(in_panic(h, t, th), want, "{h}/{t} at {th}");
        }
    }

    #[test]
    fn slow_start_ramps_weight_after_coming_back() {
        let p = Policy { slow_start: Duration::from_secs(10), ..policy() };
        let t0 = Instant::now();
        let mut table = HealthTable::new(2, p);
        assert_eq!(table.weights(&[1, 2], t0), [100, 200], "fresh backends start at full weight");
        table.failed(0, FailureKind::Connect, 1, t0).expect("eject");
        let back = t0 + Duration::from_secs(1);
        let restored = table.restore_due(back);
        let got: Vec<_> = restored.iter().map(|(_, t)| t.kind).collect();
        assert_eq!(got, [TransitionKind::Restored, TransitionKind::SlowStart]);
        let cases: &[(u64, u32)] = &[(0, 10), (5, 55), (9, 91), (10, 100), (60, 100)];
        for &(secs, want) in cases {
            let now = back + Duration::from_secs(secs);
            assert_eq!(table.weights(&[1, 2], now)[0], want, "after {secs} s");
        }
        assert!(table.ramping(back + Duration::from_secs(3)));
        assert!(!table.ramping(back + Duration::from_secs(10)));
        let b = table.backend(0).expect("b");
        assert_eq!(b.state(back, table.policy()), HealthState::SlowStart);
    }

    #[test]
    fn history_is_bounded_and_ordered() {
        let now = Instant::now();
        let mut b = BackendHealth::default();
        let p = Policy { fall: 1, rise: 1, ..policy() };
        for i in 0..40 {
            b.probe(i % 2 == 1, "x", now, &p);
        }
        let got: Vec<_> = b.history().map(|t| t.kind).collect();
        assert_eq!(got.len(), HISTORY);
        assert_eq!(got.last(), Some(&TransitionKind::Up));
    }
}
