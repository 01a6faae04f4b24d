//! Protocol policy: `modern` refuses TLS 1.2, `intermediate` (the default)
//! accepts it, explicit versions and cipher suites override the preset, and
//! bad names are refused at start naming the key.

mod common;

use std::time::Duration;

use common::{Backend, TestProxy, TlsClient, client_config, client_config_tls12, wait_until};
use rustls::{CipherSuite, ProtocolVersion};
use terminus_actors::settings::TlsPolicy;

fn versions(proxy: &TestProxy) -> (Option<ProtocolVersion>, Option<ProtocolVersion>) {
    let one = |cfg| {
        TlsClient::connect(proxy.addr(), cfg).ok().and_then(|mut c| {
            c.send(b"GET / HTTP/1.1\r\nHost: localhost\r\n\r\n").ok()?;
            assert_eq!(c.read_response(false).ok()?.status, 200);
            c.protocol_version()
        })
    };
    (one(client_config(&proxy.certs.ca_der)), one(client_config_tls12(&proxy.certs.ca_der)))
}

#[test]
fn presets_decide_which_versions_connect() {
    let backend = Backend::start("b");
    let intermediate = TestProxy::start(&[backend.addr()]);
    assert_eq!(versions(&intermediate), (Some(ProtocolVersion::TLSv1_3), Some(ProtocolVersion::TLSv1_2)));

    let modern = TestProxy::start_with(&[backend.addr()], |s| s.listener.tls_policy = TlsPolicy::Modern);
    assert_eq!(versions(&modern), (Some(ProtocolVersion::TLSv1_3), None), "TLS 1.2 refused by modern");

    let only12 = TestProxy::start_with(&[backend.addr()], |s| s.listener.tls_versions = vec!["1.2".into()]);
    assert_eq!(versions(&only12), (Some(ProtocolVersion::TLSv1_2), Some(ProtocolVersion::TLSv1_2)));
}

#[test]
fn cipher_suites_override_the_preset() {
    let backend = Backend::start("b");
    let proxy = TestProxy::start_with(&[backend.addr()], |s| {
        s.listener.cipher_suites =
            vec!["TLS13_CHACHA20_POLY1305_SHA256".into(), "TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256".into()];
    });
    let c13 = TlsClient::connect(proxy.addr(), client_config(&proxy.certs.ca_der)).expect("TLS 1.3");
    assert_eq!(c13.cipher_suite(), Some(CipherSuite::TLS13_CHACHA20_POLY1305_SHA256));
    let c12 = TlsClient::connect(proxy.addr(), client_config_tls12(&proxy.certs.ca_der)).expect("TLS 1.2");
    assert_eq!(c12.cipher_suite(), Some(CipherSuite::TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256));
}

#[test]
fn unknown_versions_and_suites_are_refused_naming_the_key() {
    let certs = common::test_certs();
    let cases: &[(&str, fn(&mut terminus_actors::Settings))] = &[
        ("listener.tls_versions[0]", |s| s.listener.tls_versions = vec!["1.1".into()]),
        ("listener.cipher_suites[0]", |s| s.listener.cipher_suites = vec!["TLS_RSA_WITH_RC4_128_SHA".into()]),
        ("listener.cipher_suites", |s| s.listener.cipher_suites = vec!["TLS13_AES_128_GCM_SHA256".into()]),
    ];
    for (key, edit) in cases {
        let mut s = common::settings(&certs, &["127.0.0.1:1".parse().expect("addr")]);
        edit(&mut s);
        let err = s.validate().expect_err(key);
        assert_eq!(err.key, *key, "{err}");
    }
}

#[test]
fn session_tickets_are_issued_when_enabled_and_sessions_resume() {
    let backend = Backend::start("b");
    for tickets in [false, true] {
        let proxy = TestProxy::start_with(&[backend.addr()], |s| s.listener.session_tickets = tickets);
        let config =
            terminus_actors::tls::listener_config(&common::settings(&proxy.certs, &[]).listener).expect("config");
        assert!(!config.ticketer.enabled(), "off by default");
        let mut listener = common::settings(&proxy.certs, &[]).listener;
        listener.session_tickets = tickets;
        let config = terminus_actors::tls::listener_config(&listener).expect("config");
        assert_eq!(config.ticketer.enabled(), tickets);
        for cfg in [client_config(&proxy.certs.ca_der), client_config_tls12(&proxy.certs.ca_der)] {
            let round = |cfg| {
                let mut c = TlsClient::connect(proxy.addr(), cfg).expect("handshake");
                c.send(b"GET / HTTP/1.1\r\nHost: localhost\r\n\r\n").expect("send");
                assert_eq!(c.read_response(false).expect("response").status, 200);
                c.resumed()
            };
            assert!(!round(cfg.clone()), "first connection is a full handshake");
            assert!(round(cfg), "second connection resumes (tickets={tickets})");
        }
    }
}

#[test]
fn instances_sharing_a_ticket_key_file_resume_each_others_sessions() {
    let backend = Backend::start("b");
    let dir = common::fresh_temp_dir("terminus-ticket-key");
    let key = dir.join("ticket.key");
    std::fs::write(&key, [42u8; 48]).expect("write key");
    let shared = |s: &mut terminus_actors::Settings| s.listener.ticket_key_file = key.clone();
    let (a, b) = (TestProxy::start_with(&[backend.addr()], shared), TestProxy::start_with(&[backend.addr()], shared));
    let own = |s: &mut terminus_actors::Settings| s.listener.session_tickets = true;
    let (c, d) = (TestProxy::start_with(&[backend.addr()], own), TestProxy::start_with(&[backend.addr()], own));
    let connect = |proxy: &TestProxy, cfg| {
        let mut conn = TlsClient::connect(proxy.addr(), cfg).expect("handshake");
        conn.send(b"GET / HTTP/1.1\r\nHost: localhost\r\n\r\n").expect("send");
        assert_eq!(conn.read_response(false).expect("response").status, 200);
        conn.resumed()
    };
    // One client session store per pair; certificates differ, so accept any.
    let cfg = common::insecure_client_config();
    assert!(!connect(&a, cfg.clone()));
    assert!(connect(&b, cfg), "a ticket from one instance resumes on the other");
    let cfg = common::insecure_client_config();
    assert!(!connect(&c, cfg.clone()));
    assert!(!connect(&d, cfg), "instances with their own keys do not");

    let mut listener = common::settings(&a.certs, &[]).listener;
    std::fs::write(&key, [1u8; 8]).expect("write short key");
    listener.ticket_key_file = key.clone();
    let err = terminus_actors::tls::listener_config(&listener).expect_err("short key").to_string();
    assert!(err.contains("ticket.key") && err.contains("at least 32"), "{err}");
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn tickets_issued_before_the_key_file_changed_resume_during_the_grace_period() {
    let backend = Backend::start("b");
    for (grace, resumes) in [(Duration::from_secs(3600), true), (Duration::ZERO, false)] {
        let dir = common::fresh_temp_dir("terminus-ticket-grace");
        let key = dir.join("ticket.key");
        std::fs::write(&key, [1u8; 48]).expect("write key");
        let proxy = TestProxy::start_with(&[backend.addr()], |s| {
            s.listener.ticket_key_file = key.clone();
            s.listener.ticket_key_grace = grace;
            s.listener.cert_watch_interval = Duration::from_millis(50);
        });
        let connect = |cfg| {
            let mut conn = TlsClient::connect(proxy.addr(), cfg).expect("handshake");
            conn.send(b"GET / HTTP/1.1\r\nHost: localhost\r\n\r\n").expect("send");
            assert_eq!(conn.read_response(false).expect("response").status, 200);
            conn.resumed()
        };
        // The certificate changes with the key, so that a client trusting
        // only the new CA tells when the files were reloaded; the ticket
        // client accepts any certificate.
        let cfg = common::insecure_client_config();
        assert!(!connect(cfg.clone()), "full handshake, tickets under the first key");
        std::fs::write(&key, [2u8; 48]).expect("rewrite key");
        let next = common::test_certs();
        std::fs::copy(&next.key_path, &proxy.certs.key_path).expect("copy key");
        std::fs::copy(&next.cert_path, &proxy.certs.cert_path).expect("copy cert");
        let next_tls = client_config(&next.ca_der);
        assert!(
            wait_until(Duration::from_secs(5), || TlsClient::connect(proxy.addr(), next_tls.clone()).is_ok()),
            "the changed files were not picked up"
        );
        assert_eq!(connect(cfg.clone()), resumes, "a ticket from before the change, grace={grace:?}");
        assert!(connect(cfg), "a ticket under the new key resumes");
        let _ = std::fs::remove_dir_all(&dir);
    }
}
