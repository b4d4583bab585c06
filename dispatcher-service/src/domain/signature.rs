//! Standard Webhooks signing: `webhook-signature` is `v1,` + base64 of
//! HMAC-SHA256 over `{webhook-id}.{webhook-timestamp}.{body}`, keyed with the
//! base64-decoded secret (after its `whsec_` prefix). During a rotation's
//! grace period there is one signature per valid secret, space-separated,
//! so a receiver holding either secret verifies.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use ring::hmac;
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
pub struct SigningKey(hmac::Key);

impl std::fmt::Debug for SigningKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SigningKey(..)")
    }
}

impl SigningKey {
    pub fn from_secret(secret: &SecretString) -> Result<Self, SignatureError> {
        let text = secret.expose_secret();
        let encoded = text.strip_prefix("whsec_").unwrap_or(text);
        let bytes = STANDARD
            .decode(encoded)
            .map_err(|_| SignatureError::MalformedSecret)?;
        if bytes.is_empty() {
            return Err(SignatureError::MalformedSecret);
        }
        Ok(Self(hmac::Key::new(hmac::HMAC_SHA256, &bytes)))
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
    // Written into one string: `v1,` + 44 base64 characters per key.
    let mut header = String::with_capacity(keys.len() * 48);
    for SigningKey(key) in keys {
        let mut context = hmac::Context::with_key(key);
        context.update(prefix.as_bytes());
        context.update(body);
        if !header.is_empty() {
            header.push(' ');
        }
        header.push_str("v1,");
        STANDARD.encode_string(context.sign().as_ref(), &mut header);
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
    fn one_signature_per_secret() {
        let both = sign(&[key("whsec_AAAA"), key("whsec_BBBB")], "id", 1, b"{}").unwrap();
        assert_eq!(both.split(' ').count(), 2);
        assert!(both.split(' ').all(|s| s.starts_with("v1,")));
        assert_eq!(sign(&[], "id", 1, b"{}"), Err(SignatureError::NoSecret));
        assert!(SigningKey::from_secret(&SecretString::from("whsec_!!".to_owned())).is_err());
    }
}
