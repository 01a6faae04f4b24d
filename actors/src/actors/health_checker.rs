//! The HealthChecker actor: active HTTP checks of one backend.
//!
//! - **Owns**: its backend's probe request, timers and at most one probe in
//!   flight.
//! - **Receives**: nothing; a timer starts each round.
//! - **Sends**: [`ProbeCompleted`] to the BackendPool after each probe (the
//!   pool applies rise/fall and publishes).
//! - **Restart policy**: permanent (supervised by the pool's arbiter). A
//!   restart forgets the probe in flight and re-arms the round timer.
//!
//! Every probe runs on a fresh connection under `upstream.health.timeout`:
//! one that hangs counts as a failure at its timeout. Each backend has its
//! own checker, so a hung backend never delays the checks of another; a
//! round that finds the previous probe still running (timeout longer than
//! the interval) is skipped.

use std::net::SocketAddr;
use std::ops::RangeInclusive;
use std::time::{Duration, SystemTime};

use actix::prelude::*;
use log::debug;

use crate::actors::backend_pool::ProbeCompleted;
use crate::balance::{BackendId, SplitMix64};
use crate::health::probe::{self, ProbeError};
use crate::runtime;
use crate::settings::HealthSettings;

/// Probes one backend.
pub struct HealthChecker {
    id: BackendId,
    addr: SocketAddr,
    request: std::sync::Arc<[u8]>,
    expect: RangeInclusive<u16>,
    interval: Duration,
    timeout: Duration,
    jitter: Duration,
    rng: SplitMix64,
    pool: Recipient<ProbeCompleted>,
    probing: bool,
    /// Set by [`Retire`]: the backend left the pool; stop for good.
    retired: bool,
}

/// The backend left the pool: stop probing (and do not come back).
#[derive(Message, Debug)]
#[rtype(result = "()")]
pub struct Retire;

impl Handler<Retire> for HealthChecker {
    type Result = ();

    fn handle(&mut self, _: Retire, ctx: &mut Context<Self>) {
        self.retired = true;
        ctx.stop();
    }
}

impl HealthChecker {
    /// A checker of backend `id` at `addr` reporting to `pool`.
    pub fn new(id: BackendId, addr: SocketAddr, settings: &HealthSettings, pool: Recipient<ProbeCompleted>) -> Self {
        let host = if settings.host.is_empty() { addr.to_string() } else { settings.host.clone() };
        let seed = SystemTime::now().duration_since(SystemTime::UNIX_EPOCH).map_or(0, |d| d.as_nanos() as u64);
        Self {
            id,
            addr,
            request: probe::request(&settings.method, &settings.path, &host).into(),
            // Validation guarantees a range; 200-399 if not.
            expect: settings.status_range().unwrap_or(200..=399),
            interval: settings.interval,
            timeout: settings.timeout,
            jitter: settings.jitter,
            rng: SplitMix64::new(seed ^ (id.0 as u64).wrapping_mul(0x9E37_79B9)),
            pool,
            probing: false,
            retired: false,
        }
    }

    fn jittered(&mut self, base: Duration) -> Duration {
        let jitter_ms = self.jitter.as_millis() as usize;
        if jitter_ms == 0 {
            return base;
        }
        base + Duration::from_millis(self.rng.below(jitter_ms + 1) as u64)
    }

    fn schedule(&mut self, ctx: &mut Context<Self>, delay: Duration) {
        if self.retired {
            ctx.stop();
            return;
        }
        ctx.run_later(delay, |act, ctx| {
            if act.retired {
                ctx.stop();
                return;
            }
            act.round(ctx);
            let next = act.jittered(act.interval);
            act.schedule(ctx, next);
        });
    }

    fn round(&mut self, ctx: &mut Context<Self>) {
        if self.probing {
            debug!("probe skipped, previous still running addr={}", self.addr);
            return;
        }
        self.probing = true;
        let (addr, timeout, request) = (self.addr, self.timeout, self.request.clone());
        let fut = async move {
            let attempt = async {
                let mut stream = runtime::connect(addr, timeout).await?;
                probe::probe(&mut stream, &request).await
            };
            match runtime::timeout(timeout, attempt).await {
                Ok(result) => result,
                Err(_) => Err(ProbeError::Io(std::io::ErrorKind::TimedOut.into())),
            }
        };
        ctx.spawn(fut.into_actor(self).map(|result, act, _| {
            act.probing = false;
            let (ok, detail) = match result {
                Ok(status) => (act.expect.contains(&status), format!("status={status}")),
                Err(ProbeError::Io(e)) if e.kind() == std::io::ErrorKind::TimedOut => {
                    (false, format!("timeout after {} ms", act.timeout.as_millis()))
                }
                Err(e) => (false, e.to_string()),
            };
            act.pool.do_send(ProbeCompleted { id: act.id, ok, detail });
        }));
    }
}

impl Actor for HealthChecker {
    type Context = Context<Self>;

    /// Runs at first start and after each restart (a restart clears timers).
    fn started(&mut self, ctx: &mut Context<Self>) {
        let first = self.jittered(Duration::ZERO);
        self.schedule(ctx, first);
    }
}

impl Supervised for HealthChecker {
    fn restarting(&mut self, _: &mut Context<Self>) {
        self.probing = false;
        log::warn!("health checker restarting addr={}", self.addr);
    }
}
