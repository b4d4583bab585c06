//! Secrets at rest and the tokens we hand out.
//!
//! - Callback passwords and signing secrets are sealed with AES-256-GCM under
//!   a key from configuration, so a database dump does not leak them. Each
//!   sealed value is bound (as associated data) to its row and column, so a
//!   ciphertext copied into another row or column fails to open.
//! - API keys are 256 random bits shown once; only their SHA-256 is stored.
//!   A slow password hash is not needed: the tokens are not guessable, and
//!   authentication stays one indexed lookup.
//! - Signing secrets follow Standard Webhooks: `whsec_` + base64 of 32
//!   random bytes.

use base64::Engine as _;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use ring::aead::{AES_256_GCM, Aad, LessSafeKey, NONCE_LEN, Nonce, UnboundKey};
use ring::digest::{SHA256, digest};
use ring::rand::{SecureRandom, SystemRandom};
use secrecy::{ExposeSecret, SecretString};

/// The first byte of every sealed value: which format and key produced it,
/// so that a later key rotation can tell old values from new ones.
const SEALED_V1: u8 = 1;
const TAG_LEN: usize = 16;

pub const API_KEY_PREFIX: &str = "pcb_";
/// `pcb_` + 43 characters of unpadded base64url (32 bytes).
const API_KEY_LEN: usize = 4 + 43;
/// How much of a token is kept in clear to tell keys apart in listings.
const API_KEY_SHOWN: usize = 12;

pub const SECRET_PREFIX: &str = "whsec_";
const SECRET_BYTES: usize = 32;

#[derive(Debug, thiserror::Error)]
pub enum CryptoError {
    #[error("the encryption key must be 32 bytes encoded in base64")]
    BadKey,
    #[error("a sealed value could not be opened: wrong key, or the value was tampered with")]
    Open,
    #[error("the system random number generator failed")]
    Random,
}

/// Seals and opens values stored in the database.
pub struct Cipher {
    key: LessSafeKey,
    rng: SystemRandom,
}

impl std::fmt::Debug for Cipher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Cipher(AES-256-GCM, key redacted)")
    }
}

impl Cipher {
    /// `key_b64` is 32 bytes in standard base64 (e.g. `openssl rand -base64 32`).
    pub fn from_base64(key_b64: &SecretString) -> Result<Self, CryptoError> {
        let bytes = STANDARD
            .decode(key_b64.expose_secret().trim())
            .map_err(|_| CryptoError::BadKey)?;
        let unbound = UnboundKey::new(&AES_256_GCM, &bytes).map_err(|_| CryptoError::BadKey)?;
        Ok(Self {
            key: LessSafeKey::new(unbound),
            rng: SystemRandom::new(),
        })
    }

    /// `version || nonce || ciphertext || tag`, with a fresh random nonce.
    pub fn seal(&self, plaintext: &[u8], context: &[u8]) -> Result<Vec<u8>, CryptoError> {
        let mut nonce = [0u8; NONCE_LEN];
        self.rng.fill(&mut nonce).map_err(|_| CryptoError::Random)?;
        let mut in_out = plaintext.to_vec();
        self.key
            .seal_in_place_append_tag(
                Nonce::assume_unique_for_key(nonce),
                Aad::from(context),
                &mut in_out,
            )
            .map_err(|_| CryptoError::Random)?;
        let mut sealed = Vec::with_capacity(1 + NONCE_LEN + in_out.len());
        sealed.push(SEALED_V1);
        sealed.extend_from_slice(&nonce);
        sealed.extend_from_slice(&in_out);
        Ok(sealed)
    }

    pub fn open(&self, sealed: &[u8], context: &[u8]) -> Result<Vec<u8>, CryptoError> {
        if sealed.len() < 1 + NONCE_LEN + TAG_LEN || sealed[0] != SEALED_V1 {
            return Err(CryptoError::Open);
        }
        let (nonce, body) = sealed[1..].split_at(NONCE_LEN);
        let nonce = Nonce::try_assume_unique_for_key(nonce).map_err(|_| CryptoError::Open)?;
        let mut in_out = body.to_vec();
        let plain = self
            .key
            .open_in_place(nonce, Aad::from(context), &mut in_out)
            .map_err(|_| CryptoError::Open)?;
        Ok(plain.to_vec())
    }

    pub fn random_bytes<const N: usize>(&self) -> Result<[u8; N], CryptoError> {
        let mut bytes = [0u8; N];
        self.rng.fill(&mut bytes).map_err(|_| CryptoError::Random)?;
        Ok(bytes)
    }

    /// A new API key: the token (to show once), its hash (to store) and its
    /// shown prefix.
    pub fn new_api_key(&self) -> Result<NewApiKey, CryptoError> {
        let token = format!(
            "{API_KEY_PREFIX}{}",
            URL_SAFE_NO_PAD.encode(self.random_bytes::<32>()?)
        );
        Ok(NewApiKey {
            hash: hash_api_key(&token),
            prefix: token[..API_KEY_SHOWN].to_owned(),
            token: SecretString::from(token),
        })
    }

    /// The raw bytes of a new signing secret.
    pub fn new_signing_key(&self) -> Result<[u8; SECRET_BYTES], CryptoError> {
        self.random_bytes()
    }
}

#[derive(Debug)]
pub struct NewApiKey {
    pub token: SecretString,
    pub hash: Vec<u8>,
    pub prefix: String,
}

/// Whether `token` has the shape of one of our keys; anything else is
/// refused before touching the database.
pub fn looks_like_api_key(token: &str) -> bool {
    token.len() == API_KEY_LEN
        && token.starts_with(API_KEY_PREFIX)
        && token[API_KEY_PREFIX.len()..]
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

pub fn hash_api_key(token: &str) -> Vec<u8> {
    digest(&SHA256, token.as_bytes()).as_ref().to_vec()
}

/// The Standard Webhooks text form of a signing key.
pub fn format_signing_secret(key: &[u8]) -> SecretString {
    SecretString::from(format!("{SECRET_PREFIX}{}", STANDARD.encode(key)))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cipher() -> Cipher {
        Cipher::from_base64(&SecretString::from(STANDARD.encode([7u8; 32]))).unwrap()
    }

    #[test]
    fn seal_round_trips_and_binds_context() {
        let c = cipher();
        let sealed = c.seal(b"hunter2", b"row-1/password").unwrap();
        assert!(!sealed.windows(7).any(|w| w == b"hunter2"));
        assert_eq!(c.open(&sealed, b"row-1/password").unwrap(), b"hunter2");
        assert!(c.open(&sealed, b"row-2/password").is_err());
        let mut tampered = sealed.clone();
        *tampered.last_mut().unwrap() ^= 1;
        assert!(c.open(&tampered, b"row-1/password").is_err());
        assert_ne!(
            sealed,
            c.seal(b"hunter2", b"row-1/password").unwrap(),
            "fresh nonce"
        );
    }

    #[test]
    fn bad_keys_are_refused() {
        assert!(Cipher::from_base64(&SecretString::from("short".to_owned())).is_err());
        assert!(Cipher::from_base64(&SecretString::from(STANDARD.encode([0u8; 16]))).is_err());
    }

    #[test]
    fn api_keys_have_a_checkable_shape() {
        let key = cipher().new_api_key().unwrap();
        let token = key.token.expose_secret();
        assert!(looks_like_api_key(token), "{token}");
        assert_eq!(key.hash, hash_api_key(token));
        assert!(token.starts_with(&key.prefix));
        assert!(!looks_like_api_key("pcb_short"));
        assert!(!looks_like_api_key(&format!("xyz_{}", &token[4..])));
    }

    #[test]
    fn secrets_are_standard_webhooks_shaped() {
        let s = format_signing_secret(&[1u8; 32]);
        let text = s.expose_secret();
        assert!(text.starts_with("whsec_"));
        assert_eq!(STANDARD.decode(&text[6..]).unwrap(), vec![1u8; 32]);
    }
}
