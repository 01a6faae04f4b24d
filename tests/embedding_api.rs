//! The embedding API: two proxies in one System, live pool control,
//! ApplySettings (validated, applied as a diff), certificate replacement.

mod common;

use std::collections::HashSet;
use std::time::Duration;

use common::embedded::{Embedded, block};
use common::{Backend, TlsClient, client_config, test_certs, wait_until};
use terminus_actors::{
    AddBackend, ApplyError, ApplySettings, DrainBackend, PoolControlError, PoolMembers, PoolStatus, RemoveBackend,
    ReplaceCertificates, SetWeight,
};

fn names(e: &Embedded, proxy: usize, n: usize) -> HashSet<String> {
    (0..n).map(|_| e.get(proxy, "/").text()).collect()
}

#[test]
fn two_proxies_in_one_system_share_nothing() {
    let (a, b, c) = (Backend::start("a"), Backend::start("b"), Backend::start("c"));
    let (a_addr, b_addr) = (a.addr(), b.addr());
    let e = Embedded::start(
        &[],
        vec![
            Box::new(move |s| {
                s.upstream.backends = vec![terminus_actors::BackendSettings { address: a_addr, weight: 1 }]
            }),
            Box::new(move |s| {
                s.upstream.backends = vec![terminus_actors::BackendSettings { address: b_addr, weight: 1 }]
            }),
        ],
    );
    assert_ne!(e.proxy(0).addr, e.proxy(1).addr);
    assert_eq!(names(&e, 0, 3), HashSet::from(["a".to_owned()]));
    assert_eq!(names(&e, 1, 3), HashSet::from(["b".to_owned()]));
    block(e.proxy(0).pool.send(AddBackend { address: c.addr(), weight: 1 })).unwrap().unwrap();
    assert!(wait_until(Duration::from_secs(3), || names(&e, 0, 4).contains("c")));
    assert_eq!(names(&e, 1, 4), HashSet::from(["b".to_owned()]), "the other proxy's pool is untouched");
    assert_eq!(block(e.proxy(1).pool.send(PoolStatus)).unwrap().len(), 1);
    assert_eq!(e.status(0).totals.requests[1] > 0, e.status(1).totals.requests[1] > 0);
    assert_ne!(e.status(0).listen, e.status(1).listen);
}

#[test]
fn backends_are_added_drained_reweighted_and_removed_at_run_time() {
    let (a, b) = (Backend::start("a"), Backend::start("b"));
    let e = Embedded::start(
        &[a.addr()],
        vec![Box::new(|s| s.upstream.strategy = terminus_actors::StrategyKind::WeightedRoundRobin)],
    );
    let pool = e.proxy(0).pool.clone();
    let send = |m| block(pool.send(m)).unwrap();
    assert_eq!(send(AddBackend { address: a.addr(), weight: 1 }), Err(PoolControlError::AlreadyPresent(a.addr())));
    assert_eq!(send(AddBackend { address: b.addr(), weight: 0 }), Err(PoolControlError::BadWeight(0)));
    send(AddBackend { address: b.addr(), weight: 1 }).unwrap();
    assert!(wait_until(Duration::from_secs(3), || names(&e, 0, 4).len() == 2));

    // Weight 3:1 → three of every four requests go to b.
    block(pool.send(SetWeight { address: b.addr(), weight: 3 })).unwrap().unwrap();
    std::thread::sleep(Duration::from_millis(100));
    let to_b = (0..40).filter(|_| e.get(0, "/").text() == "b").count();
    assert_eq!(to_b, 30, "weights 3:1");

    // Drain a: no new requests reach it, an established connection is kept.
    let mut kept = e.client(0);
    kept.send(b"GET /slow?ms=300 HTTP/1.1\r\nHost: t\r\n\r\n").unwrap();
    block(pool.send(DrainBackend { addr: a.addr(), drain: true })).unwrap().unwrap();
    let _ = kept.read_response(false).expect("in-flight request finishes");
    std::thread::sleep(Duration::from_millis(100));
    assert_eq!(names(&e, 0, 6), HashSet::from(["b".to_owned()]));
    block(pool.send(DrainBackend { addr: a.addr(), drain: false })).unwrap().unwrap();
    assert!(wait_until(Duration::from_secs(3), || names(&e, 0, 8).contains("a")));

    block(pool.send(RemoveBackend { address: a.addr() })).unwrap().unwrap();
    assert_eq!(block(pool.send(PoolMembers)).unwrap(), vec![(b.addr(), 3)]);
    assert_eq!(
        block(pool.send(RemoveBackend { address: b.addr() })).unwrap(),
        Err(PoolControlError::LastBackend(b.addr()))
    );
    assert_eq!(
        block(pool.send(RemoveBackend { address: a.addr() })).unwrap(),
        Err(PoolControlError::NotFound(a.addr()))
    );
}

#[test]
fn apply_settings_rejects_bad_settings_and_applies_good_ones_as_a_diff() {
    let (a, b) = (Backend::start("a"), Backend::start("b"));
    let e = Embedded::start(&[a.addr()], vec![Box::new(|_| {})]);
    let control = e.proxy(0).control.clone();
    let base = common::settings(&e.certs, &[a.addr()]);

    let mut bad = base.clone();
    bad.upstream.backends[0].weight = 0;
    let err = block(control.send(ApplySettings(bad))).unwrap().unwrap_err();
    assert!(matches!(err, ApplyError::Settings(ref s) if s.key == "upstream.backends[0].weight"), "{err}");
    let mut bad_cert = base.clone();
    bad_cert.listener.cert = "/nonexistent.pem".into();
    assert!(matches!(block(control.send(ApplySettings(bad_cert))).unwrap(), Err(ApplyError::Tls(_))));
    assert_eq!(names(&e, 0, 3), HashSet::from(["a".to_owned()]), "old settings keep serving");

    let mut good = base.clone();
    good.upstream.backends.push(terminus_actors::BackendSettings { address: b.addr(), weight: 2 });
    good.http.via = true;
    let report = block(control.send(ApplySettings(good.clone()))).unwrap().unwrap();
    assert_eq!(report.added, vec![b.addr()]);
    assert_eq!(report.restart_required, vec!["http"]);
    assert!(wait_until(Duration::from_secs(3), || names(&e, 0, 4).len() == 2));

    good.upstream.backends.remove(0);
    good.upstream.backends[0].weight = 5;
    let report = block(control.send(ApplySettings(good))).unwrap().unwrap();
    assert_eq!((report.removed, report.reweighted), (vec![a.addr()], vec![b.addr()]));
    assert!(wait_until(Duration::from_secs(3), || names(&e, 0, 4) == HashSet::from(["b".to_owned()])));
}

#[test]
fn replaced_certificates_serve_new_handshakes_and_keep_old_sessions() {
    let a = Backend::start("a");
    let e = Embedded::start(&[a.addr()], vec![Box::new(|_| {})]);
    let mut old = e.client(0);
    let next = test_certs();
    let next_tls = client_config(&next.ca_der);
    assert!(TlsClient::connect(e.proxy(0).addr, next_tls.clone()).is_err(), "the new CA is not yet in use");
    let replace = ReplaceCertificates { cert: next.cert_path.clone(), key: next.key_path.clone() };
    block(e.proxy(0).control.send(replace)).unwrap().unwrap();
    assert!(wait_until(Duration::from_secs(3), || TlsClient::connect(e.proxy(0).addr, next_tls.clone()).is_ok()));
    assert_eq!(common::https_get(e.proxy(0).addr, &next_tls, "/").text(), "a");
    old.send(b"GET / HTTP/1.1\r\nHost: t\r\n\r\n").unwrap();
    assert_eq!(old.read_response(false).unwrap().text(), "a", "an established session keeps its TLS state");
    let bad = ReplaceCertificates { cert: "/nonexistent.pem".into(), key: next.key_path.clone() };
    assert!(block(e.proxy(0).control.send(bad)).unwrap().is_err());
    assert_eq!(common::https_get(e.proxy(0).addr, &next_tls, "/").text(), "a", "a bad replacement changes nothing");
}

#[test]
fn apply_settings_moves_the_listener_and_keeps_established_connections() {
    let a = Backend::start("a");
    let e = Embedded::start(&[a.addr()], vec![Box::new(|_| {})]);
    let control = e.proxy(0).control.clone();
    let old_addr = e.proxy(0).addr;
    let mut established = e.client(0);

    // An address that is taken rejects the whole reload.
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let mut busy = common::settings(&e.certs, &[a.addr()]);
    busy.listener.address = taken.local_addr().unwrap();
    let err = block(control.send(ApplySettings(busy))).unwrap().unwrap_err();
    assert!(matches!(err, ApplyError::Bind { .. }), "{err}");
    assert_eq!(common::https_get(old_addr, &e.tls, "/").text(), "a", "the old listener keeps serving");

    let free = common::dead_addr();
    let mut moved = common::settings(&e.certs, &[a.addr()]);
    moved.listener.address = free;
    let report = block(control.send(ApplySettings(moved))).unwrap().unwrap();
    assert_eq!(report.moved_listener, Some(free));
    assert!(report.restart_required.is_empty(), "{:?}", report.restart_required);
    assert!(wait_until(Duration::from_secs(3), || TlsClient::connect(free, e.tls.clone()).is_ok()));
    assert_eq!(common::https_get(free, &e.tls, "/").text(), "a");
    assert!(
        wait_until(Duration::from_secs(3), || std::net::TcpStream::connect(old_addr).is_err()),
        "the old socket is closed"
    );
    established.send(b"GET / HTTP/1.1\r\nHost: t\r\n\r\n").unwrap();
    assert_eq!(established.read_response(false).unwrap().text(), "a", "established connections carry on");
}
