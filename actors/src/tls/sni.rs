//! Certificate choice by server name (SNI) and by the client's signature
//! algorithms.
//!
//! Names are exact (`api.example.com`) or wildcards (`*.example.com`, one
//! label). An exact name wins over a wildcard, a wildcard over the default.
//! Among the certificates for one name the first whose key can sign with a
//! scheme the client offers is taken, ECDSA before RSA.

use std::collections::HashMap;
use std::sync::Arc;

use log::debug;
use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;
use rustls::{CipherSuite, SignatureAlgorithm, SignatureScheme};

/// Resolves the certificate of a handshake; `None` (no certificate for the
/// name and no default) makes rustls abort the handshake with an alert.
#[derive(Debug, Default)]
pub struct SniResolver {
    exact: HashMap<String, Vec<Arc<CertifiedKey>>>,
    /// Keyed by the part after `*.`.
    wildcard: HashMap<String, Vec<Arc<CertifiedKey>>>,
    default: Vec<Arc<CertifiedKey>>,
}

impl SniResolver {
    /// Adds a certificate for `names` (exact or `*.` wildcards, any case).
    pub fn add(&mut self, key: Arc<CertifiedKey>, names: &[String]) {
        for name in names {
            let name = name.trim_end_matches('.').to_ascii_lowercase();
            let (map, name) = match name.strip_prefix("*.") {
                Some(rest) => (&mut self.wildcard, rest.to_owned()),
                None => (&mut self.exact, name),
            };
            insert(map.entry(name).or_default(), key.clone());
        }
    }

    /// Adds a certificate served when no name matches (or the client sent none).
    pub fn add_default(&mut self, key: Arc<CertifiedKey>) {
        insert(&mut self.default, key);
    }

    /// The candidates for a server name, best match first.
    fn candidates(&self, name: Option<&str>) -> &[Arc<CertifiedKey>] {
        let Some(name) = name else { return &self.default };
        let name = name.trim_end_matches('.').to_ascii_lowercase();
        if let Some(list) = self.exact.get(&name) {
            return list;
        }
        if let Some((_, parent)) = name.split_once('.')
            && let Some(list) = self.wildcard.get(parent)
        {
            return list;
        }
        &self.default
    }

    /// The certificate for a server name and the client's signature schemes.
    pub fn choose(&self, name: Option<&str>, schemes: &[rustls::SignatureScheme]) -> Option<Arc<CertifiedKey>> {
        self.candidates(name).iter().find(|k| k.key.choose_scheme(schemes).is_some()).cloned()
    }
}

/// Keeps ECDSA (and Ed25519) keys ahead of RSA ones.
fn insert(list: &mut Vec<Arc<CertifiedKey>>, key: Arc<CertifiedKey>) {
    if list.iter().any(|k| Arc::ptr_eq(k, &key)) {
        return;
    }
    list.push(key);
    list.sort_by_key(|k| k.key.algorithm() == SignatureAlgorithm::RSA);
}

impl ResolvesServerCert for SniResolver {
    fn resolve(&self, hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        // A client that can only get TLS 1.3 needs a key that signs with a
        // TLS 1.3 scheme. rustls filters the schemes only when it signs,
        // after the ServerHello is out, so refuse here instead.
        let tls13_schemes: Vec<SignatureScheme>;
        let schemes = if offers_tls12(hello.cipher_suites()) {
            hello.signature_schemes()
        } else {
            tls13_schemes = hello.signature_schemes().iter().copied().filter(|s| usable_in_tls13(*s)).collect();
            &tls13_schemes
        };
        let chosen = self.choose(hello.server_name(), schemes);
        if chosen.is_none() {
            debug!(
                "tls handshake refused: no certificate server_name={} schemes={:?}",
                hello.server_name().unwrap_or("-"),
                hello.signature_schemes()
            );
        }
        chosen
    }
}

/// Whether the client offers a TLS 1.2 cipher suite Terminus could use.
fn offers_tls12(offered: &[CipherSuite]) -> bool {
    rustls::crypto::aws_lc_rs::ALL_CIPHER_SUITES
        .iter()
        .any(|s| s.version() == &rustls::version::TLS12 && offered.contains(&s.suite()))
}

/// RFC 8446 4.2.3: no SHA-1 or older hashes, no RSA PKCS#1 v1.5, no DSA.
fn usable_in_tls13(scheme: SignatureScheme) -> bool {
    let [hash, sign] = u16::from(scheme).to_be_bytes();
    hash > 3 && sign > 2
}

#[cfg(test)]
mod tests {
    use rustls::SignatureScheme;
    use rustls_pki_types::PrivateKeyDer;

    use super::*;

    fn key(name: &str) -> Arc<CertifiedKey> {
        let pair = rcgen::KeyPair::generate().expect("key");
        let cert =
            rcgen::CertificateParams::new(vec![name.to_owned()]).expect("params").self_signed(&pair).expect("cert");
        let der = PrivateKeyDer::Pkcs8(pair.serialize_der().into());
        let signing = crate::tls::provider().key_provider.load_private_key(der).expect("signing key");
        Arc::new(CertifiedKey::new(vec![cert.der().clone()], signing))
    }

    #[test]
    fn names_resolve_exact_then_wildcard_then_default() {
        let (exact, wild, default) = (key("a.example.com"), key("x.example.com"), key("localhost"));
        let mut r = SniResolver::default();
        r.add(exact.clone(), &["A.example.com.".into()]);
        r.add(wild.clone(), &["*.example.com".into()]);
        r.add_default(default.clone());
        let ecdsa = [SignatureScheme::ECDSA_NISTP256_SHA256];
        let cases: &[(Option<&str>, &Arc<CertifiedKey>)] = &[
            (Some("a.example.com"), &exact),
            (Some("A.EXAMPLE.COM"), &exact),
            (Some("b.example.com"), &wild),
            (Some("b.example.com."), &wild),
            (Some("c.b.example.com"), &default),
            (Some("example.com"), &default),
            (Some("other"), &default),
            (None, &default),
        ];
        for (name, want) in cases {
            let got = r.choose(*name, &ecdsa).expect("a certificate");
            assert!(Arc::ptr_eq(&got, want), "name={name:?}");
        }
        assert!(r.choose(Some("a.example.com"), &[SignatureScheme::RSA_PSS_SHA256]).is_none(), "no RSA key");
        assert!(SniResolver::default().choose(Some("a.example.com"), &ecdsa).is_none(), "no default");
    }

    #[test]
    fn tls13_only_clients_need_a_tls13_signature_scheme() {
        use SignatureScheme as S;
        for (scheme, usable) in [
            (S::ECDSA_NISTP256_SHA256, true),
            (S::RSA_PSS_SHA256, true),
            (S::ED25519, true),
            (S::RSA_PKCS1_SHA512, false),
            (S::RSA_PKCS1_SHA1, false),
            (S::ECDSA_SHA1_Legacy, false),
            (S::Unknown(0x0303), false),
        ] {
            assert_eq!(usable_in_tls13(scheme), usable, "{scheme:?}");
        }
        assert!(!offers_tls12(&[
            CipherSuite::TLS13_AES_128_GCM_SHA256,
            CipherSuite::TLS_EMPTY_RENEGOTIATION_INFO_SCSV
        ]));
        assert!(offers_tls12(&[
            CipherSuite::TLS13_AES_128_GCM_SHA256,
            CipherSuite::TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256
        ]));
        assert!(!offers_tls12(&[CipherSuite::TLS_RSA_WITH_AES_128_GCM_SHA256]), "no forward secrecy: never enabled");
    }
}
