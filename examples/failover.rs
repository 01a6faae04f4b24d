//! Failover under load, as a report: three loopback backends behind an
//! in-process Terminus with active and passive health on, closed-loop HTTPS
//! clients sending GETs, and per phase a backend is killed, restarted, made
//! to answer 500s, made to hang, recovered. Prints what the clients saw in
//! each phase and how the pool saw the backends; exits 1 if any client saw
//! an error. Driven by `bench/failover.sh`.
//!
//! Usage: `cargo run --example failover -- [PHASE_MS] [CLIENTS]` (defaults 2000, 4).

#[path = "../tests/chaos/mod.rs"]
mod chaos;
#[path = "../tests/common/mod.rs"]
mod common;

use std::time::{Duration, Instant};

use chaos::{ChaosBackend, LoadGen, Mode};
use common::TestProxy;

fn main() {
    let mut args = std::env::args().skip(1);
    let phase = Duration::from_millis(args.next().and_then(|a| a.parse().ok()).unwrap_or(2000));
    let clients: usize = args.next().and_then(|a| a.parse().ok()).unwrap_or(4);
    let backends: Vec<ChaosBackend> = ["a", "b", "c"].iter().map(|n| ChaosBackend::start(n)).collect();
    let addrs: Vec<_> = backends.iter().map(ChaosBackend::addr).collect();
    let proxy = TestProxy::start_with(&addrs, |s| {
        s.runtime.workers = 2;
        let up = &mut s.upstream;
        up.health.enabled = true;
        up.health.interval = Duration::from_millis(200);
        up.health.timeout = Duration::from_millis(300);
        up.health.jitter = Duration::from_millis(50);
        up.outlier.consecutive_errors = 3;
        up.down_backoff = Duration::from_millis(500);
        up.response_timeout = Duration::from_millis(500);
    });
    let (a, b, c) = (&backends[0], &backends[1], &backends[2]);
    type Step<'a> = (&'a str, Box<dyn Fn() + 'a>);
    let steps: Vec<Step> = vec![
        ("baseline", Box::new(|| {})),
        ("kill a", Box::new(|| a.stop())),
        ("restart a", Box::new(|| a.restart())),
        ("b answers 500", Box::new(|| b.set_mode(Mode::Fail))),
        ("b recovers", Box::new(|| b.set_mode(Mode::Ok))),
        ("c hangs", Box::new(|| c.set_mode(Mode::Hang))),
        ("c recovers", Box::new(|| c.set_mode(Mode::Ok))),
    ];
    println!("failover: {} phases of {} ms, {clients} clients, backends {addrs:?}", steps.len(), phase.as_millis());
    println!("{:<14} {:>8} {:>7} {:>9}  served by / pool view", "phase", "ok", "errors", "req/s");
    let load = LoadGen::start(&proxy, clients, "/");
    let mut total_errors = 0;
    let mut last = load.tally();
    for (name, step) in &steps {
        step();
        let start = Instant::now();
        std::thread::sleep(phase);
        let now = load.tally();
        let ok = now.ok - last.ok;
        let errors = now.error_count - last.error_count;
        total_errors += errors;
        let by: Vec<String> = ["a", "b", "c"]
            .iter()
            .map(|n| format!("{n}={}", now.by_backend.get(*n).unwrap_or(&0) - last.by_backend.get(*n).unwrap_or(&0)))
            .collect();
        let pool: Vec<String> =
            proxy.pool_status().iter().map(|s| format!("{:?}{}", s.state, if s.up { "" } else { "(out)" })).collect();
        let rate = ok as f64 / start.elapsed().as_secs_f64();
        println!("{name:<14} {ok:>8} {errors:>7} {rate:>9.0}  {} | {}", by.join(" "), pool.join(" "));
        last = now;
    }
    let tally = load.finish();
    for s in proxy.pool_status() {
        println!("{} transitions:", s.addr);
        for t in &s.history {
            println!("  -{:>6} ms {:<10} {}", t.ago.as_millis(), t.kind.as_str(), t.reason);
        }
    }
    println!("total ok={} errors={} first errors={:?}", tally.ok, tally.error_count, tally.errors);
    println!("{} passed, {} failed", usize::from(total_errors == 0), usize::from(total_errors != 0));
    std::process::exit(i32::from(total_errors != 0));
}
