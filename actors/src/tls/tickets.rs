//! Session tickets under a key read from a file, so that several instances
//! sharing the file accept each other's tickets.
//!
//! The ticket key is SHA-256 of the file's contents (at least 32 bytes);
//! tickets are `key id (4) | nonce (12) | AES-256-GCM ciphertext and tag`.
//! Replacing the file (picked up like a certificate change) starts a new
//! key; tickets under the old one fall back to a full handshake.

use std::path::Path;

use aws_lc_rs::aead::{AES_256_GCM, Aad, LessSafeKey, NONCE_LEN, Nonce, UnboundKey};
use aws_lc_rs::digest::{SHA256, digest};
use aws_lc_rs::rand::{SecureRandom, SystemRandom};
use rustls::server::ProducesTickets;

/// Ticket lifetime advertised to clients (12 hours).
const LIFETIME_SECS: u32 = 12 * 60 * 60;
/// Shortest accepted key file.
const MIN_KEY_BYTES: usize = 32;

/// A ticketer whose key comes from a shared file.
pub struct FileTicketer {
    id: [u8; 4],
    key: LessSafeKey,
    rng: SystemRandom,
}

impl std::fmt::Debug for FileTicketer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FileTicketer").field("id", &self.id).finish_non_exhaustive()
    }
}

impl FileTicketer {
    /// Reads the key file; the reason on error.
    pub fn from_file(path: &Path) -> Result<Self, String> {
        let bytes = std::fs::read(path).map_err(|e| format!("cannot read ticket key file: {e}"))?;
        Self::from_secret(&bytes)
    }

    /// A ticketer keyed by `secret` (at least 32 bytes).
    pub fn from_secret(secret: &[u8]) -> Result<Self, String> {
        if secret.len() < MIN_KEY_BYTES {
            return Err(format!("ticket key file holds {} bytes, at least {MIN_KEY_BYTES} needed", secret.len()));
        }
        let key = digest(&SHA256, secret);
        let id_hash = digest(&SHA256, key.as_ref());
        let mut id = [0u8; 4];
        id.copy_from_slice(&id_hash.as_ref()[..4]);
        let unbound =
            UnboundKey::new(&AES_256_GCM, key.as_ref()).map_err(|_| "cannot use the ticket key".to_owned())?;
        Ok(Self { id, key: LessSafeKey::new(unbound), rng: SystemRandom::new() })
    }
}

impl ProducesTickets for FileTicketer {
    fn enabled(&self) -> bool {
        true
    }

    fn lifetime(&self) -> u32 {
        LIFETIME_SECS
    }

    fn encrypt(&self, plain: &[u8]) -> Option<Vec<u8>> {
        let mut nonce = [0u8; NONCE_LEN];
        self.rng.fill(&mut nonce).ok()?;
        let mut out = Vec::with_capacity(4 + NONCE_LEN + plain.len() + AES_256_GCM.tag_len());
        out.extend_from_slice(&self.id);
        out.extend_from_slice(&nonce);
        let mut body = plain.to_vec();
        self.key.seal_in_place_append_tag(Nonce::assume_unique_for_key(nonce), Aad::from(&self.id), &mut body).ok()?;
        out.extend_from_slice(&body);
        Some(out)
    }

    fn decrypt(&self, cipher: &[u8]) -> Option<Vec<u8>> {
        let (id, rest) = cipher.split_at_checked(4)?;
        if id != self.id {
            return None;
        }
        let (nonce, sealed) = rest.split_at_checked(NONCE_LEN)?;
        let nonce = Nonce::try_assume_unique_for_key(nonce).ok()?;
        let mut body = sealed.to_vec();
        let plain = self.key.open_in_place(nonce, Aad::from(&self.id), &mut body).ok()?;
        let len = plain.len();
        body.truncate(len);
        Some(body)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
}
