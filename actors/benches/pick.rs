//! Cost of one pick per balancing strategy, over 8 eligible backends.
//!
//! Run briefly on a quiet machine: `cargo bench -p terminus-actors --bench pick`.

use std::hint::black_box;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use criterion::{Criterion, criterion_group, criterion_main};
use terminus_actors::balance::{self, BackendId, BackendView, PickRequest, PoolSnapshot, SharedCursor, key};
use terminus_actors::settings::{StrategyKind, UpstreamSettings};

const BACKENDS: usize = 8;

fn snapshot() -> PoolSnapshot {
    let views = (0..BACKENDS)
        .map(|i| BackendView {
            addr: SocketAddr::from(([127, 0, 0, 1], 9000 + i as u16)),
            weight: 100 * (1 + i as u32 % 3),
            eligible: true,
        })
        .collect();
    let snap = PoolSnapshot::new(views, 1);
    let now = Instant::now();
    for i in 0..BACKENDS {
        snap.load().observe_latency(
            BackendId(i),
            Duration::from_micros(500 + 100 * i as u64),
            now,
            Duration::from_secs(10),
        );
    }
    snap
}

fn picks(c: &mut Criterion) {
    let snap = snapshot();
    // Some load in flight, so least-connections and P2C compare real numbers.
    let _held: Vec<_> =
        (0..BACKENDS).flat_map(|i| (0..i % 3).map(move |_| i)).map(|i| snap.load().begin(BackendId(i))).collect();
    let kinds = StrategyKind::ALL;
    let mut group = c.benchmark_group("pick");
    for kind in kinds {
        let up = UpstreamSettings { strategy: kind, ..UpstreamSettings::default() };
        let mut strategy = balance::strategy(&up, &SharedCursor::default(), 1);
        strategy.reset(&snap);
        let mut n = 0u64;
        group.bench_function(strategy.name(), |b| {
            b.iter(|| {
                n = n.wrapping_add(1);
                let req =
                    PickRequest { key: Some(key::hash64(0, &n.to_le_bytes())), sticky: None, now: Instant::now() };
                black_box(strategy.choose(black_box(&snap), &req, &[]))
            })
        });
    }
    // The in-flight guard every pick takes (two relaxed atomic adds, one sub).
    group.bench_function("in_flight_guard", |b| b.iter(|| drop(black_box(snap.load().begin(BackendId(3))))));
    group.finish();
}

criterion_group! {
    name = benches;
    config = Criterion::default().warm_up_time(Duration::from_millis(300)).measurement_time(Duration::from_secs(1));
    targets = picks
}
criterion_main!(benches);
