//! Client-certificate authentication: required or optional per listener,
//! verified against a CA bundle and, when given, CRLs; the verified subject
//! reaches backends in the configured header, and a client's own copy never
//! does.

mod common;

use std::sync::Arc;
use std::time::Duration;

use common::{Backend, TestProxy, TlsClient, wait_until};
use rcgen::{
    BasicConstraints, CertificateParams, CertificateRevocationListParams, DnType, ExtendedKeyUsagePurpose, IsCa,
    KeyIdMethod, KeyPair, RevocationReason, RevokedCertParams, SerialNumber,
};
use rustls::ClientConfig;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, CertificateRevocationListDer, PrivateKeyDer, PrivatePkcs8KeyDer};
use terminus_actors::settings::ClientAuthMode;

/// A client CA (PEM) and a client certificate + key signed by it.
struct ClientPki {
    ca_pem: String,
    chain: Vec<CertificateDer<'static>>,
    key: Vec<u8>,
}

/// A client CA that issues client certificates and revokes them.
struct ClientCa {
    cert: rcgen::Certificate,
    key: KeyPair,
}

impl ClientCa {
    fn new(cn: &str) -> Self {
        let key = KeyPair::generate().expect("key");
        let mut ca = CertificateParams::new(Vec::<String>::new()).expect("params");
        ca.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        ca.distinguished_name.push(DnType::CommonName, cn);
        Self { cert: ca.self_signed(&key).expect("ca"), key }
    }

    /// A client certificate with this serial number.
    fn issue(&self, cn: &str, serial: u64) -> ClientPki {
        let key = KeyPair::generate().expect("key");
        let mut leaf = CertificateParams::new(Vec::<String>::new()).expect("params");
        leaf.distinguished_name = rcgen::DistinguishedName::new();
        leaf.distinguished_name.push(DnType::OrganizationName, "Acme");
        leaf.distinguished_name.push(DnType::CommonName, cn);
        leaf.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
        leaf.serial_number = Some(SerialNumber::from(serial));
        let cert = leaf.signed_by(&key, &self.cert, &self.key).expect("leaf");
        ClientPki { ca_pem: self.cert.pem(), chain: vec![cert.der().clone()], key: key.serialize_der() }
    }

    /// A PEM CRL listing these serial numbers.
    fn crl(&self, revoked: &[u64]) -> String {
        let params = CertificateRevocationListParams {
            this_update: rcgen::date_time_ymd(2024, 1, 1),
            next_update: rcgen::date_time_ymd(2099, 1, 1),
            crl_number: SerialNumber::from(1u64),
            issuing_distribution_point: None,
            revoked_certs: revoked
                .iter()
                .map(|&serial| RevokedCertParams {
                    serial_number: SerialNumber::from(serial),
                    revocation_time: rcgen::date_time_ymd(2024, 1, 1),
                    reason_code: Some(RevocationReason::KeyCompromise),
                    invalidity_date: None,
                })
                .collect(),
            key_identifier_method: KeyIdMethod::Sha256,
        };
        params.signed_by(&self.cert, &self.key).expect("crl").pem().expect("crl pem")
    }
}

fn client_pki(cn: &str) -> ClientPki {
    ClientCa::new("Client CA").issue(cn, 1)
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

/// A proxy requiring client certificates of `cas`, checked against the CRL
/// file `crl` (written by the caller into the proxy's directory).
fn start_with_crl(backend: &Backend, cas: &[&ClientCa], crl: &str, allow_issuers_without_crl: bool) -> TestProxy {
    let bundle: String = cas.iter().map(|ca| ca.cert.pem()).collect();
    let crl = crl.to_owned();
    TestProxy::start_with(&[backend.addr()], move |s| {
        let dir = s.listener.cert.parent().expect("certificate directory").to_owned();
        std::fs::write(dir.join("client-ca.pem"), bundle).expect("write CA");
        std::fs::write(dir.join("client-ca.crl"), crl).expect("write CRL");
        s.listener.client_auth.mode = ClientAuthMode::Required;
        s.listener.client_auth.ca = dir.join("client-ca.pem");
        s.listener.client_auth.crl = vec![dir.join("client-ca.crl")];
        s.listener.client_auth.allow_issuers_without_crl = allow_issuers_without_crl;
        s.listener.client_auth.identity_header = "X-Client-Subject".into();
        s.listener.cert_watch_interval = Duration::from_millis(50);
    })
}

#[test]
fn revoked_client_certificates_are_refused() {
    let backend = Backend::start("b");
    let ca = ClientCa::new("Client CA");
    let (alice, mallory) = (ca.issue("alice", 1001), ca.issue("mallory", 1002));
    let proxy = start_with_crl(&backend, &[&ca], &ca.crl(&[1002]), false);
    assert_eq!(forged_get(&proxy, client(&proxy, Some(&mallory))), None, "revoked");
    assert_eq!(backend.requests(), 0);
    assert_eq!(forged_get(&proxy, client(&proxy, Some(&alice))), Some(200), "not revoked");
    assert_eq!(backend.last_request().expect("forwarded").headers_named("x-client-subject"), vec!["O=Acme,CN=alice"]);

    // The CRL file is watched like the certificates: a new one revoking
    // alice too applies to new handshakes.
    let crl_path = proxy.certs.dir.join("client-ca.crl");
    std::fs::write(&crl_path, ca.crl(&[1001, 1002, 1003])).expect("rewrite CRL");
    assert!(
        wait_until(Duration::from_secs(5), || forged_get(&proxy, client(&proxy, Some(&alice))).is_none()),
        "the new CRL was not picked up"
    );
    assert_eq!(forged_get(&proxy, client(&proxy, Some(&mallory))), None);
}

#[test]
fn certificates_of_a_ca_without_a_crl_are_refused_unless_allowed() {
    let backend = Backend::start("b");
    let (listed, unlisted) = (ClientCa::new("Listed CA"), ClientCa::new("Unlisted CA"));
    let crl = listed.crl(&[7]);
    let (bob, carol) = (listed.issue("bob", 8), unlisted.issue("carol", 9));
    let strict = start_with_crl(&backend, &[&listed, &unlisted], &crl, false);
    assert_eq!(forged_get(&strict, client(&strict, Some(&bob))), Some(200));
    assert_eq!(forged_get(&strict, client(&strict, Some(&carol))), None, "issuer without a CRL");

    let lenient = start_with_crl(&backend, &[&listed, &unlisted], &crl, true);
    assert_eq!(forged_get(&lenient, client(&lenient, Some(&carol))), Some(200), "allowed unchecked");
    assert_eq!(forged_get(&lenient, client(&lenient, Some(&listed.issue("dave", 7)))), None, "still revoked");
}

#[test]
fn bad_crl_files_are_refused_naming_the_key_and_the_file() {
    let certs = common::test_certs();
    let ca = ClientCa::new("Client CA");
    let ca_path = certs.dir.join("client-ca.pem");
    std::fs::write(&ca_path, ca.cert.pem()).expect("write CA");
    let good = certs.dir.join("good.crl");
    std::fs::write(&good, ca.crl(&[1])).expect("write CRL");
    let junk = certs.dir.join("junk.crl");
    std::fs::write(&junk, "not a CRL").expect("write");
    let truncated = certs.dir.join("truncated.crl");
    let der = CertificateRevocationListDer::from_pem_slice(ca.crl(&[1]).as_bytes()).expect("der").as_ref().to_vec();
    std::fs::write(&truncated, &der[..der.len() - 10]).expect("write");
    let missing = certs.dir.join("missing.crl");

    let mut listener = common::settings(&certs, &[]).listener;
    listener.client_auth.mode = ClientAuthMode::Required;
    listener.client_auth.ca = ca_path;
    listener.client_auth.crl = vec![good.clone()];
    terminus_actors::tls::listener_config(&listener).expect("a good CRL loads");
    let der_crl = certs.dir.join("good.der");
    std::fs::write(&der_crl, &der).expect("write");
    listener.client_auth.crl = vec![good.clone(), der_crl];
    terminus_actors::tls::listener_config(&listener).expect("DER loads too");

    for (bad, reason) in [(&missing, "cannot read CRL"), (&junk, "no CRL found"), (&truncated, "invalid CRL")] {
        listener.client_auth.crl = vec![good.clone(), bad.clone()];
        let err = terminus_actors::tls::listener_config(&listener).expect_err(reason);
        let text = terminus_actors::StartError::from(err).to_string();
        assert!(text.starts_with("`listener.client_auth.crl[1]`: "), "{text}");
        assert!(text.contains(&bad.display().to_string()) && text.contains(reason), "{text}");
    }
}
