//! SNI: certificates chosen by server name (exact, wildcard, default) and,
//! for one name, by the client's signature algorithms (ECDSA or RSA).

mod common;

use std::path::Path;

use common::{Backend, TestCerts, TestProxy, TlsClient, insecure_client_config, insecure_client_config_with};
use rustls::SignatureScheme;
use rustls_pki_types::CertificateDer;
use rustls_pki_types::pem::PemObject;
use terminus_actors::settings::CertificateSettings;

fn entry(c: &TestCerts, names: &[&str]) -> CertificateSettings {
    CertificateSettings {
        cert: c.cert_path.clone(),
        key: c.key_path.clone(),
        names: names.iter().map(|n| n.to_string()).collect(),
        ..Default::default()
    }
}

fn leaf(path: &Path) -> CertificateDer<'static> {
    CertificateDer::pem_file_iter(path).expect("read pem").next().expect("one cert").expect("valid pem")
}

fn served(proxy: &TestProxy, sni: &str) -> CertificateDer<'static> {
    let mut c = TlsClient::connect_sni(proxy.addr(), insecure_client_config(), sni).expect("handshake");
    c.send(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n").expect("send");
    assert_eq!(c.read_response(false).expect("response").status, 200, "sni={sni}");
    c.peer_certificates().into_iter().next().expect("a certificate")
}

#[test]
fn exact_wildcard_and_default_names_pick_their_certificate() {
    let backend = Backend::start("b");
    // Names from the certificates' own SANs, and from an explicit list.
    let exact = common::test_certs_for(&["api.example.test"]);
    let wild = common::test_certs_for(&["*.apps.example.test"]);
    let listed = common::test_certs_for(&["unrelated.test"]);
    let proxy = TestProxy::start_with(&[backend.addr()], |s| {
        s.listener.certificates = vec![entry(&exact, &[]), entry(&wild, &[]), entry(&listed, &["Listed.Example.Test"])];
    });
    let default = leaf(&proxy.certs.cert_path);
    let cases = [
        ("api.example.test", leaf(&exact.cert_path)),
        ("API.Example.Test", leaf(&exact.cert_path)),
        ("one.apps.example.test", leaf(&wild.cert_path)),
        ("listed.example.test", leaf(&listed.cert_path)),
        // A wildcard covers one label only.
        ("a.b.apps.example.test", default.clone()),
        ("apps.example.test", default.clone()),
        ("unrelated.test", default.clone()),
        ("localhost", default.clone()),
    ];
    for (sni, want) in cases {
        assert!(served(&proxy, sni) == want, "sni={sni} got the wrong certificate");
    }
    // No SNI at all (IP literal): the default.
    assert!(served(&proxy, "127.0.0.1") == default);
}

#[test]
fn unknown_name_without_default_certificate_is_refused() {
    let backend = Backend::start("b");
    let exact = common::test_certs_for(&["api.example.test"]);
    let proxy = TestProxy::start_with(&[backend.addr()], |s| {
        s.listener.cert = Default::default();
        s.listener.key = Default::default();
        s.listener.certificates = vec![entry(&exact, &[])];
    });
    assert!(served(&proxy, "api.example.test") == leaf(&exact.cert_path));
    for sni in ["other.example.test", "127.0.0.1"] {
        let err = TlsClient::connect_sni(proxy.addr(), insecure_client_config(), sni).err();
        assert!(err.is_some(), "sni={sni}: handshake must fail without a certificate");
    }
    // The listener still serves after the refusals.
    assert!(served(&proxy, "api.example.test") == leaf(&exact.cert_path));
}

/// A client provider that offers only the given signature schemes.
fn offering(keep: fn(SignatureScheme) -> bool) -> rustls::crypto::CryptoProvider {
    let mut provider = rustls::crypto::aws_lc_rs::default_provider();
    let mapping: Vec<_> =
        provider.signature_verification_algorithms.mapping.iter().filter(|(s, _)| keep(*s)).cloned().collect();
    provider.signature_verification_algorithms.mapping = Box::leak(mapping.into_boxed_slice());
    provider
}

#[test]
fn ecdsa_and_rsa_for_one_name_follow_the_client_algorithms() {
    let backend = Backend::start("b");
    let ecdsa = common::test_certs_for(&["both.example.test"]);
    let rsa = common::test_certs_with(&["both.example.test"], &rcgen::PKCS_RSA_SHA256);
    let proxy = TestProxy::start_with(&[backend.addr()], |s| {
        // RSA listed first: ECDSA is still preferred when the client can verify it.
        s.listener.certificates = vec![entry(&rsa, &[]), entry(&ecdsa, &[])];
    });
    let with = |provider| {
        let c = TlsClient::connect_sni(proxy.addr(), insecure_client_config_with(provider), "both.example.test")
            .expect("handshake");
        c.peer_certificates().into_iter().next().expect("a certificate")
    };
    let is_rsa = |s: SignatureScheme| format!("{s:?}").starts_with("RSA_");
    let is_ecdsa = |s: SignatureScheme| format!("{s:?}").starts_with("ECDSA_");
    assert!(with(rustls::crypto::aws_lc_rs::default_provider()) == leaf(&ecdsa.cert_path), "ECDSA preferred");
    assert!(with(offering(is_rsa)) == leaf(&rsa.cert_path), "RSA-only client gets the RSA certificate");
    assert!(with(offering(is_ecdsa)) == leaf(&ecdsa.cert_path));
}

#[test]
fn an_rsa_companion_of_the_default_certificate_serves_clients_without_sni() {
    let backend = Backend::start("b");
    let rsa = common::test_certs_with(&["localhost", "127.0.0.1"], &rcgen::PKCS_RSA_SHA256);
    let proxy = TestProxy::start_with(&[backend.addr()], |s| s.listener.certificates = vec![entry(&rsa, &[])]);
    let is_rsa = |s: SignatureScheme| format!("{s:?}").starts_with("RSA_");
    // An IP address as the server name: rustls sends no SNI.
    let no_sni = |provider| {
        let c = TlsClient::connect_sni(proxy.addr(), insecure_client_config_with(provider), "127.0.0.1")
            .expect("handshake without SNI");
        c.peer_certificates().into_iter().next().expect("a certificate")
    };
    assert!(no_sni(offering(is_rsa)) == leaf(&rsa.cert_path), "RSA-only client without SNI gets the RSA companion");
    assert!(
        no_sni(rustls::crypto::aws_lc_rs::default_provider()) == leaf(&proxy.certs.cert_path),
        "the ECDSA default is still preferred"
    );
}

fn pem(label: &str, der: &[u8]) -> String {
    const ABC: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut b64 = String::new();
    for chunk in der.chunks(3) {
        let n = chunk.iter().enumerate().fold(0u32, |acc, (i, &b)| acc | u32::from(b) << (16 - 8 * i));
        for i in 0..4 {
            let c = if i <= chunk.len() { ABC[(n >> (18 - 6 * i)) as usize & 63] as char } else { '=' };
            b64.push(c);
        }
    }
    format!("-----BEGIN {label}-----\n{b64}\n-----END {label}-----\n")
}

#[test]
fn certificate_problems_name_the_file() {
    let good = common::test_certs_for(&["a.example.test"]);
    let other = common::test_certs_for(&["b.example.test"]);
    let mut listener = common::settings(&good, &[]).listener;
    listener.certificates =
        vec![CertificateSettings { cert: other.cert_path.clone(), key: good.key_path.clone(), ..Default::default() }];
    let err = terminus_actors::tls::listener_config(&listener).expect_err("mismatched pair").to_string();
    assert!(err.contains(&other.cert_path.display().to_string()) && err.contains("does not match"), "{err}");

    // A key of no type the provider can sign with.
    let junk_key = other.dir.join("junk-key.pem");
    let junk = rustls_pki_types::PrivatePkcs8KeyDer::from(vec![0x30, 0x03, 0x02, 0x01, 0x00]);
    std::fs::write(&junk_key, pem("PRIVATE KEY", junk.secret_pkcs8_der())).expect("write");
    listener.certificates[0] =
        CertificateSettings { cert: other.cert_path.clone(), key: junk_key.clone(), ..Default::default() };
    let err = terminus_actors::tls::listener_config(&listener).expect_err("junk key").to_string();
    assert!(err.contains(&junk_key.display().to_string()) && err.contains("no usable key type"), "{err}");

    // Expired and not yet valid leaves.
    for (before, after, reason) in [
        ((2001, 1, 1), (2002, 3, 4), "expired on 2002-03-04"),
        ((2200, 1, 1), (2201, 1, 1), "not valid before 2200-01-01"),
    ] {
        let pair = rcgen::KeyPair::generate().expect("key");
        let mut params = rcgen::CertificateParams::new(vec!["a.example.test".to_owned()]).expect("params");
        params.not_before = rcgen::date_time_ymd(before.0, before.1, before.2);
        params.not_after = rcgen::date_time_ymd(after.0, after.1, after.2);
        let dated = other.dir.join(format!("dated-{}.pem", before.0));
        std::fs::write(&dated, params.self_signed(&pair).expect("cert").pem()).expect("write");
        let key = other.dir.join(format!("dated-{}.key", before.0));
        std::fs::write(&key, pair.serialize_pem()).expect("write");
        listener.certificates[0] = CertificateSettings { cert: dated.clone(), key, ..Default::default() };
        let err = terminus_actors::tls::listener_config(&listener).expect_err(reason).to_string();
        assert!(err.contains(&dated.display().to_string()) && err.contains(reason), "{err}");
    }

    let missing = other.dir.join("missing.pem");
    listener.certificates[0] =
        CertificateSettings { cert: missing.clone(), key: other.key_path.clone(), ..Default::default() };
    let err = terminus_actors::tls::listener_config(&listener).expect_err("missing file").to_string();
    assert!(err.contains(&missing.display().to_string()), "{err}");
}
