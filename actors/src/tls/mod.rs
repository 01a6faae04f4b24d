//! TLS protocol setup: PEM loading and the rustls server configuration.
//!
//! No actix here. [`sni`] chooses the certificate of each handshake. The configuration is built once per (re)load and shared by
//! every session as an `Arc<ServerConfig>`.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Instant;

use log::info;
use rustls::crypto::CryptoProvider;
use rustls::server::ServerConfig;
use rustls::sign::CertifiedKey;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, CertificateRevocationListDer, PrivateKeyDer};

pub mod certs;
pub mod hello;
mod hkdf;
pub mod policy;
pub mod sni;
pub mod stream;
pub mod tickets;

use crate::settings::{ClientAuthMode, ListenerSettings};
use rustls::server::WebPkiClientVerifier;
pub use sni::SniResolver;

/// ALPN protocol Terminus speaks to clients.
pub const ALPN_HTTP11: &[u8] = b"http/1.1";
/// ALPN name of HTTP/1.0, accepted too (served as HTTP/1.x).
pub const ALPN_HTTP10: &[u8] = b"http/1.0";

/// Why a certificate or key could not be used.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum TlsError {
    /// The file could not be read or holds no PEM certificate.
    #[error("{path}: cannot read certificate: {reason}")]
    Certificate {
        /// The certificate file.
        path: PathBuf,
        /// What went wrong.
        reason: String,
    },
    /// The file could not be read or holds no usable PEM private key.
    #[error("{path}: cannot read private key: {reason}")]
    Key {
        /// The key file.
        path: PathBuf,
        /// What went wrong.
        reason: String,
    },
    /// rustls rejected the pair (e.g. the key does not match the certificate).
    #[error("{cert} with {key}: {reason}")]
    Pair {
        /// The certificate file.
        cert: PathBuf,
        /// The key file.
        key: PathBuf,
        /// What rustls said.
        reason: String,
    },
    /// The protocol policy settings cannot be applied.
    #[error(transparent)]
    Policy(#[from] policy::PolicyError),
    /// A certificate revocation list of `listener.client_auth.crl` cannot be used.
    #[error("`{key}`: {path}: {reason}")]
    Crl {
        /// The dotted key, e.g. `listener.client_auth.crl[0]`.
        key: String,
        /// The CRL file.
        path: PathBuf,
        /// What went wrong.
        reason: String,
    },
}

impl TlsError {
    /// The settings keys to put before the message (`` `listener.cert`: ``),
    /// empty when the message names its key itself.
    pub(crate) fn keys(&self) -> &'static str {
        match self {
            Self::Certificate { .. } => "`listener.cert`: ",
            Self::Key { .. } => "`listener.key`: ",
            Self::Pair { .. } => "`listener.cert`, `listener.key`: ",
            Self::Policy(_) | Self::Crl { .. } => "",
        }
    }
}

/// Reads a PEM certificate chain (leaf first).
pub fn load_certs(path: &Path) -> Result<Vec<CertificateDer<'static>>, TlsError> {
    let err = |reason: String| TlsError::Certificate { path: path.to_owned(), reason };
    let certs = CertificateDer::pem_file_iter(path)
        .map_err(|e| err(pem_reason(&e)))?
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| err(pem_reason(&e)))?;
    if certs.is_empty() {
        return Err(err("no PEM certificate found".into()));
    }
    Ok(certs)
}

/// Reads a PEM private key (PKCS#8, PKCS#1 or SEC1).
pub fn load_key(path: &Path) -> Result<PrivateKeyDer<'static>, TlsError> {
    PrivateKeyDer::from_pem_file(path).map_err(|e| TlsError::Key { path: path.to_owned(), reason: pem_reason(&e) })
}

/// Reads the CRLs of `listener.client_auth.crl`: per file any number of PEM
/// `X509 CRL` blocks, or one DER CRL. Each is parsed here so that a bad one
/// is named by its file (rustls would only say that some CRL is invalid).
pub fn load_crls(paths: &[PathBuf]) -> Result<Vec<CertificateRevocationListDer<'static>>, TlsError> {
    let mut out = Vec::new();
    for (i, path) in paths.iter().enumerate() {
        let err = |reason: String| TlsError::Crl {
            key: format!("listener.client_auth.crl[{i}]"),
            path: path.clone(),
            reason,
        };
        let bytes = std::fs::read(path).map_err(|e| err(format!("cannot read CRL: {e}")))?;
        let crls = if bytes.first() == Some(&0x30) {
            vec![CertificateRevocationListDer::from(bytes)]
        } else {
            CertificateRevocationListDer::pem_slice_iter(&bytes)
                .collect::<Result<Vec<_>, _>>()
                .map_err(|e| err(pem_reason(&e)))?
        };
        if crls.is_empty() {
            return Err(err("no CRL found (PEM `X509 CRL` or DER)".into()));
        }
        for crl in &crls {
            webpki::OwnedCertRevocationList::from_der(crl.as_ref()).map_err(|e| err(format!("invalid CRL: {e}")))?;
        }
        out.extend(crls);
    }
    Ok(out)
}

fn pem_reason(e: &rustls_pki_types::pem::Error) -> String {
    match e {
        rustls_pki_types::pem::Error::Io(io) => io.to_string(),
        rustls_pki_types::pem::Error::NoItemsFound => "no PEM item of the expected kind found".into(),
        other => format!("invalid PEM: {other:?}"),
    }
}

/// Builds the server configuration for a certificate and key file:
/// TLS 1.2 and 1.3 with rustls' safe defaults, ALPN `http/1.1`, and a check
/// that the key matches the certificate.
pub fn server_config(cert: &Path, key: &Path) -> Result<Arc<ServerConfig>, TlsError> {
    let chain = load_certs(cert)?;
    let private = load_key(key)?;
    let pair_err = |reason: String| TlsError::Pair { cert: cert.to_owned(), key: key.to_owned(), reason };
    let provider = Arc::new(provider());
    let mut config = ServerConfig::builder_with_provider(provider)
        .with_protocol_versions(&[&rustls::version::TLS13, &rustls::version::TLS12])
        .map_err(|e| pair_err(e.to_string()))?
        .with_no_client_auth()
        .with_single_cert(chain, private)
        .map_err(|e| pair_err(describe(&e)))?;
    config.alpn_protocols = vec![ALPN_HTTP11.to_vec(), ALPN_HTTP10.to_vec()];
    Ok(Arc::new(config))
}

/// A listener's server configuration and the ticketer of its
/// `ticket_key_file`, kept so that the next build can carry the key over.
#[derive(Debug, Clone)]
pub struct ListenerTls {
    /// What new handshakes use.
    pub config: Arc<ServerConfig>,
    /// The ticketer in `config`, when `ticket_key_file` is set.
    pub tickets: Option<Arc<tickets::FileTicketer>>,
}

/// Builds the listener's server configuration: the default certificate
/// (`cert`/`key`, if set) and the SNI `certificates`, each checked (key
/// matches, key type usable) and named in any error.
pub fn listener_config(listener: &ListenerSettings) -> Result<Arc<ServerConfig>, TlsError> {
    Ok(listener_tls(listener, None)?.config)
}

/// [`listener_config`] to replace `in_force`, the configuration serving
/// now: when the ticket key file holds a new key, the key in force still
/// decrypts tickets for `listener.ticket_key_grace`.
pub fn listener_tls(listener: &ListenerSettings, in_force: Option<&ListenerTls>) -> Result<ListenerTls, TlsError> {
    let (provider, versions) = policy::resolve(listener).map_err(TlsError::Policy)?;
    let provider = Arc::new(provider);
    let mut resolver = SniResolver::default();
    let mut default_names: Vec<String> = Vec::new();
    if !listener.cert.as_os_str().is_empty() {
        let (key, names) = certified_key(&listener.cert, &listener.key, &provider)?;
        let key = with_ocsp(key, &listener.ocsp)?;
        resolver.add(key.clone(), &names);
        resolver.add_default(key);
        default_names = names.iter().map(|n| n.to_ascii_lowercase()).collect();
    }
    for c in &listener.certificates {
        let (key, sans) = certified_key(&c.cert, &c.key, &provider)?;
        let key = with_ocsp(key, &c.ocsp)?;
        let names = if c.names.is_empty() { sans } else { c.names.clone() };
        if names.is_empty() {
            return Err(TlsError::Certificate {
                path: c.cert.clone(),
                reason: "no DNS name in the certificate and no `names` given".into(),
            });
        }
        // A certificate for every name of the default one is its companion
        // (say RSA beside an ECDSA default): it also serves clients that send
        // no server name, so an RSA-only client without SNI still connects.
        let lower: Vec<String> = names.iter().map(|n| n.to_ascii_lowercase()).collect();
        if !default_names.is_empty() && default_names.iter().all(|n| lower.contains(n)) {
            resolver.add_default(key.clone());
        }
        resolver.add(key, &names);
    }
    let builder =
        ServerConfig::builder_with_provider(provider.clone()).with_protocol_versions(&versions).map_err(|e| {
            TlsError::Policy(policy::PolicyError { key: "listener.tls_versions".into(), reason: e.to_string() })
        })?;
    let auth = &listener.client_auth;
    let builder = if auth.mode == ClientAuthMode::Off {
        builder.with_no_client_auth()
    } else {
        let ca_err = |reason: String| TlsError::Certificate { path: auth.ca.clone(), reason };
        let mut roots = rustls::RootCertStore::empty();
        for ca in load_certs(&auth.ca)? {
            roots.add(ca).map_err(|e| ca_err(format!("unusable CA certificate: {e}")))?;
        }
        let mut verifier = WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider);
        if auth.mode == ClientAuthMode::Optional {
            verifier = verifier.allow_unauthenticated();
        }
        if !auth.crl.is_empty() {
            // Only the client's own certificate is looked up: intermediates
            // would each need their issuer's CRL. An outdated CRL (past its
            // nextUpdate) still counts rather than refusing every client.
            verifier = verifier.with_crls(load_crls(&auth.crl)?).only_check_end_entity_revocation();
            if auth.allow_issuers_without_crl {
                verifier = verifier.allow_unknown_revocation_status();
            }
        }
        builder.with_client_cert_verifier(verifier.build().map_err(|e| ca_err(e.to_string()))?)
    };
    let mut config = builder.with_cert_resolver(Arc::new(resolver));
    let mut file_tickets = None;
    if !listener.ticket_key_file.as_os_str().is_empty() {
        let mut ticketer = tickets::FileTicketer::from_file(&listener.ticket_key_file)
            .map_err(|reason| TlsError::Key { path: listener.ticket_key_file.clone(), reason })?;
        if let Some(old) = in_force.and_then(|t| t.tickets.as_deref()) {
            ticketer = old.succeeded_by(ticketer, listener.ticket_key_grace, Instant::now());
            if ticketer.key_id() != old.key_id() {
                info!("ticket key changed grace={}s", listener.ticket_key_grace.as_secs());
            }
        }
        let ticketer = Arc::new(ticketer);
        config.ticketer = ticketer.clone();
        file_tickets = Some(ticketer);
    } else if listener.session_tickets {
        config.ticketer = rustls::crypto::aws_lc_rs::Ticketer::new().map_err(|e| {
            TlsError::Policy(policy::PolicyError { key: "listener.session_tickets".into(), reason: e.to_string() })
        })?;
    }
    config.alpn_protocols = vec![ALPN_HTTP11.to_vec(), ALPN_HTTP10.to_vec()];
    Ok(ListenerTls { config: Arc::new(config), tickets: file_tickets })
}

/// Staples the DER OCSP response in `path` (empty: none) to `key`.
fn with_ocsp(key: Arc<CertifiedKey>, path: &Path) -> Result<Arc<CertifiedKey>, TlsError> {
    if path.as_os_str().is_empty() {
        return Ok(key);
    }
    let err = |reason: String| TlsError::Certificate { path: path.to_owned(), reason };
    let der = std::fs::read(path).map_err(|e| err(format!("cannot read OCSP response: {e}")))?;
    if der.first() != Some(&0x30) {
        return Err(err("not a DER OCSP response".into()));
    }
    let mut key = Arc::unwrap_or_clone(key);
    key.ocsp = Some(der);
    Ok(Arc::new(key))
}

/// Loads a certificate chain and its key, checks that they match, and
/// returns them with the DNS names (SANs) of the leaf.
pub fn certified_key(
    cert: &Path,
    key: &Path,
    provider: &CryptoProvider,
) -> Result<(Arc<CertifiedKey>, Vec<String>), TlsError> {
    let chain = load_certs(cert)?;
    let private = load_key(key)?;
    let pair_err = |reason: String| TlsError::Pair { cert: cert.to_owned(), key: key.to_owned(), reason };
    let signing = provider
        .key_provider
        .load_private_key(private)
        .map_err(|e| TlsError::Key { path: key.to_owned(), reason: format!("no usable key type: {e}") })?;
    let certified = CertifiedKey::new(chain, signing);
    certified.keys_match().map_err(|e| pair_err(describe(&e)))?;
    let leaf = &certified.cert[0];
    let dated = |reason: String| TlsError::Certificate { path: cert.to_owned(), reason };
    match certs::validity_now(leaf) {
        Some(certs::Validity::Expired(at)) => return Err(dated(format!("expired on {at}"))),
        Some(certs::Validity::NotYetValid(at)) => return Err(dated(format!("not valid before {at}"))),
        Some(certs::Validity::Valid) | None => {}
    }
    let parsed = webpki::EndEntityCert::try_from(leaf)
        .map_err(|e| TlsError::Certificate { path: cert.to_owned(), reason: format!("unparsable certificate: {e}") })?;
    let names = parsed.valid_dns_names().map(str::to_owned).collect();
    Ok((Arc::new(certified), names))
}

/// The aws-lc-rs provider with the post-quantum hybrid X25519MLKEM768 as
/// the preferred key exchange (rustls lists it second unless built with
/// `prefer-post-quantum`); clients without it fall back to X25519 and the
/// NIST curves. Its TLS 1.3 suites derive keys with [`hkdf`].
pub fn provider() -> CryptoProvider {
    let mut provider = rustls::crypto::aws_lc_rs::default_provider();
    let pq = rustls::crypto::aws_lc_rs::kx_group::X25519MLKEM768;
    provider.kx_groups.retain(|g| g.name() != pq.name());
    provider.kx_groups.insert(0, pq);
    for suite in &mut provider.cipher_suites {
        *suite = hkdf::with_keyed_hkdf(*suite);
    }
    provider
}

fn describe(e: &rustls::Error) -> String {
    match e {
        rustls::Error::InconsistentKeys(_) => "the private key does not match the certificate".into(),
        other => other.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use rustls::NamedGroup;

    use super::*;

    #[test]
    fn post_quantum_hybrid_is_preferred() {
        let names: Vec<NamedGroup> = provider().kx_groups.iter().map(|g| g.name()).collect();
        assert_eq!(names.first(), Some(&NamedGroup::X25519MLKEM768));
        assert_eq!(names.iter().filter(|&&n| n == NamedGroup::X25519MLKEM768).count(), 1);
        assert!(names.contains(&NamedGroup::X25519), "classical fallback kept: {names:?}");
    }
}
