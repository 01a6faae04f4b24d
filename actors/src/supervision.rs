//! Restart policy: when a failed actor is restarted, how long to wait first,
//! and when to give up and escalate.
//!
//! Pure policy (no actix, no clock): the supervisor passes `now` in and gets
//! a decision back. The supervisor itself lives in
//! [`crate::actors::supervisor`].

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use serde::Deserialize;

/// Default number of restarts allowed within [`DEFAULT_RESTART_WINDOW`].
pub const DEFAULT_MAX_RESTARTS: u32 = 5;
/// Default window over which restarts are counted.
pub const DEFAULT_RESTART_WINDOW: Duration = Duration::from_secs(60);
/// Default wait before the first restart; doubled for each further restart in the window.
pub const DEFAULT_BACKOFF_INITIAL: Duration = Duration::from_millis(100);
/// Default cap on the wait before a restart.
pub const DEFAULT_BACKOFF_MAX: Duration = Duration::from_secs(10);

/// Which endings of an actor lead to a restart (Erlang/OTP's terms).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RestartKind {
    /// Restarted after a panic and after any stop.
    #[default]
    Permanent,
    /// Restarted after a panic only; a deliberate stop is final.
    Transient,
    /// Never restarted.
    Temporary,
}

/// How an actor incarnation ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Exit {
    /// A handler or one of its futures panicked.
    Panicked,
    /// The actor stopped itself.
    Stopped,
}

impl RestartKind {
    /// Whether an actor that ended with `exit` is restarted at all.
    pub fn restarts_after(self, exit: Exit) -> bool {
        match (self, exit) {
            (RestartKind::Permanent, _) => true,
            (RestartKind::Transient, Exit::Panicked) => true,
            (RestartKind::Transient, Exit::Stopped) | (RestartKind::Temporary, _) => false,
        }
    }
}

/// Restart policy of a supervised actor.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RestartPolicy {
    /// Which endings lead to a restart.
    pub kind: RestartKind,
    /// Restarts allowed within `window`; one more exhausts the budget.
    pub max_restarts: u32,
    /// The window restarts are counted over.
    pub window: Duration,
    /// Wait before the first restart in a window.
    pub backoff_initial: Duration,
    /// Cap on the wait (it doubles per restart in the window).
    pub backoff_max: Duration,
}

impl Default for RestartPolicy {
    fn default() -> Self {
        Self {
            kind: RestartKind::Permanent,
            max_restarts: DEFAULT_MAX_RESTARTS,
            window: DEFAULT_RESTART_WINDOW,
            backoff_initial: DEFAULT_BACKOFF_INITIAL,
            backoff_max: DEFAULT_BACKOFF_MAX,
        }
    }
}

/// What the supervisor does after an actor ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Decision {
    /// Restart after waiting `after`; `remaining` more restarts fit the window.
    Restart {
        /// Backoff before the restart.
        after: Duration,
        /// Restarts still allowed in the current window.
        remaining: u32,
    },
    /// The policy does not restart this kind of exit: the actor stays stopped.
    Done,
    /// Too many restarts within the window: escalate.
    Exhausted,
}

/// Restart history of one supervised actor.
#[derive(Debug, Clone)]
pub struct RestartBudget {
    policy: RestartPolicy,
    recent: VecDeque<Instant>,
    total: u64,
}

impl RestartBudget {
    /// A fresh budget.
    pub fn new(policy: RestartPolicy) -> Self {
        Self { policy, recent: VecDeque::new(), total: 0 }
    }

    /// Restarts granted so far (all windows).
    pub fn total(&self) -> u64 {
        self.total
    }

    /// Records that the actor ended with `exit` at `now` and decides.
    pub fn record(&mut self, exit: Exit, now: Instant) -> Decision {
        if !self.policy.kind.restarts_after(exit) {
            return Decision::Done;
        }
        while self.recent.front().is_some_and(|&t| now.saturating_duration_since(t) >= self.policy.window) {
            self.recent.pop_front();
        }
        if self.recent.len() as u32 >= self.policy.max_restarts {
            return Decision::Exhausted;
        }
        self.recent.push_back(now);
        self.total += 1;
        let n = self.recent.len() as u32; // 1 for the first restart in the window
        let factor = 1u32.checked_shl(n - 1).unwrap_or(u32::MAX);
        let after = self.policy.backoff_initial.saturating_mul(factor).min(self.policy.backoff_max);
        Decision::Restart { after, remaining: self.policy.max_restarts - n }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn policy(kind: RestartKind) -> RestartPolicy {
        RestartPolicy {
            kind,
            max_restarts: 3,
            window: Duration::from_secs(10),
            backoff_initial: Duration::from_millis(100),
            backoff_max: Duration::from_millis(300),
        }
    }

    #[test]
    fn kinds_decide_which_exits_restart() {
        let cases = [
            (RestartKind::Permanent, Exit::Panicked, true),
            (RestartKind::Permanent, Exit::Stopped, true),
            (RestartKind::Transient, Exit::Panicked, true),
            (RestartKind::Transient, Exit::Stopped, false),
            (RestartKind::Temporary, Exit::Panicked, false),
            (RestartKind::Temporary, Exit::Stopped, false),
        ];
        for (kind, exit, want) in cases {
            assert_eq!(kind.restarts_after(exit), want, "{kind:?} {exit:?}");
            let got = RestartBudget::new(policy(kind)).record(exit, Instant::now());
            assert_eq!(matches!(got, Decision::Restart { .. }), want, "{kind:?} {exit:?}");
        }
    }

    #[test]
    fn backoff_doubles_then_caps_and_budget_exhausts() {
        let t0 = Instant::now();
        let mut b = RestartBudget::new(policy(RestartKind::Permanent));
        let ms = Duration::from_millis;
        let steps = [
            (0, Decision::Restart { after: ms(100), remaining: 2 }),
            (1, Decision::Restart { after: ms(200), remaining: 1 }),
            (2, Decision::Restart { after: ms(300), remaining: 0 }),
            (3, Decision::Exhausted),
            // The first restart (t=0) leaves the 10 s window: one slot frees up.
            (10, Decision::Restart { after: ms(300), remaining: 0 }),
            (10, Decision::Exhausted),
            // Long quiet period: the window empties, backoff starts over.
            (100, Decision::Restart { after: ms(100), remaining: 2 }),
        ];
        for (i, (at, want)) in steps.into_iter().enumerate() {
            assert_eq!(b.record(Exit::Panicked, t0 + Duration::from_secs(at)), want, "step {i}");
        }
        assert_eq!(b.total(), 5);
    }

    #[test]
    fn zero_budget_escalates_at_once() {
        let mut p = policy(RestartKind::Permanent);
        p.max_restarts = 0;
        assert_eq!(RestartBudget::new(p).record(Exit::Panicked, Instant::now()), Decision::Exhausted);
    }
}
