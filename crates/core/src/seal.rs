//! Secrets at rest: AES-256-GCM sealing for values Tessera must read back (TOTP seeds,
//! later provider tokens) and keyed hashes for values it only compares (one-time and
//! recovery codes). Every output names the key that made it, so keys can rotate: the
//! current key seals and hashes, previous keys still open and verify.

use std::fmt;

use aes_gcm::aead::{Aead, KeyInit, Payload};
use aes_gcm::{Aes256Gcm, Nonce};
use base64::Engine;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use hmac::{Hmac, Mac};
use sha2::Sha256;

use crate::secret::constant_time_eq;
use crate::{CoreError, random};

#[derive(Clone)]
pub struct SealKey {
    id: String,
    key: [u8; 32],
}

impl fmt::Debug for SealKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "SealKey({}, [redacted])", self.id)
    }
}

impl SealKey {
    /// `kid:base64` where the key is 32 bytes, e.g. from `tessera seal-key generate`.
    pub fn parse(text: &str) -> Result<Self, String> {
        let (id, b64) = text.trim().split_once(':').ok_or("a seal key is written kid:base64")?;
        let id_ok =
            !id.is_empty() && id.len() <= 32 && id.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
        if !id_ok {
            return Err(format!("seal key id {id:?} must be 1-32 letters, digits, - or _"));
        }
        let bytes = STANDARD.decode(b64).map_err(|_| "seal key is not base64".to_owned())?;
        let key: [u8; 32] = bytes.try_into().map_err(|_| "a seal key must be 32 bytes (256 bits)".to_owned())?;
        Ok(SealKey { id: id.to_owned(), key })
    }

    pub fn generate() -> Result<Self, CoreError> {
        let mut key = [0u8; 32];
        random::fill(&mut key)?;
        let mut id = [0u8; 6];
        random::fill(&mut id)?;
        Ok(SealKey { id: URL_SAFE_NO_PAD.encode(id), key })
    }

    pub fn id(&self) -> &str {
        &self.id
    }

    /// The `kid:base64` form, for printing a generated key.
    pub fn expose(&self) -> String {
        format!("{}:{}", self.id, STANDARD.encode(self.key))
    }

    /// A separate key for hashing codes, so the encryption key is used for one thing.
    fn hash_key(&self) -> [u8; 32] {
        let mut out = [0u8; 32];
        if let Ok(mut m) = <Hmac<Sha256> as Mac>::new_from_slice(&self.key) {
            m.update(b"tessera/code-hash/v1");
            out.copy_from_slice(&m.finalize().into_bytes());
        }
        out
    }
}

#[derive(Clone, Debug)]
pub struct Sealer {
    current: SealKey,
    previous: Vec<SealKey>,
}

const VERSION: &str = "v1";

impl Sealer {
    pub fn new(current: SealKey, previous: Vec<SealKey>) -> Self {
        Sealer { current, previous }
    }

    fn key(&self, id: &str) -> Option<&SealKey> {
        std::iter::once(&self.current).chain(&self.previous).find(|k| k.id == id)
    }

    /// `v1.<kid>.<base64url(nonce ‖ ciphertext)>`. `context` (e.g. the row's id) is
    /// authenticated, so a sealed value copied to another row does not open.
    pub fn seal(&self, plaintext: &[u8], context: &[u8]) -> Result<String, CoreError> {
        let mut nonce = [0u8; 12];
        random::fill(&mut nonce)?;
        let cipher = Aes256Gcm::new((&self.current.key).into());
        let ct = cipher
            .encrypt(&Nonce::from(nonce), Payload { msg: plaintext, aad: context })
            .map_err(|_| CoreError::Internal("sealing failed".into()))?;
        let mut blob = nonce.to_vec();
        blob.extend_from_slice(&ct);
        Ok(format!("{VERSION}.{}.{}", self.current.id, URL_SAFE_NO_PAD.encode(blob)))
    }

    pub fn open(&self, sealed: &str, context: &[u8]) -> Result<Vec<u8>, CoreError> {
        let bad = |why: &str| CoreError::Internal(format!("cannot open sealed value: {why}"));
        let mut parts = sealed.splitn(3, '.');
        let (Some(VERSION), Some(kid), Some(body)) = (parts.next(), parts.next(), parts.next()) else {
            return Err(bad("unknown format"));
        };
        let key = self.key(kid).ok_or_else(|| bad(&format!("key {kid:?} is not configured")))?;
        let blob = URL_SAFE_NO_PAD.decode(body).map_err(|_| bad("not base64"))?;
        if blob.len() < 12 + 16 {
            return Err(bad("too short"));
        }
        let (nonce, ct) = blob.split_at(12);
        let nonce: [u8; 12] = nonce.try_into().map_err(|_| bad("nonce"))?;
        Aes256Gcm::new((&key.key).into())
            .decrypt(&Nonce::from(nonce), Payload { msg: ct, aad: context })
            .map_err(|_| bad("authentication failed"))
    }

    /// True when `sealed` was made with another key than the current one.
    /// The id of the key new values are sealed (and codes keyed) with.
    pub fn current_id(&self) -> &str {
        &self.current.id
    }

    pub fn is_stale(&self, sealed: &str) -> bool {
        sealed.split('.').nth(1) != Some(self.current.id.as_str())
    }

    fn hash_with(key: &SealKey, purpose: &str, code: &str) -> String {
        let mut hex = String::with_capacity(64);
        if let Ok(mut m) = <Hmac<Sha256> as Mac>::new_from_slice(&key.hash_key()) {
            m.update(purpose.as_bytes());
            m.update(&[0]);
            m.update(code.as_bytes());
            for b in m.finalize().into_bytes() {
                hex.push_str(&format!("{b:02x}"));
            }
        }
        format!("{}.{hex}", key.id)
    }

    /// Keyed hash of a code under the current key: `<kid>.<hex HMAC-SHA256>`.
    pub fn hash_code(&self, purpose: &str, code: &str) -> String {
        Self::hash_with(&self.current, purpose, code)
    }

    /// The code's hash under every configured key, current first: what to look a
    /// stored hash up by when keys have rotated.
    pub fn code_hashes(&self, purpose: &str, code: &str) -> Vec<String> {
        std::iter::once(&self.current).chain(&self.previous).map(|k| Self::hash_with(k, purpose, code)).collect()
    }

    /// Whether `code` hashes to `stored`, in constant time.
    pub fn verify_code(&self, stored: &str, purpose: &str, code: &str) -> bool {
        let Some(key) = stored.split_once('.').and_then(|(kid, _)| self.key(kid)) else { return false };
        constant_time_eq(Self::hash_with(key, purpose, code).as_bytes(), stored.as_bytes())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(id: &str, byte: u8) -> SealKey {
        SealKey::parse(&format!("{id}:{}", STANDARD.encode([byte; 32])))
            .unwrap_or_else(|_| SealKey::generate().unwrap_or_else(|_| unreachable!()))
    }

    #[test]
    fn seal_and_open_with_context() {
        let s = Sealer::new(key("k1", 1), vec![]);
        let sealed = s.seal(b"totp seed", b"method-1").unwrap_or_default();
        assert!(sealed.starts_with("v1.k1."));
        assert!(!sealed.contains("totp"));
        assert_eq!(s.open(&sealed, b"method-1").ok().as_deref(), Some(&b"totp seed"[..]));
        assert!(s.open(&sealed, b"method-2").is_err(), "context is authenticated");
        let mut tampered = sealed.clone();
        tampered.pop();
        assert!(s.open(&tampered, b"method-1").is_err());
    }

    #[test]
    fn rotation_keeps_old_values_readable() {
        let old = Sealer::new(key("k1", 1), vec![]);
        let sealed = old.seal(b"seed", b"m").unwrap_or_default();
        let hash = old.hash_code("recovery", "ABCDE-FGHIJ");
        let new = Sealer::new(key("k2", 2), vec![key("k1", 1)]);
        assert!(new.is_stale(&sealed));
        assert_eq!(new.open(&sealed, b"m").ok().as_deref(), Some(&b"seed"[..]));
        assert!(new.verify_code(&hash, "recovery", "ABCDE-FGHIJ"));
        assert!(new.code_hashes("recovery", "ABCDE-FGHIJ").contains(&hash));
        let forgotten = Sealer::new(key("k2", 2), vec![]);
        assert!(forgotten.open(&sealed, b"m").is_err());
    }

    #[test]
    fn code_hashes_depend_on_purpose_and_key() {
        let s = Sealer::new(key("k1", 1), vec![]);
        let h = s.hash_code("sms", "123456");
        assert!(s.verify_code(&h, "sms", "123456"));
        assert!(!s.verify_code(&h, "sms", "123457"));
        assert!(!s.verify_code(&h, "recovery", "123456"));
        assert_ne!(h, Sealer::new(key("k1", 3), vec![]).hash_code("sms", "123456"));
    }

    #[test]
    fn parse_explains_bad_keys() {
        assert!(SealKey::parse("nokid").is_err());
        assert!(SealKey::parse("k1:c2hvcnQ=").is_err_and(|e| e.contains("32 bytes")));
        let k = SealKey::generate().unwrap_or_else(|_| unreachable!());
        assert_eq!(SealKey::parse(&k.expose()).map(|p| p.id().to_owned()), Ok(k.id().to_owned()));
        assert!(!format!("{k:?}").contains(&k.expose()));
    }
}
