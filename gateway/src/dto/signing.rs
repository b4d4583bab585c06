//! Signing keys as partners see them: the scheme a registration signs
//! with, the key to verify with (an HMAC secret, or an Ed25519 public key),
//! the keys earlier rotations left valid, and how long a rotation keeps the
//! key it replaces.

use callbacks_proto::registry::v1 as pb;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::maybe_time;

/// How deliveries are signed (Standard Webhooks): `hmac-sha256` (`v1`,
/// with the shared `whsec_` secret) or `ed25519` (`v1a`: you verify with
/// the `whpk_` public key and hold nothing that could sign).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub(crate) enum SignatureScheme {
    #[default]
    #[serde(rename = "hmac-sha256")]
    HmacSha256,
    #[serde(rename = "ed25519")]
    Ed25519,
}

impl From<SignatureScheme> for pb::SignatureScheme {
    fn from(scheme: SignatureScheme) -> Self {
        match scheme {
            SignatureScheme::HmacSha256 => Self::HmacSha256,
            SignatureScheme::Ed25519 => Self::Ed25519,
        }
    }
}

impl SignatureScheme {
    /// The scheme of a wire value (an unknown one, from a newer registry,
    /// reads as the default).
    pub(crate) fn from_wire(value: i32) -> Self {
        match pb::SignatureScheme::try_from(value) {
            Ok(pb::SignatureScheme::Ed25519) => Self::Ed25519,
            _ => Self::HmacSha256,
        }
    }
}

/// A key to verify deliveries with: `secret` for `hmac-sha256`,
/// `publicKey` for `ed25519`.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub(crate) struct VerificationKey {
    pub scheme: SignatureScheme,
    /// `whsec_` + base64 of the shared secret.
    pub secret: Option<String>,
    /// `whpk_` + base64 of the 32-byte Ed25519 public key.
    pub public_key: Option<String>,
    /// When a previous key stops signing; null for the current one.
    pub expires_at: Option<DateTime<Utc>>,
}

impl VerificationKey {
    fn new(scheme: i32, key: String, expires_at: Option<DateTime<Utc>>) -> Self {
        let scheme = SignatureScheme::from_wire(scheme);
        let (secret, public_key) = match scheme {
            SignatureScheme::HmacSha256 => (Some(key), None),
            SignatureScheme::Ed25519 => (None, Some(key)),
        };
        Self {
            scheme,
            secret,
            public_key,
            expires_at,
        }
    }
}

/// The keys a partner verifies our signatures with.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
#[schema(example = json!({
    "registrationId": "0190f3c4-5e7a-7c1d-9a52-6f1b2c3d4e5f",
    "scheme": "hmac-sha256",
    "secret": "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw",
    "publicKey": null,
    "previousKeys": [{
        "scheme": "hmac-sha256",
        "secret": "whsec_C2FVsBQIhrscChlQIMV+b5sSYspob7oD",
        "publicKey": null,
        "expiresAt": "2026-12-08T09:30:00Z"
    }],
    "previousSecret": "whsec_C2FVsBQIhrscChlQIMV+b5sSYspob7oD",
    "previousSecretExpiresAt": "2026-12-08T09:30:00Z"
}))]
pub(crate) struct SigningSecret {
    #[schema(format = Uuid)]
    pub registration_id: String,
    /// The scheme of the current key.
    pub scheme: SignatureScheme,
    /// The current `whsec_` secret (`hmac-sha256`); null for `ed25519`.
    pub secret: Option<String>,
    /// The current `whpk_` public key (`ed25519`); null for `hmac-sha256`.
    pub public_key: Option<String>,
    /// Keys replaced by rotations and still valid, newest first: each
    /// signs every delivery until it expires.
    pub previous_keys: Vec<VerificationKey>,
    /// The newest previous key, as `previousKeys[0]` (kept for clients of
    /// the one-previous-secret form).
    #[schema(deprecated)]
    pub previous_secret: Option<String>,
    #[schema(deprecated)]
    pub previous_secret_expires_at: Option<DateTime<Utc>>,
}

impl From<pb::SigningSecrets> for SigningSecret {
    fn from(s: pb::SigningSecrets) -> Self {
        let current = VerificationKey::new(s.scheme, s.current, None);
        let previous_keys: Vec<VerificationKey> = s
            .previous
            .into_iter()
            .map(|k| VerificationKey::new(k.scheme, k.key, maybe_time(k.expires_at)))
            .collect();
        let newest = previous_keys.first();
        Self {
            registration_id: s.registration_id,
            scheme: current.scheme,
            previous_secret: newest.and_then(|k| k.secret.clone().or(k.public_key.clone())),
            previous_secret_expires_at: newest.and_then(|k| k.expires_at),
            secret: current.secret,
            public_key: current.public_key,
            previous_keys,
        }
    }
}

/// `POST …/secret/rotate` (optional): how long the replaced key keeps
/// signing.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
#[schema(example = json!({"previousExpiresInSeconds": 3600}))]
pub(crate) struct RotateBody {
    /// 0 (the replaced key stops signing at once, as after a leak) to
    /// 604,800 (a week). Left out: 24 hours (the operator's setting).
    #[serde(default)]
    #[schema(minimum = 0, maximum = 604800)]
    pub previous_expires_in_seconds: Option<u32>,
}
