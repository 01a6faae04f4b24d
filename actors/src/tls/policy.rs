//! Protocol policy: the `modern` / `intermediate` presets and the explicit
//! `tls_versions` / `cipher_suites` overrides, applied to the crypto provider.
//!
//! Every TLS 1.2 suite rustls implements is ECDHE with an AEAD cipher
//! (AES-GCM, ChaCha20-Poly1305), so `intermediate` is all of them plus TLS 1.3.

use rustls::SupportedProtocolVersion;
use rustls::crypto::CryptoProvider;

use crate::settings::{ListenerSettings, TlsPolicy};

/// A policy setting that cannot be applied, with the key it came from.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("`{key}`: {reason}")]
pub struct PolicyError {
    /// The dotted key, e.g. `listener.cipher_suites[1]`.
    pub key: String,
    /// What is wrong.
    pub reason: String,
}

/// The provider (with only the allowed cipher suites) and the protocol
/// versions a listener's settings ask for.
pub fn resolve(
    listener: &ListenerSettings,
) -> Result<(CryptoProvider, Vec<&'static SupportedProtocolVersion>), PolicyError> {
    let err = |key: String, reason: String| PolicyError { key, reason };
    let versions: Vec<&'static SupportedProtocolVersion> = if listener.tls_versions.is_empty() {
        match listener.tls_policy {
            TlsPolicy::Modern => vec![&rustls::version::TLS13],
            TlsPolicy::Intermediate => vec![&rustls::version::TLS13, &rustls::version::TLS12],
        }
    } else {
        let mut out = Vec::new();
        for (i, v) in listener.tls_versions.iter().enumerate() {
            let version = match v.trim() {
                "1.3" => &rustls::version::TLS13,
                "1.2" => &rustls::version::TLS12,
                other => {
                    return Err(err(
                        format!("listener.tls_versions[{i}]"),
                        format!("`{other}` is not a supported TLS version (\"1.2\", \"1.3\")"),
                    ));
                }
            };
            if !out.iter().any(|o: &&SupportedProtocolVersion| o.version == version.version) {
                out.push(version);
            }
        }
        out
    };
    let mut provider = super::provider();
    provider.cipher_suites.retain(|s| versions.iter().any(|v| v.version == s.version().version));
    if !listener.cipher_suites.is_empty() {
        let mut chosen = Vec::new();
        for (i, name) in listener.cipher_suites.iter().enumerate() {
            let found = provider.cipher_suites.iter().find(|s| s.suite().as_str() == Some(name.trim()));
            match found {
                Some(s) => chosen.push(*s),
                None => {
                    return Err(err(
                        format!("listener.cipher_suites[{i}]"),
                        format!("`{name}` is not a cipher suite of the enabled TLS versions ({})", names(&provider)),
                    ));
                }
            }
        }
        provider.cipher_suites = chosen;
    }
    for v in &versions {
        if !provider.cipher_suites.iter().any(|s| s.version().version == v.version) {
            return Err(err("listener.cipher_suites".into(), format!("no cipher suite left for {:?}", v.version)));
        }
    }
    Ok((provider, versions))
}

fn names(provider: &CryptoProvider) -> String {
    let names: Vec<&str> = provider.cipher_suites.iter().filter_map(|s| s.suite().as_str()).collect();
    names.join(", ")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn listener(policy: TlsPolicy, versions: &[&str], suites: &[&str]) -> ListenerSettings {
        ListenerSettings {
            tls_policy: policy,
            tls_versions: versions.iter().map(|s| s.to_string()).collect(),
            cipher_suites: suites.iter().map(|s| s.to_string()).collect(),
            ..Default::default()
        }
    }

    #[test]
    fn presets_and_overrides() {
        use TlsPolicy::*;
        // (policy, versions, suites, expected versions, expected suite count or error key)
        type Want = Result<(&'static [u16], usize), &'static str>;
        let cases: &[(TlsPolicy, &[&str], &[&str], Want)] = &[
            (Modern, &[], &[], Ok((&[0x0304], 3))),
            (Intermediate, &[], &[], Ok((&[0x0304, 0x0303], 9))),
            (Modern, &["1.2"], &[], Ok((&[0x0303], 6))),
            (Intermediate, &["1.3", "1.3"], &["TLS13_AES_256_GCM_SHA384"], Ok((&[0x0304], 1))),
            (Intermediate, &["1.0"], &[], Err("listener.tls_versions[0]")),
            (Intermediate, &[], &["TLS13_AES_128_GCM_SHA256", "TLS_RSA_WITH_RC4"], Err("listener.cipher_suites[1]")),
            (Modern, &[], &["TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256"], Err("listener.cipher_suites[0]")),
            (Intermediate, &[], &["TLS13_AES_128_GCM_SHA256"], Err("listener.cipher_suites")),
        ];
        for (policy, versions, suites, want) in cases {
            let got = resolve(&listener(*policy, versions, suites));
            match (got, want) {
                (Ok((provider, v)), Ok((want_v, want_n))) => {
                    let v: Vec<u16> = v.iter().map(|v| u16::from(v.version)).collect();
                    assert_eq!(&v, want_v, "{policy:?} {versions:?} {suites:?}");
                    assert_eq!(provider.cipher_suites.len(), *want_n, "{policy:?} {versions:?} {suites:?}");
                }
                (Err(e), Err(key)) => assert_eq!(e.key, *key, "{e}"),
                (got, want) => panic!("{policy:?} {versions:?} {suites:?}: got {:?}, want {want:?}", got.map(|g| g.1)),
            }
        }
    }
}
