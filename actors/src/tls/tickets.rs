//! Session tickets under a key read from a file, so that several instances
//! sharing the file accept each other's tickets.
//!
//! The ticket key is SHA-256 of the file's contents (at least 32 bytes);
//! tickets are `key id (4) | nonce (12) | AES-256-GCM ciphertext and tag`.
//! Replacing the file (picked up like a certificate change) starts a new
//! key. The previous key still decrypts, never encrypts, for a grace period
//! (`listener.ticket_key_grace`); after it, and after the next change of the
//! file, tickets under it fall back to a full handshake. One previous key is
//! kept, no more.

use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use aws_lc_rs::aead::{AES_256_GCM, Aad, LessSafeKey, NONCE_LEN, Nonce, UnboundKey};
use aws_lc_rs::digest::{SHA256, digest};
use aws_lc_rs::rand::{SecureRandom, SystemRandom};
use rustls::server::ProducesTickets;

/// Ticket lifetime advertised to clients (12 hours).
pub const LIFETIME: Duration = Duration::from_secs(12 * 60 * 60);
/// Shortest accepted key file.
const MIN_KEY_BYTES: usize = 32;

/// A ticketer whose key comes from a shared file.
pub struct FileTicketer {
    current: Arc<TicketKey>,
    /// The key in force before the file last changed, and since when it is
    /// retired (it decrypts for `grace` after that).
    previous: Option<(Arc<TicketKey>, Instant)>,
    grace: Duration,
    rng: SystemRandom,
}

/// One AES-256-GCM ticket key.
struct TicketKey {
    /// SHA-256 of the key: tells keys apart without comparing key bytes.
    fingerprint: [u8; 32],
    /// The fingerprint's first bytes, in front of every ticket.
    id: [u8; 4],
    key: LessSafeKey,
}

impl std::fmt::Debug for FileTicketer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FileTicketer")
            .field("id", &self.current.id)
            .field("previous", &self.previous.as_ref().map(|(k, _)| k.id))
            .field("grace", &self.grace)
            .finish_non_exhaustive()
    }
}

impl FileTicketer {
    /// Reads the key file; the reason on error.
    pub fn from_file(path: &Path) -> Result<Self, String> {
        let bytes = std::fs::read(path).map_err(|e| format!("cannot read ticket key file: {e}"))?;
        Self::from_secret(&bytes)
    }

    /// A ticketer keyed by `secret` (at least 32 bytes), with no previous key.
    pub fn from_secret(secret: &[u8]) -> Result<Self, String> {
        if secret.len() < MIN_KEY_BYTES {
            return Err(format!("ticket key file holds {} bytes, at least {MIN_KEY_BYTES} needed", secret.len()));
        }
        let key = digest(&SHA256, secret);
        let mut fingerprint = [0u8; 32];
        fingerprint.copy_from_slice(digest(&SHA256, key.as_ref()).as_ref());
        let mut id = [0u8; 4];
        id.copy_from_slice(&fingerprint[..4]);
        let unbound =
            UnboundKey::new(&AES_256_GCM, key.as_ref()).map_err(|_| "cannot use the ticket key".to_owned())?;
        let current = Arc::new(TicketKey { fingerprint, id, key: LessSafeKey::new(unbound) });
        Ok(Self { current, previous: None, grace: Duration::ZERO, rng: SystemRandom::new() })
    }

    /// `next` (the key file as just read) taking over at `now` from `self`,
    /// the ticketer in force. A changed key retires self's key: it decrypts
    /// for `grace` more, and self's own previous key is dropped. An unchanged
    /// key keeps the previous key and when it was retired (under the new
    /// `grace`).
    pub fn succeeded_by(&self, next: Self, grace: Duration, now: Instant) -> Self {
        let previous = if next.current.fingerprint == self.current.fingerprint {
            self.previous.clone()
        } else {
            Some((self.current.clone(), now))
        };
        let previous = previous.filter(|(_, retired)| now.saturating_duration_since(*retired) < grace);
        Self { previous, grace, ..next }
    }

    /// The id in front of new tickets (that of the current key).
    pub fn key_id(&self) -> [u8; 4] {
        self.current.id
    }

    /// Decrypts under the current key, or the previous one while `now` is
    /// within its grace period.
    fn decrypt_at(&self, cipher: &[u8], now: Instant) -> Option<Vec<u8>> {
        let (id, rest) = cipher.split_at_checked(4)?;
        let (nonce, sealed) = rest.split_at_checked(NONCE_LEN)?;
        let previous =
            self.previous.as_ref().filter(|(_, retired)| now.saturating_duration_since(*retired) < self.grace);
        std::iter::once(&self.current)
            .chain(previous.map(|(key, _)| key))
            .filter(|key| key.id == id)
            .find_map(|key| key.open(nonce, sealed))
    }
}

impl TicketKey {
    fn open(&self, nonce: &[u8], sealed: &[u8]) -> Option<Vec<u8>> {
        let nonce = Nonce::try_assume_unique_for_key(nonce).ok()?;
        let mut body = sealed.to_vec();
        let len = self.key.open_in_place(nonce, Aad::from(&self.id), &mut body).ok()?.len();
        body.truncate(len);
        Some(body)
    }
}

impl ProducesTickets for FileTicketer {
    fn enabled(&self) -> bool {
        true
    }

    fn lifetime(&self) -> u32 {
        // Invariant: 12 hours in seconds fits in u32.
        LIFETIME.as_secs() as u32
    }

    fn encrypt(&self, plain: &[u8]) -> Option<Vec<u8>> {
        let key = &self.current;
        let mut nonce = [0u8; NONCE_LEN];
        self.rng.fill(&mut nonce).ok()?;
        let mut out = Vec::with_capacity(4 + NONCE_LEN + plain.len() + AES_256_GCM.tag_len());
        out.extend_from_slice(&key.id);
        out.extend_from_slice(&nonce);
        let mut body = plain.to_vec();
        key.key.seal_in_place_append_tag(Nonce::assume_unique_for_key(nonce), Aad::from(&key.id), &mut body).ok()?;
        out.extend_from_slice(&body);
        Some(out)
    }

    fn decrypt(&self, cipher: &[u8]) -> Option<Vec<u8>> {
        self.decrypt_at(cipher, Instant::now())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ticketer(byte: u8) -> FileTicketer {
        FileTicketer::from_secret(&[byte; 32]).expect("key")
    }

    #[test]
    fn tickets_round_trip_only_under_the_same_key() {
        let a = FileTicketer::from_secret(&[7u8; 32]).expect("key");
        let a2 = FileTicketer::from_secret(&[7u8; 32]).expect("key");
        let b = FileTicketer::from_secret(&[8u8; 40]).expect("key");
        let t = a.encrypt(b"session state").expect("ticket");
        assert_eq!(a2.decrypt(&t).as_deref(), Some(&b"session state"[..]), "another instance, same file");
        assert_eq!(b.decrypt(&t), None, "other key");
        let mut tampered = t.clone();
        if let Some(last) = tampered.last_mut() {
            *last ^= 1;
        }
        assert_eq!(a.decrypt(&tampered), None);
        for short in [&t[..0], &t[..3], &t[..10], &t[..20]] {
            assert_eq!(a.decrypt(short), None);
        }
        assert!(FileTicketer::from_secret(&[1u8; 31]).is_err());
    }

    #[test]
    fn the_previous_key_decrypts_during_the_grace_period_only() {
        let grace = Duration::from_secs(3600);
        let t0 = Instant::now();
        let first = ticketer(1);
        let old = first.encrypt(b"old").expect("ticket");
        let second = first.succeeded_by(ticketer(2), grace, t0);
        let new = second.encrypt(b"new").expect("ticket");
        assert_eq!(new[..4], second.key_id(), "new tickets carry the new key id");
        assert_ne!(second.key_id(), first.key_id());
        assert_eq!(first.decrypt(&new), None, "the new key was not known before");

        // (time since the change, old ticket accepted)
        let cases = [(0, true), (1, true), (3599, true), (3600, false), (86_400, false)];
        for (secs, accepted) in cases {
            let got = second.decrypt_at(&old, t0 + Duration::from_secs(secs));
            assert_eq!(got.is_some(), accepted, "{secs} s after the change");
            assert_eq!(second.decrypt_at(&new, t0 + Duration::from_secs(secs)).as_deref(), Some(&b"new"[..]));
        }
        let mut forged = old.clone();
        forged[4] ^= 1;
        assert_eq!(second.decrypt_at(&forged, t0), None, "the previous key authenticates too");

        // A reload that finds the same key keeps the previous one and its deadline.
        let reloaded = second.succeeded_by(ticketer(2), grace, t0 + Duration::from_secs(1800));
        assert_eq!(reloaded.key_id(), second.key_id());
        assert!(reloaded.decrypt_at(&old, t0 + Duration::from_secs(3599)).is_some());
        assert!(reloaded.decrypt_at(&old, t0 + Duration::from_secs(3600)).is_none());
        // ... under the new grace when that shrank.
        let shortened = second.succeeded_by(ticketer(2), Duration::from_secs(60), t0 + Duration::from_secs(10));
        assert!(shortened.decrypt_at(&old, t0 + Duration::from_secs(59)).is_some());
        assert!(shortened.decrypt_at(&old, t0 + Duration::from_secs(60)).is_none());

        // A second change retires the first key for good.
        let third = second.succeeded_by(ticketer(3), grace, t0 + Duration::from_secs(10));
        let at = t0 + Duration::from_secs(20);
        assert_eq!(third.decrypt_at(&old, at), None, "two changes ago");
        assert_eq!(third.decrypt_at(&new, at).as_deref(), Some(&b"new"[..]), "one change ago");
        assert_eq!(third.encrypt(b"x").expect("ticket")[..4], third.key_id());

        // Going back to an earlier key works like any change.
        let back = third.succeeded_by(ticketer(1), grace, at);
        assert_eq!(back.decrypt_at(&old, at).as_deref(), Some(&b"old"[..]));
        assert_eq!(back.decrypt_at(&new, at), None);
    }

    #[test]
    fn no_grace_drops_the_previous_key_at_once() {
        let t0 = Instant::now();
        let first = ticketer(1);
        let old = first.encrypt(b"old").expect("ticket");
        let second = first.succeeded_by(ticketer(2), Duration::ZERO, t0);
        assert_eq!(second.decrypt_at(&old, t0), None);
        assert!(second.previous.is_none());
    }
}
