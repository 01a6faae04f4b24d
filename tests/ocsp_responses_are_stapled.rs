//! OCSP stapling: the DER response in `listener.ocsp` (or a certificate's
//! `ocsp`) is sent to clients, and a changed file is picked up by the
//! certificate watcher.

mod common;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::{Backend, TestProxy, TlsClient, wait_until};
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::CryptoProvider;
use rustls::{ClientConfig, DigitallySignedStruct, SignatureScheme};
use rustls_pki_types::{CertificateDer, ServerName, UnixTime};

/// Accepts any certificate and records the stapled OCSP response.
#[derive(Debug)]
struct Capture(Arc<CryptoProvider>, Arc<Mutex<Vec<u8>>>);

impl ServerCertVerifier for Capture {
    fn verify_server_cert(
        &self,
        _: &CertificateDer<'_>,
        _: &[CertificateDer<'_>],
        _: &ServerName<'_>,
        ocsp: &[u8],
        _: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        *self.1.lock().expect("lock") = ocsp.to_vec();
        Ok(ServerCertVerified::assertion())
    }
    fn verify_tls12_signature(
        &self,
        m: &[u8],
        c: &CertificateDer<'_>,
        d: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(m, c, d, &self.0.signature_verification_algorithms)
    }
    fn verify_tls13_signature(
        &self,
        m: &[u8],
        c: &CertificateDer<'_>,
        d: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(m, c, d, &self.0.signature_verification_algorithms)
    }
    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}

fn stapled(proxy: &TestProxy, tls12: bool) -> Vec<u8> {
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let seen = Arc::new(Mutex::new(Vec::new()));
    let builder = ClientConfig::builder_with_provider(provider.clone());
    let builder = if tls12 {
        builder.with_protocol_versions(&[&rustls::version::TLS12])
    } else {
        builder.with_safe_default_protocol_versions()
    };
    let mut cfg = builder
        .expect("versions")
        .dangerous()
        .with_custom_certificate_verifier(Arc::new(Capture(provider, seen.clone())))
        .with_no_client_auth();
    cfg.alpn_protocols = vec![b"http/1.1".to_vec()];
    TlsClient::connect(proxy.addr(), Arc::new(cfg)).expect("handshake");
    seen.lock().expect("lock").clone()
}

#[test]
fn ocsp_response_is_stapled_and_reloaded_on_change() {
    let backend = Backend::start("b");
    // Not a real OCSP response: the proxy staples the file's bytes as they are.
    let first = b"\x30\x03\x0a\x01\x00".to_vec();
    let second = b"\x30\x06\x0a\x01\x00\x02\x01\x07".to_vec();
    let proxy = TestProxy::start_with(&[backend.addr()], |s| {
        let path = s.listener.cert.with_file_name("ocsp.der");
        std::fs::write(&path, b"\x30\x03\x0a\x01\x00").expect("write");
        s.listener.ocsp = path;
        s.listener.cert_watch_interval = Duration::from_millis(50);
    });
    assert_eq!(stapled(&proxy, false), first, "TLS 1.3");
    assert_eq!(stapled(&proxy, true), first, "TLS 1.2");
    std::fs::write(proxy.certs.dir.join("ocsp.der"), &second).expect("rewrite");
    assert!(wait_until(Duration::from_secs(5), || stapled(&proxy, false) == second), "new response served");
}

#[test]
fn no_ocsp_file_staples_nothing_and_a_bad_file_is_named() {
    let backend = Backend::start("b");
    let proxy = TestProxy::start(&[backend.addr()]);
    assert!(stapled(&proxy, false).is_empty());

    let mut listener = common::settings(&proxy.certs, &[]).listener;
    listener.ocsp = proxy.certs.dir.join("absent.der");
    let err = terminus_actors::tls::listener_config(&listener).expect_err("missing file").to_string();
    assert!(err.contains("absent.der") && err.contains("OCSP"), "{err}");
    listener.ocsp = proxy.certs.cert_path.clone();
    let err = terminus_actors::tls::listener_config(&listener).expect_err("PEM is not DER").to_string();
    assert!(err.contains("not a DER OCSP response"), "{err}");
}
