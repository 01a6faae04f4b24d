//! The TLS 1.3 key schedule's HKDF on HMAC keys that are set up once.
//!
//! rustls' aws-lc-rs suites expand through aws-lc's `HKDF_expand`, which
//! sets up its HMAC key (two SHA-256 blocks) on every call, and their
//! extracted keys run `HKDF` again, extract included, on every expansion.
//! A full handshake makes about 20 expansions. Here the pseudorandom key is
//! extracted once and keyed once per secret (rustls' [`HkdfUsingHmac`]), and
//! each expansion clones the keyed state: fewer SHA-256 blocks per handshake
//! (measured in `docs/benchmarks.md`). The outputs are the RFC 5869 values
//! either way; the tests check them against aws-lc-rs' own HKDF.

use std::sync::LazyLock;

use aws_lc_rs::hmac;
use rustls::crypto::hmac::{Hmac, Key, Tag};
use rustls::crypto::tls13::HkdfUsingHmac;
use rustls::{SupportedCipherSuite, Tls13CipherSuite};

/// HMAC with one of aws-lc-rs' hash functions.
struct AwsLcHmac(hmac::Algorithm);

impl Hmac for AwsLcHmac {
    fn with_key(&self, key: &[u8]) -> Box<dyn Key> {
        Box::new(AwsLcHmacKey(hmac::Key::new(self.0, key)))
    }

    fn hash_output_len(&self) -> usize {
        self.0.digest_algorithm().output_len()
    }
}

/// A keyed HMAC: its inner and outer blocks are hashed once, in `new`.
struct AwsLcHmacKey(hmac::Key);

impl Key for AwsLcHmacKey {
    fn sign_concat(&self, first: &[u8], middle: &[&[u8]], last: &[u8]) -> Tag {
        let mut ctx = hmac::Context::with_key(&self.0);
        ctx.update(first);
        for part in middle {
            ctx.update(part);
        }
        ctx.update(last);
        Tag::new(ctx.sign().as_ref())
    }

    fn tag_len(&self) -> usize {
        self.0.algorithm().digest_algorithm().output_len()
    }
}

static HMAC_SHA256: AwsLcHmac = AwsLcHmac(hmac::HMAC_SHA256);
static HMAC_SHA384: AwsLcHmac = AwsLcHmac(hmac::HMAC_SHA384);
static HKDF_SHA256: HkdfUsingHmac<'static> = HkdfUsingHmac(&HMAC_SHA256);
static HKDF_SHA384: HkdfUsingHmac<'static> = HkdfUsingHmac(&HMAC_SHA384);

/// `suite` with its HKDF replaced by the one above; TLS 1.2 suites (whose
/// PRF is not HKDF) as they are.
pub fn with_keyed_hkdf(suite: SupportedCipherSuite) -> SupportedCipherSuite {
    /// One copy per suite for the process: a suite is `'static` in rustls.
    static SUITES: LazyLock<Vec<(&'static Tls13CipherSuite, &'static Tls13CipherSuite)>> = LazyLock::new(|| {
        rustls::crypto::aws_lc_rs::ALL_CIPHER_SUITES
            .iter()
            .filter_map(|s| match s {
                SupportedCipherSuite::Tls13(original) => {
                    let hkdf: &'static HkdfUsingHmac<'static> =
                        if original.common.hash_provider.output_len() == 48 { &HKDF_SHA384 } else { &HKDF_SHA256 };
                    let keyed = Tls13CipherSuite {
                        common: rustls::CipherSuiteCommon { ..original.common },
                        hkdf_provider: hkdf,
                        aead_alg: original.aead_alg,
                        quic: original.quic,
                    };
                    Some((*original, &*Box::leak(Box::new(keyed))))
                }
                SupportedCipherSuite::Tls12(_) => None,
            })
            .collect()
    });
    match suite {
        SupportedCipherSuite::Tls13(original) => SUITES
            .iter()
            .find(|(o, _)| o.common.suite == original.common.suite)
            .map_or(suite, |&(_, keyed)| SupportedCipherSuite::Tls13(keyed)),
        SupportedCipherSuite::Tls12(_) => suite,
    }
}

#[cfg(test)]
mod tests {
    use aws_lc_rs::hkdf;
    use rustls::crypto::tls13::{Hkdf, OkmBlock};

    use super::*;

    /// An output length for aws-lc-rs' HKDF.
    struct Len(usize);

    impl hkdf::KeyType for Len {
        fn len(&self) -> usize {
            self.0
        }
    }

    /// aws-lc-rs' HKDF-Expand of `prk` for `info`, `len` bytes.
    fn expand(prk: &hkdf::Prk, info: &[u8], len: usize) -> Vec<u8> {
        let mut out = vec![0; len];
        prk.expand(&[info], Len(len)).unwrap().fill(&mut out).unwrap();
        out
    }

    #[test]
    fn expansions_equal_aws_lc_hkdf() {
        let salt = [7u8; 32];
        let secret: Vec<u8> = (0..48).collect();
        let info = b"\x00\x20\x0dtls13 derived\x00";
        for (ours, alg, hash_len) in [(&HKDF_SHA256, hkdf::HKDF_SHA256, 32), (&HKDF_SHA384, hkdf::HKDF_SHA384, 48)] {
            let reference = hkdf::Salt::new(alg, &salt).extract(&secret);
            let expander = ours.extract_from_secret(Some(&salt), &secret);
            let block = expander.expand_block(&[&info[..5], &info[5..]]);
            assert_eq!(block.as_ref(), expand(&reference, info, hash_len));
            // More than one hash block, and an output that is not a whole block.
            let mut long = vec![0u8; hash_len * 2 + 5];
            expander.expand_slice(&[info], &mut long).unwrap();
            assert_eq!(long, expand(&reference, info, long.len()));
            // The expansion of a previous output (the key schedule's next stage).
            let next = ours.expander_for_okm(&OkmBlock::new(block.as_ref())).expand_block(&[info]);
            let prk = hkdf::Prk::new_less_safe(alg, block.as_ref());
            assert_eq!(next.as_ref(), expand(&prk, info, hash_len));
        }
    }

    #[test]
    fn every_tls13_suite_is_replaced_and_tls12_kept() {
        for &suite in rustls::crypto::aws_lc_rs::ALL_CIPHER_SUITES {
            let keyed = with_keyed_hkdf(suite);
            assert_eq!(keyed.suite(), suite.suite());
            match (suite, keyed) {
                (SupportedCipherSuite::Tls13(a), SupportedCipherSuite::Tls13(b)) => {
                    assert!(!std::ptr::eq(a, b), "{:?} not replaced", suite.suite());
                    let tag = b.hkdf_provider.hmac_sign(&OkmBlock::new(&[0; 32]), b"");
                    assert_eq!(tag.as_ref().len(), a.common.hash_provider.output_len());
                }
                (SupportedCipherSuite::Tls12(a), SupportedCipherSuite::Tls12(b)) => assert!(std::ptr::eq(a, b)),
                _ => panic!("{:?} changed version", suite.suite()),
            }
        }
    }
}
