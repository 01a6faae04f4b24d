//! The strategies against real backends: load-aware strategies avoid a slow
//! backend, Maglev keeps keys in place when a backend leaves, sticky
//! cookies pin a client, and WhyBackend explains a pick.

mod chaos;
mod common;

use std::collections::HashMap;
use std::time::Duration;

use chaos::{ChaosBackend, LoadGen};
use common::TestProxy;
use terminus_actors::{HashKey, StrategyKind, WhyBackend};

/// Share of 200s served by `name` under 4 closed-loop clients for 1.5 s,
/// with backend "slow" answering 10x slower (30 ms vs 3 ms).
fn slow_share(kind: StrategyKind) -> (f64, HashMap<String, usize>) {
    let backends = [ChaosBackend::start("fast1"), ChaosBackend::start("fast2"), ChaosBackend::start("slow")];
    for b in &backends[..2] {
        b.set_delay(3);
    }
    backends[2].set_delay(30);
    let addrs: Vec<_> = backends.iter().map(ChaosBackend::addr).collect();
    let proxy = TestProxy::start_with(&addrs, |s| {
        s.runtime.workers = 2;
        s.upstream.strategy = kind;
    });
    let load = LoadGen::start(&proxy, 4, "/");
    std::thread::sleep(Duration::from_millis(1500));
    let tally = load.finish();
    assert_eq!(tally.error_count, 0, "{:?}", tally.errors);
    let slow = tally.by_backend.get("slow").copied().unwrap_or(0);
    (slow as f64 / tally.ok.max(1) as f64, tally.by_backend)
}

#[test]
fn least_connections_and_p2c_send_less_to_a_slow_backend() {
    let (rr, rr_counts) = slow_share(StrategyKind::RoundRobin);
    let (lc, lc_counts) = slow_share(StrategyKind::LeastConnections);
    let (p2c, p2c_counts) = slow_share(StrategyKind::PowerOfTwoChoices);
    eprintln!("slow share: rr={rr:.3} {rr_counts:?} lc={lc:.3} {lc_counts:?} p2c={p2c:.3} {p2c_counts:?}");
    // Round robin gives it its third regardless of speed.
    assert!((0.28..=0.38).contains(&rr), "round robin share {rr:.3}");
    // The load-aware strategies give it well under half of that.
    assert!(lc < rr / 2.0, "least connections share {lc:.3} vs round robin {rr:.3}");
    assert!(p2c < rr / 2.0, "p2c share {p2c:.3} vs round robin {rr:.3}");
}

/// Backend name serving each of `keys` user keys.
fn placement(proxy: &TestProxy, keys: usize) -> Vec<String> {
    let mut c = proxy.client();
    (0..keys)
        .map(|k| {
            c.send(format!("GET / HTTP/1.1\r\nHost: localhost\r\nX-User: user-{k}\r\n\r\n").as_bytes()).expect("send");
            let r = c.read_response(false).expect("response");
            assert_eq!(r.status, 200);
            r.text()
        })
        .collect()
}

#[test]
fn maglev_keeps_keys_in_place_when_one_of_n_leaves() {
    const N: usize = 4;
    const KEYS: usize = 400;
    let backends: Vec<ChaosBackend> = (0..N).map(|i| ChaosBackend::start(&format!("m{i}"))).collect();
    let addrs: Vec<_> = backends.iter().map(ChaosBackend::addr).collect();
    let proxy = TestProxy::start_with(&addrs, |s| {
        s.runtime.workers = 2;
        s.upstream.strategy = StrategyKind::Maglev;
        s.upstream.hash_key = HashKey::Header("X-User".into());
        s.upstream.down_backoff = Duration::from_millis(500);
    });
    let before = placement(&proxy, KEYS);
    assert_eq!(before, placement(&proxy, KEYS), "the same key goes to the same backend");
    backends[1].stop();
    let after = placement(&proxy, KEYS);
    let kept = before.iter().zip(&after).filter(|(b, a)| b == a).count();
    let owned = before.iter().filter(|b| b.as_str() == "m1").count();
    eprintln!("maglev kept {kept}/{KEYS}; the leaving backend owned {owned}");
    assert!(after.iter().all(|a| a != "m1"));
    // Exactly the leaving backend's keys move; every other key stays.
    assert_eq!(kept, KEYS - owned, "keys of the remaining backends moved");
    // It owns 1/N of the table (unit-tested to ±1 slot), so 1/N of the key
    // space; this sample of 400 keys (over random ports) differs by sampling
    // noise: σ ≈ 8.7, so 4σ ≈ 35.
    assert!(owned <= KEYS / N + 35, "the leaving backend owned {owned} of {KEYS} keys");
    // It comes back: every key returns home.
    backends[1].restart();
    assert!(
        common::wait_until(Duration::from_secs(5), || placement(&proxy, KEYS) == before),
        "keys did not return to the restored backend"
    );
}

#[test]
fn why_backend_names_the_maglev_choice() {
    let backends: Vec<ChaosBackend> = (0..3).map(|i| ChaosBackend::start(&format!("w{i}"))).collect();
    let addrs: Vec<_> = backends.iter().map(ChaosBackend::addr).collect();
    let proxy = TestProxy::start_with(&addrs, |s| {
        s.upstream.strategy = StrategyKind::Maglev;
        s.upstream.hash_key = HashKey::Header("X-User".into());
    });
    let served = placement(&proxy, 1).remove(0);
    let why = futures_lite::future::block_on(proxy.pool().send(WhyBackend { key: "user-0".into() })).expect("answer");
    let named = backends.iter().position(|b| Some(b.addr()) == why.backend).map(|i| format!("w{i}"));
    assert_eq!(named.as_deref(), Some(served.as_str()), "{why:?}");
    assert_eq!(why.strategy, "maglev");
    assert!(why.reason.contains("slot"), "{why:?}");
}

#[test]
fn sticky_cookie_pins_the_client_without_naming_the_backend() {
    let backends: Vec<ChaosBackend> = (0..3).map(|i| ChaosBackend::start(&format!("s{i}"))).collect();
    let addrs: Vec<_> = backends.iter().map(ChaosBackend::addr).collect();
    let proxy = TestProxy::start_with(&addrs, |s| {
        s.upstream.strategy = StrategyKind::Sticky;
        s.upstream.sticky.secret = "test secret".into();
    });
    let mut c = proxy.client();
    c.send(b"GET / HTTP/1.1\r\nHost: localhost\r\n\r\n").expect("send");
    let first = c.read_response(false).expect("response");
    let set = first.header("set-cookie").expect("a sticky cookie is set").to_owned();
    assert!(set.starts_with("terminus_sticky=") && set.contains("HttpOnly") && set.contains("Secure"), "{set}");
    let value = set.split(';').next().and_then(|kv| kv.split_once('=')).map(|(_, v)| v.to_owned()).expect("value");
    for a in &addrs {
        assert!(!set.contains(&a.port().to_string()) && !set.contains("127.0.0.1"), "cookie leaks {a}: {set}");
    }
    let home = first.text();
    for _ in 0..10 {
        c.send(format!("GET / HTTP/1.1\r\nHost: localhost\r\nCookie: a=1; terminus_sticky={value}\r\n\r\n").as_bytes())
            .expect("send");
        let r = c.read_response(false).expect("response");
        assert_eq!(r.text(), home);
        assert!(r.header("set-cookie").is_none(), "a valid cookie is not set again");
    }
    // A forged cookie is ignored and replaced.
    c.send(b"GET / HTTP/1.1\r\nHost: localhost\r\nCookie: terminus_sticky=00000000000000000000000000000000\r\n\r\n")
        .expect("send");
    let r = c.read_response(false).expect("response");
    assert_eq!(r.status, 200);
    assert!(r.header("set-cookie").is_some());
    // Its backend leaves: the client moves and gets a new cookie.
    let idx: usize = home.trim_start_matches('s').parse().expect("index");
    backends[idx].stop();
    c.send(format!("GET / HTTP/1.1\r\nHost: localhost\r\nCookie: terminus_sticky={value}\r\n\r\n").as_bytes())
        .expect("send");
    let moved = c.read_response(false).expect("response");
    assert_eq!(moved.status, 200);
    assert_ne!(moved.text(), home);
    assert!(moved.header("set-cookie").is_some_and(|v| !v.contains(&value)));
}
