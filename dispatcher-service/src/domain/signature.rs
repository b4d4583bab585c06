//! Standard Webhooks signing over `{webhook-id}.{webhook-timestamp}.{body}`:
//! `v1,` + base64 of HMAC-SHA256 keyed with the base64-decoded secret
//! (after its `whsec_` prefix), or `v1a,` + base64 of an Ed25519 signature
//! by the key whose 32-byte seed follows `whsk_` (the partner verifies with
//! the public key). While rotations' previous keys are valid there is one
//! signature per key, space-separated, so a receiver holding any of them
//! verifies.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use ring::hmac;
use ring::signature::Ed25519KeyPair;
use secrecy::{ExposeSecret, SecretString};

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum SignatureError {
    #[error("a signing secret is not whsec_ + base64")]
    MalformedSecret,
    #[error("there is no signing secret")]
    NoSecret,
}

/// A decoded signing key, ready to use.
#[derive(Clone)]
pub struct SigningKey(Key);

#[derive(Clone)]
enum Key {
    Hmac(hmac::Key),
    Ed25519(std::sync::Arc<Ed25519KeyPair>),
}

impl std::fmt::Debug for SigningKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SigningKey(..)")
    }
}

impl SigningKey {
    /// A key from its text form: `whsec_` (or no prefix) for HMAC,
    /// `whsk_` for an Ed25519 seed.
    pub fn from_secret(secret: &SecretString) -> Result<Self, SignatureError> {
        let text = secret.expose_secret();
        if let Some(seed) = text.strip_prefix("whsk_") {
            let seed = STANDARD
                .decode(seed)
                .map_err(|_| SignatureError::MalformedSecret)?;
            let pair = Ed25519KeyPair::from_seed_unchecked(&seed)
                .map_err(|_| SignatureError::MalformedSecret)?;
            return Ok(Self(Key::Ed25519(std::sync::Arc::new(pair))));
        }
        let encoded = text.strip_prefix("whsec_").unwrap_or(text);
        let bytes = STANDARD
            .decode(encoded)
            .map_err(|_| SignatureError::MalformedSecret)?;
        if bytes.is_empty() {
            return Err(SignatureError::MalformedSecret);
        }
        Ok(Self(Key::Hmac(hmac::Key::new(hmac::HMAC_SHA256, &bytes))))
    }
}

/// The `webhook-signature` header value for this message.
pub fn sign(
    keys: &[SigningKey],
    webhook_id: &str,
    timestamp: i64,
    body: &[u8],
) -> Result<String, SignatureError> {
    if keys.is_empty() {
        return Err(SignatureError::NoSecret);
    }
    let prefix = format!("{webhook_id}.{timestamp}.");
    // Written into one string: `v1,` + 44 base64 characters per HMAC key,
    // `v1a,` + 88 per Ed25519 key.
    let mut header = String::with_capacity(keys.len() * 48);
    let mut signed: Option<Vec<u8>> = None;
    for SigningKey(key) in keys {
        if !header.is_empty() {
            header.push(' ');
        }
        match key {
            Key::Hmac(key) => {
                let mut context = hmac::Context::with_key(key);
                context.update(prefix.as_bytes());
                context.update(body);
                header.push_str("v1,");
                STANDARD.encode_string(context.sign().as_ref(), &mut header);
            }
            Key::Ed25519(pair) => {
                // Ed25519 takes the message whole; made once for all keys.
                let message = signed.get_or_insert_with(|| [prefix.as_bytes(), body].concat());
                header.push_str("v1a,");
                STANDARD.encode_string(pair.sign(message).as_ref(), &mut header);
            }
        }
    }
    Ok(header)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(secret: &str) -> SigningKey {
        SigningKey::from_secret(&SecretString::from(secret.to_owned())).unwrap()
    }

    #[test]
    fn matches_the_standard_webhooks_test_vector() {
        // The reference example of the Standard Webhooks specification.
        let signature = sign(
            &[key("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw")],
            "msg_p5jXN8AQM9LWM0D4loKWxJek",
            1614265330,
            br#"{"test": 2432232314}"#,
        )
        .unwrap();
        assert_eq!(signature, "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=");
    }

    #[test]
    fn ed25519_keys_sign_v1a_that_their_public_key_verifies() {
        use ring::signature::{ED25519, KeyPair as _, UnparsedPublicKey};
        let seed = [7u8; 32];
        let pair = Ed25519KeyPair::from_seed_unchecked(&seed).unwrap();
        let whsk = format!("whsk_{}", STANDARD.encode(seed));
        let header = sign(&[key("whsec_AAAA"), key(&whsk)], "msg_1", 1614265330, b"{}").unwrap();
        let (hmac, ed) = header.split_once(' ').unwrap();
        assert!(hmac.starts_with("v1,"));
        let signature = STANDARD.decode(ed.strip_prefix("v1a,").unwrap()).unwrap();
        UnparsedPublicKey::new(&ED25519, pair.public_key().as_ref())
            .verify(b"msg_1.1614265330.{}", &signature)
            .expect("the public key verifies the v1a signature");
        assert!(SigningKey::from_secret(&SecretString::from("whsk_AAAA".to_owned())).is_err());
    }

    #[test]
    fn one_signature_per_secret() {
        let both = sign(&[key("whsec_AAAA"), key("whsec_BBBB")], "id", 1, b"{}").unwrap();
        assert_eq!(both.split(' ').count(), 2);
        assert!(both.split(' ').all(|s| s.starts_with("v1,")));
        assert_eq!(sign(&[], "id", 1, b"{}"), Err(SignatureError::NoSecret));
        assert!(SigningKey::from_secret(&SecretString::from("whsec_!!".to_owned())).is_err());
    }
}
