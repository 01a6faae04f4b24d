//! Sticky sessions: a cookie that Terminus sets names the backend that
//! served the client, so its next requests go there while it is eligible.
//!
//! The cookie value is a per-backend token, HMAC-SHA256 of the backend's
//! address under a secret key, truncated to 128 bits: it reveals nothing
//! about the backend and cannot be forged without the key. Decoding
//! compares it (in constant time) with the tokens of the current backends.

use std::net::SocketAddr;

use aws_lc_rs::hmac;

use crate::balance::{BackendId, PickRequest, PoolSnapshot, Strategy};

/// Bytes of the HMAC kept in a token (hex-encoded in the cookie).
const TOKEN_BYTES: usize = 16;
/// Domain separation of the HMAC input.
const TOKEN_CONTEXT: &[u8] = b"terminus-sticky-v1|";

/// Issues and checks sticky-cookie values for one backend list.
pub struct StickyCodec {
    tokens: Vec<String>,
}

impl std::fmt::Debug for StickyCodec {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Tokens are credentials of a sort: never printed.
        f.debug_struct("StickyCodec").field("backends", &self.tokens.len()).finish_non_exhaustive()
    }
}

impl StickyCodec {
    /// Tokens for `addrs` under `secret`.
    pub fn new(secret: &[u8], addrs: &[SocketAddr]) -> Self {
        let key = hmac::Key::new(hmac::HMAC_SHA256, secret);
        let tokens = addrs
            .iter()
            .map(|a| {
                let mut ctx = hmac::Context::with_key(&key);
                ctx.update(TOKEN_CONTEXT);
                ctx.update(a.to_string().as_bytes());
                hex(&ctx.sign().as_ref()[..TOKEN_BYTES])
            })
            .collect();
        Self { tokens }
    }

    /// A random 256-bit secret, for when none is configured.
    pub fn random_secret() -> Vec<u8> {
        let mut secret = vec![0u8; 32];
        // The system RNG failing is not recoverable in a useful way; a
        // constant key would only make cookies forgeable, never unsafe to
        // route by (routing still checks eligibility).
        let _ = aws_lc_rs::rand::fill(&mut secret);
        secret
    }

    /// The cookie value naming `id`.
    pub fn token(&self, id: BackendId) -> Option<&str> {
        self.tokens.get(id.0).map(String::as_str)
    }

    /// The backend a cookie value names, if it is a valid token.
    pub fn decode(&self, value: &[u8]) -> Option<BackendId> {
        let mut found = None;
        for (i, t) in self.tokens.iter().enumerate() {
            if constant_time_eq(t.as_bytes(), value) {
                found = Some(BackendId(i));
            }
        }
        found
    }
}

fn hex(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    bytes.iter().flat_map(|b| [DIGITS[usize::from(b >> 4)] as char, DIGITS[usize::from(b & 15)] as char]).collect()
}

fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// Goes where the cookie says while that backend is eligible; otherwise
/// asks the fallback strategy (and the session sets a new cookie).
pub struct Sticky {
    fallback: Box<dyn Strategy>,
}

impl Sticky {
    /// A sticky strategy over `fallback`.
    pub fn new(fallback: Box<dyn Strategy>) -> Self {
        Self { fallback }
    }
}

impl Strategy for Sticky {
    fn choose(&mut self, snap: &PoolSnapshot, req: &PickRequest, exclude: &[BackendId]) -> Option<BackendId> {
        match req.sticky {
            Some(id) if snap.is_eligible(id) && !exclude.contains(&id) => Some(id),
            _ => self.fallback.choose(snap, req, exclude),
        }
    }

    fn reset(&mut self, snap: &PoolSnapshot) {
        self.fallback.reset(snap);
    }

    fn name(&self) -> &'static str {
        "sticky"
    }

    fn explain(&self, snap: &PoolSnapshot, req: &PickRequest) -> String {
        match req.sticky {
            Some(id) if snap.is_eligible(id) => "sticky: the cookie names an eligible backend".to_owned(),
            Some(_) => format!("sticky: the cookie's backend is not eligible; {}", self.fallback.explain(snap, req)),
            None => format!("sticky: no valid cookie; {}", self.fallback.explain(snap, req)),
        }
    }
}

#[cfg(test)]
mod tests {
    use std::time::Instant;

    use super::*;
    use crate::balance::tests::snap;
    use crate::balance::{RoundRobin, SharedCursor};

    fn addrs() -> Vec<SocketAddr> {
        (0..3).map(|i| SocketAddr::from(([127, 0, 0, 1], 9000 + i))).collect()
    }

    #[test]
    fn tokens_round_trip_and_hide_the_address() {
        let codec = StickyCodec::new(b"secret", &addrs());
        for i in 0..3 {
            let t = codec.token(BackendId(i)).expect("token");
            assert_eq!(t.len(), 2 * TOKEN_BYTES);
            assert!(!t.contains("127") && !t.contains("900"), "{t}");
            assert_eq!(codec.decode(t.as_bytes()), Some(BackendId(i)));
        }
        assert_ne!(codec.token(BackendId(0)), codec.token(BackendId(1)));
    }

    #[test]
    fn forged_or_foreign_tokens_are_rejected() {
        let ours = StickyCodec::new(b"secret", &addrs());
        let theirs = StickyCodec::new(b"other", &addrs());
        let foreign = theirs.token(BackendId(0)).expect("token");
        let cases: &[&[u8]] = &[b"", b"127.0.0.1:9000", foreign.as_bytes(), &[b'0'; 32], b"zz"];
        for value in cases {
            assert_eq!(ours.decode(value), None, "{:?}", String::from_utf8_lossy(value));
        }
        let mut tampered = ours.token(BackendId(1)).expect("token").as_bytes().to_vec();
        tampered[0] ^= 1;
        assert_eq!(ours.decode(&tampered), None);
    }

    #[test]
    fn cookie_wins_while_its_backend_is_eligible() {
        let mut st = Sticky::new(Box::new(RoundRobin::shared(SharedCursor::default())));
        let up = snap(&[(1, true), (1, true), (1, true)]);
        let req = PickRequest { key: None, sticky: Some(BackendId(2)), now: Instant::now() };
        for _ in 0..5 {
            assert_eq!(st.choose(&up, &req, &[]), Some(BackendId(2)));
        }
        assert_ne!(st.choose(&up, &req, &[BackendId(2)]), Some(BackendId(2)), "excluded: fall back");
        let down = snap(&[(1, true), (1, true), (1, false)]);
        let got = st.choose(&down, &req, &[]);
        assert!(matches!(got, Some(BackendId(0 | 1))), "{got:?}");
    }
}
