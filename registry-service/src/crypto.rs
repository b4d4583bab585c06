//! Secrets at rest and the tokens we hand out.
//!
//! - Callback passwords and signing secrets are sealed with AES-256-GCM under
//!   a key from configuration, so a database dump does not leak them. Each
//!   sealed value is bound (as associated data) to its row and column, so a
//!   ciphertext copied into another row or column fails to open, and names
//!   the key that sealed it, so keys can be rotated: old keys stay in the
//!   ring to open what they sealed until a re-seal moves it to the new one.
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

/// The first byte of a sealed value: its format. Version 1 (`1 || nonce ||
/// ciphertext || tag`) does not say which key sealed it; version 2 adds the
/// key's id after this byte, so a key ring opens it with the right key and
/// a re-seal finds what an old key still holds.
const SEALED_V1: u8 = 1;
const SEALED_V2: u8 = 2;
/// A key id: the first bytes of a SHA-256 over the key, domain-separated.
pub(crate) const KEY_ID_LEN: usize = 8;
const TAG_LEN: usize = 16;

pub(crate) const API_KEY_PREFIX: &str = "pcb_";
/// `pcb_` + 43 characters of unpadded base64url (32 bytes).
const API_KEY_LEN: usize = 4 + 43;
/// How much of a token is kept in clear to tell keys apart in listings.
const API_KEY_SHOWN: usize = 12;

pub(crate) const SECRET_PREFIX: &str = "whsec_";
const SECRET_BYTES: usize = 32;

#[derive(Debug, thiserror::Error)]
pub enum CryptoError {
    #[error("the encryption key must be 32 bytes encoded in base64")]
    BadKey,
    #[error("a sealed value could not be opened: wrong key, or the value was tampered with")]
    Open,
    #[error("a sealed value names key {0}, which is not configured")]
    UnknownKey(String),
    #[error("the system random number generator failed")]
    Random,
}

/// Seals and opens values stored in the database, with a key ring: new
/// values are sealed under the current key; values sealed under an older
/// key of the ring still open, until a re-seal moves them to the current
/// one and the old key can be retired.
pub struct Cipher {
    /// The current key first.
    keys: Vec<SealingKey>,
    rng: SystemRandom,
}

struct SealingKey {
    id: [u8; KEY_ID_LEN],
    key: LessSafeKey,
}

impl SealingKey {
    fn from_base64(key_b64: &SecretString) -> Result<Self, CryptoError> {
        let bytes = STANDARD
            .decode(key_b64.expose_secret().trim())
            .map_err(|_| CryptoError::BadKey)?;
        let unbound = UnboundKey::new(&AES_256_GCM, &bytes).map_err(|_| CryptoError::BadKey)?;
        let mut context = ring::digest::Context::new(&SHA256);
        context.update(b"partner-callbacks sealing key id\0");
        context.update(&bytes);
        let mut id = [0u8; KEY_ID_LEN];
        id.copy_from_slice(&context.finish().as_ref()[..KEY_ID_LEN]);
        Ok(Self {
            id,
            key: LessSafeKey::new(unbound),
        })
    }

    fn open(&self, nonce: &[u8], body: &[u8], context: &[u8]) -> Result<Vec<u8>, CryptoError> {
        let nonce = Nonce::try_assume_unique_for_key(nonce).map_err(|_| CryptoError::Open)?;
        let mut in_out = body.to_vec();
        let plain = self
            .key
            .open_in_place(nonce, Aad::from(context), &mut in_out)
            .map_err(|_| CryptoError::Open)?;
        Ok(plain.to_vec())
    }
}

impl std::fmt::Debug for Cipher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let ids: Vec<String> = self.keys.iter().map(|k| key_id_text(&k.id)).collect();
        write!(f, "Cipher(AES-256-GCM, key ids {ids:?}, keys redacted)")
    }
}

fn header(id: &[u8; KEY_ID_LEN]) -> Vec<u8> {
    let mut header = vec![SEALED_V2];
    header.extend_from_slice(id);
    header
}

/// How a key id is shown to operators: 16 hex digits.
pub(crate) fn key_id_text(id: &[u8]) -> String {
    id.iter().map(|b| format!("{b:02x}")).collect()
}

impl Cipher {
    /// `key_b64` is 32 bytes in standard base64 (e.g. `openssl rand -base64 32`).
    pub fn from_base64(key_b64: &SecretString) -> Result<Self, CryptoError> {
        Ok(Self {
            keys: vec![SealingKey::from_base64(key_b64)?],
            rng: SystemRandom::new(),
        })
    }

    /// Adds keys that only open: values sealed under them stay readable.
    pub fn with_old_keys(mut self, old: &[SecretString]) -> Result<Self, CryptoError> {
        for key in old {
            let key = SealingKey::from_base64(key)?;
            if self.keys.iter().all(|known| known.id != key.id) {
                self.keys.push(key);
            }
        }
        Ok(self)
    }

    /// The id of the key new values are sealed under.
    pub fn current_key_id(&self) -> [u8; KEY_ID_LEN] {
        self.keys[0].id
    }

    /// The first bytes of every value sealed under the current key, to find
    /// the values that are not (`substring(column for 9) <> this`).
    pub fn current_header(&self) -> Vec<u8> {
        header(&self.keys[0].id)
    }

    /// The first bytes of a value sealed under each key of the ring.
    pub fn headers(&self) -> Vec<Vec<u8>> {
        self.keys.iter().map(|k| header(&k.id)).collect()
    }

    /// `2 || key id || nonce || ciphertext || tag`, under the current key,
    /// with a fresh random nonce.
    pub fn seal(&self, plaintext: &[u8], context: &[u8]) -> Result<Vec<u8>, CryptoError> {
        let mut nonce = [0u8; NONCE_LEN];
        self.rng.fill(&mut nonce).map_err(|_| CryptoError::Random)?;
        let mut in_out = plaintext.to_vec();
        self.keys[0]
            .key
            .seal_in_place_append_tag(
                Nonce::assume_unique_for_key(nonce),
                Aad::from(context),
                &mut in_out,
            )
            .map_err(|_| CryptoError::Random)?;
        let mut sealed = self.current_header();
        sealed.reserve(NONCE_LEN + in_out.len());
        sealed.extend_from_slice(&nonce);
        sealed.extend_from_slice(&in_out);
        Ok(sealed)
    }

    /// Opens a value of either format with the key that sealed it.
    pub fn open(&self, sealed: &[u8], context: &[u8]) -> Result<Vec<u8>, CryptoError> {
        match sealed.first() {
            Some(&SEALED_V2) if sealed.len() >= 1 + KEY_ID_LEN + NONCE_LEN + TAG_LEN => {
                let (id, rest) = sealed[1..].split_at(KEY_ID_LEN);
                let key = self
                    .keys
                    .iter()
                    .find(|k| k.id == id)
                    .ok_or_else(|| CryptoError::UnknownKey(key_id_text(id)))?;
                let (nonce, body) = rest.split_at(NONCE_LEN);
                key.open(nonce, body, context)
            }
            // Version 1 names no key: the one that opens it sealed it.
            Some(&SEALED_V1) if sealed.len() >= 1 + NONCE_LEN + TAG_LEN => {
                let (nonce, body) = sealed[1..].split_at(NONCE_LEN);
                self.keys
                    .iter()
                    .find_map(|k| k.open(nonce, body, context).ok())
                    .ok_or(CryptoError::Open)
            }
            _ => Err(CryptoError::Open),
        }
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
pub(crate) fn looks_like_api_key(token: &str) -> bool {
    token.len() == API_KEY_LEN
        && token.starts_with(API_KEY_PREFIX)
        && token[API_KEY_PREFIX.len()..]
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

pub(crate) fn hash_api_key(token: &str) -> Vec<u8> {
    digest(&SHA256, token.as_bytes()).as_ref().to_vec()
}

/// The Standard Webhooks text form of a signing key.
pub(crate) fn format_signing_secret(key: &[u8]) -> SecretString {
    SecretString::from(format!("{SECRET_PREFIX}{}", STANDARD.encode(key)))
}

/// The prefix of an Ed25519 public key's text form (Standard Webhooks).
pub(crate) const PUBLIC_KEY_PREFIX: &str = "whpk_";
/// The prefix of an Ed25519 signing key's text form: the 32-byte seed, as
/// the registry hands it to the dispatcher and nobody else.
pub(crate) const SIGNING_KEY_PREFIX: &str = "whsk_";

/// The text form of the Ed25519 public key of `seed`: what a partner
/// verifies `v1a` signatures with.
pub(crate) fn ed25519_public_key(seed: &[u8]) -> Result<String, CryptoError> {
    let pair = ring::signature::Ed25519KeyPair::from_seed_unchecked(seed)
        .map_err(|_| CryptoError::Open)?;
    Ok(format!(
        "{PUBLIC_KEY_PREFIX}{}",
        STANDARD.encode(ring::signature::KeyPair::public_key(&pair).as_ref())
    ))
}

/// The text form of the Ed25519 signing key `seed`, for the dispatcher.
pub(crate) fn format_ed25519_seed(seed: &[u8]) -> SecretString {
    SecretString::from(format!("{SIGNING_KEY_PREFIX}{}", STANDARD.encode(seed)))
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

    fn key(byte: u8) -> SecretString {
        SecretString::from(STANDARD.encode([byte; 32]))
    }

    #[test]
    fn a_key_ring_opens_old_values_and_seals_under_the_current_key() {
        let old = Cipher::from_base64(&key(1)).unwrap();
        let sealed_old = old.seal(b"pw", b"ctx").unwrap();
        let ring = Cipher::from_base64(&key(2))
            .unwrap()
            .with_old_keys(&[key(1)])
            .unwrap();
        assert_eq!(ring.open(&sealed_old, b"ctx").unwrap(), b"pw");
        let sealed_new = ring.seal(b"pw", b"ctx").unwrap();
        assert!(sealed_new.starts_with(&ring.current_header()));
        assert!(!sealed_old.starts_with(&ring.current_header()));
        assert_eq!(
            ring.headers(),
            [ring.current_header(), old.current_header()]
        );

        // Once the old key is retired its values name a key it lacks.
        let retired = Cipher::from_base64(&key(2)).unwrap();
        assert!(matches!(
            retired.open(&sealed_old, b"ctx"),
            Err(CryptoError::UnknownKey(id)) if id == key_id_text(&old.current_key_id())
        ));
        assert!(old.open(&sealed_new, b"ctx").is_err());
    }

    #[test]
    fn version_one_values_open_with_whichever_key_sealed_them() {
        let ring = Cipher::from_base64(&key(2))
            .unwrap()
            .with_old_keys(&[key(1)])
            .unwrap();
        let legacy = Cipher::from_base64(&key(1)).unwrap();
        // Version 1: the version byte, then what version 2 has after its id.
        let v2 = legacy.seal(b"pw", b"ctx").unwrap();
        let mut v1 = vec![SEALED_V1];
        v1.extend_from_slice(&v2[1 + KEY_ID_LEN..]);
        assert_eq!(ring.open(&v1, b"ctx").unwrap(), b"pw");
        assert!(ring.open(&v1, b"other").is_err());
        assert!(ring.open(&v1[..10], b"ctx").is_err());
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
