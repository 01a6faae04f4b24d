//! Client-certificate authentication: required or optional per listener,
//! verified against a CA bundle; the verified subject reaches backends in
//! the configured header, and a client's own copy never does.

mod common;

use std::sync::Arc;

use common::{Backend, TestProxy, TlsClient};
use rcgen::{BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, KeyPair};
use rustls::ClientConfig;
use rustls_pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};
use terminus_actors::settings::ClientAuthMode;

/// A client CA (PEM) and a client certificate + key signed by it.
struct ClientPki {
    ca_pem: String,
    chain: Vec<CertificateDer<'static>>,
    key: Vec<u8>,
}

fn client_pki(cn: &str) -> ClientPki {
    let ca_key = KeyPair::generate().expect("key");
    let mut ca = CertificateParams::new(Vec::<String>::new()).expect("params");
    ca.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca.distinguished_name.push(DnType::CommonName, "Client CA");
    let ca_cert = ca.self_signed(&ca_key).expect("ca");
    let key = KeyPair::generate().expect("key");
    let mut leaf = CertificateParams::new(Vec::<String>::new()).expect("params");
    leaf.distinguished_name = rcgen::DistinguishedName::new();
    leaf.distinguished_name.push(DnType::OrganizationName, "Acme");
    leaf.distinguished_name.push(DnType::CommonName, cn);
    leaf.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
    let cert = leaf.signed_by(&key, &ca_cert, &ca_key).expect("leaf");
    ClientPki { ca_pem: ca_cert.pem(), chain: vec![cert.der().clone()], key: key.serialize_der() }
}

fn client(proxy: &TestProxy, pki: Option<&ClientPki>) -> Arc<ClientConfig> {
    let mut roots = rustls::RootCertStore::empty();
    roots.add(proxy.certs.ca_der.clone()).expect("CA");
    let builder = ClientConfig::builder_with_provider(Arc::new(rustls::crypto::aws_lc_rs::default_provider()))
        .with_safe_default_protocol_versions()
        .expect("versions")
        .with_root_certificates(roots);
    let mut cfg = match pki {
        Some(p) => builder
            .with_client_auth_cert(p.chain.clone(), PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(p.key.clone())))
            .expect("client cert"),
        None => builder.with_no_client_auth(),
    };
    cfg.alpn_protocols = vec![b"http/1.1".to_vec()];
    Arc::new(cfg)
}

/// Sends a request with a forged identity header; the status, or `None`
/// when the handshake or the first exchange fails.
fn forged_get(proxy: &TestProxy, cfg: Arc<ClientConfig>) -> Option<u16> {
    let mut c = TlsClient::connect(proxy.addr(), cfg).ok()?;
    c.send(b"GET / HTTP/1.1\r\nHost: localhost\r\nX-Client-Subject: CN=admin\r\n\r\n").ok()?;
    c.read_response(false).ok().map(|r| r.status)
}

fn start(backend: &Backend, trusted: &ClientPki, mode: ClientAuthMode) -> TestProxy {
    let ca = trusted.ca_pem.clone();
    TestProxy::start_with(&[backend.addr()], move |s| {
        let path = s.listener.cert.with_file_name(format!("client-ca-{mode:?}.pem"));
        std::fs::write(&path, ca).expect("write CA");
        s.listener.client_auth.mode = mode;
        s.listener.client_auth.ca = path;
        s.listener.client_auth.identity_header = "X-Client-Subject".into();
    })
}

#[test]
fn required_mode_refuses_clients_without_a_trusted_certificate() {
    let backend = Backend::start("b");
    let (trusted, stranger) = (client_pki("alice"), client_pki("mallory"));
    let proxy = start(&backend, &trusted, ClientAuthMode::Required);
    assert_eq!(forged_get(&proxy, client(&proxy, None)), None, "no certificate");
    assert_eq!(forged_get(&proxy, client(&proxy, Some(&stranger))), None, "untrusted certificate");
    assert_eq!(backend.requests(), 0);
    assert_eq!(forged_get(&proxy, client(&proxy, Some(&trusted))), Some(200));
    let rec = backend.last_request().expect("forwarded");
    assert_eq!(rec.headers_named("x-client-subject"), vec!["O=Acme,CN=alice"], "verified subject only");
}

#[test]
fn optional_mode_serves_anonymous_clients_without_the_header() {
    let backend = Backend::start("b");
    let trusted = client_pki("bob");
    let proxy = start(&backend, &trusted, ClientAuthMode::Optional);
    assert_eq!(forged_get(&proxy, client(&proxy, None)), Some(200));
    let rec = backend.last_request().expect("forwarded");
    assert!(rec.headers_named("x-client-subject").is_empty(), "forged header stripped: {:?}", rec);
    assert_eq!(forged_get(&proxy, client(&proxy, Some(&trusted))), Some(200));
    assert_eq!(backend.last_request().expect("forwarded").headers_named("x-client-subject"), vec!["O=Acme,CN=bob"]);
    assert_eq!(forged_get(&proxy, client(&proxy, Some(&client_pki("eve")))), None, "a bad certificate is refused");
}

#[test]
fn identity_header_is_stripped_even_without_client_auth() {
    let backend = Backend::start("b");
    let proxy = TestProxy::start_with(&[backend.addr()], |s| {
        s.listener.client_auth.identity_header = "X-Client-Subject".into();
    });
    assert_eq!(forged_get(&proxy, proxy.tls.clone()), Some(200));
    assert!(backend.last_request().expect("forwarded").headers_named("x-client-subject").is_empty());
}
