//! Test PKI: a throw-away CA and a `localhost` / `127.0.0.1` leaf signed by it.

use std::net::IpAddr;
use std::path::PathBuf;
use std::sync::Arc;

use rcgen::{BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, KeyPair, KeyUsagePurpose};
use rustls::ClientConfig;
use rustls_pki_types::CertificateDer;

static DIR_COUNTER: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);

/// Files and trust anchor of a freshly generated test PKI.
///
/// The directory (and everything in it) is removed when this value is dropped,
/// so keep it alive for as long as the proxy may read the files. Tests may put
/// their own files (e.g. a proxy config) into `dir` too.
pub struct TestCerts {
    /// Fresh, unique temp directory holding the files below.
    pub dir: PathBuf,
    /// PEM chain: leaf certificate, then the CA certificate.
    pub cert_path: PathBuf,
    /// PEM PKCS#8 private key of the leaf.
    pub key_path: PathBuf,
    /// DER of the CA certificate (the only trust anchor clients need).
    pub ca_der: CertificateDer<'static>,
}

impl Drop for TestCerts {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// Creates a unique, empty directory under the system temp dir.
pub fn fresh_temp_dir(prefix: &str) -> PathBuf {
    let n = DIR_COUNTER.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
    let dir = std::env::temp_dir().join(format!("{prefix}-{}-{n}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("create temp dir");
    dir
}

/// CA + leaf for DNS `localhost` and IP `127.0.0.1` (ECDSA P-256), written to a fresh temp dir.
pub fn test_certs() -> TestCerts {
    test_certs_for(&["localhost", "127.0.0.1"])
}

/// Like [`test_certs`] but with the given subject alternative names
/// (entries that parse as IP addresses become IP SANs, the rest DNS SANs).
pub fn test_certs_for(sans: &[&str]) -> TestCerts {
    test_certs_with(sans, &rcgen::PKCS_ECDSA_P256_SHA256)
}

/// Like [`test_certs_for`] with the leaf's (and CA's) key algorithm, e.g.
/// `rcgen::PKCS_RSA_SHA256` (RSA 2048: the fixed test key
/// `tests/fixtures/test-rsa-2048.key.pem`, as rcgen's ring backend cannot
/// generate RSA keys).
pub fn test_certs_with(sans: &[&str], alg: &'static rcgen::SignatureAlgorithm) -> TestCerts {
    let generate = || -> KeyPair {
        if alg == &rcgen::PKCS_RSA_SHA256 {
            let pem = include_str!("../fixtures/test-rsa-2048.key.pem");
            KeyPair::from_pem_and_sign_algo(pem, alg).expect("load test RSA key")
        } else {
            KeyPair::generate_for(alg).expect("generate key")
        }
    };

    let ca_key = generate();
    let mut ca_params = CertificateParams::new(Vec::<String>::new()).expect("CA params");
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca_params.distinguished_name.push(DnType::CommonName, "Terminus Test CA");
    ca_params.key_usages =
        vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign, KeyUsagePurpose::DigitalSignature];
    let ca_cert = ca_params.self_signed(&ca_key).expect("self-sign CA");

    let leaf_key = generate();
    let names: Vec<String> = sans.iter().map(|s| s.to_string()).collect();
    let mut leaf_params = CertificateParams::new(names).expect("leaf params");
    if let Some(first) = sans.iter().find(|s| s.parse::<IpAddr>().is_err()) {
        leaf_params.distinguished_name.push(DnType::CommonName, *first);
    }
    leaf_params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
    leaf_params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
    leaf_params.use_authority_key_identifier_extension = true;
    let leaf_cert = leaf_params.signed_by(&leaf_key, &ca_cert, &ca_key).expect("sign leaf");

    let dir = fresh_temp_dir("terminus-test-certs");
    let cert_path = dir.join("cert.pem");
    let key_path = dir.join("key.pem");
    std::fs::write(&cert_path, format!("{}{}", leaf_cert.pem(), ca_cert.pem())).expect("write cert chain");
    std::fs::write(&key_path, leaf_key.serialize_pem()).expect("write key");

    TestCerts { dir, cert_path, key_path, ca_der: ca_cert.der().clone() }
}

/// Client config trusting only `ca`, ALPN `http/1.1`, TLS 1.2 and 1.3, aws-lc-rs provider.
pub fn client_config(ca: &CertificateDer<'_>) -> Arc<ClientConfig> {
    client_config_with(ca, false, &[b"http/1.1"])
}

/// Like [`client_config`] but limited to TLS 1.2.
pub fn client_config_tls12(ca: &CertificateDer<'_>) -> Arc<ClientConfig> {
    client_config_with(ca, true, &[b"http/1.1"])
}

/// Client config trusting only `ca`, optionally TLS 1.2 only, with the given ALPN list (may be empty).
pub fn client_config_with(ca: &CertificateDer<'_>, tls12_only: bool, alpn: &[&[u8]]) -> Arc<ClientConfig> {
    let mut roots = rustls::RootCertStore::empty();
    roots.add(ca.clone().into_owned()).expect("add CA to root store");
    let builder = ClientConfig::builder_with_provider(Arc::new(rustls::crypto::aws_lc_rs::default_provider()));
    let builder = if tls12_only {
        builder.with_protocol_versions(&[&rustls::version::TLS12])
    } else {
        builder.with_safe_default_protocol_versions()
    }
    .expect("protocol versions");
    let mut cfg = builder.with_root_certificates(roots).with_no_client_auth();
    cfg.alpn_protocols = alpn.iter().map(|p| p.to_vec()).collect();
    Arc::new(cfg)
}

/// A client configuration that accepts any server certificate: only for
/// talking to the demo mode's freshly generated self-signed certificate.
pub fn insecure_client_config() -> Arc<ClientConfig> {
    insecure_client_config_with(rustls::crypto::aws_lc_rs::default_provider())
}

/// Like [`insecure_client_config`] with the client's own provider (e.g. one
/// offering only some signature schemes).
pub fn insecure_client_config_with(provider: rustls::crypto::CryptoProvider) -> Arc<ClientConfig> {
    #[derive(Debug)]
    struct AcceptAny(Arc<rustls::crypto::CryptoProvider>);
    impl rustls::client::danger::ServerCertVerifier for AcceptAny {
        fn verify_server_cert(
            &self,
            _: &CertificateDer<'_>,
            _: &[CertificateDer<'_>],
            _: &rustls_pki_types::ServerName<'_>,
            _: &[u8],
            _: rustls_pki_types::UnixTime,
        ) -> Result<rustls::client::danger::ServerCertVerified, rustls::Error> {
            Ok(rustls::client::danger::ServerCertVerified::assertion())
        }
        fn verify_tls12_signature(
            &self,
            message: &[u8],
            cert: &CertificateDer<'_>,
            dss: &rustls::DigitallySignedStruct,
        ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
            rustls::crypto::verify_tls12_signature(message, cert, dss, &self.0.signature_verification_algorithms)
        }
        fn verify_tls13_signature(
            &self,
            message: &[u8],
            cert: &CertificateDer<'_>,
            dss: &rustls::DigitallySignedStruct,
        ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
            rustls::crypto::verify_tls13_signature(message, cert, dss, &self.0.signature_verification_algorithms)
        }
        fn supported_verify_schemes(&self) -> Vec<rustls::SignatureScheme> {
            self.0.signature_verification_algorithms.supported_schemes()
        }
    }
    let provider = Arc::new(provider);
    let mut cfg = ClientConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .expect("protocol versions")
        .dangerous()
        .with_custom_certificate_verifier(Arc::new(AcceptAny(provider)))
        .with_no_client_auth();
    cfg.alpn_protocols = vec![b"http/1.1".to_vec()];
    Arc::new(cfg)
}
