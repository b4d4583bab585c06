//! How a registration's deliveries are signed, and the bounds on the keys
//! a rotation leaves valid.
//!
//! Standard Webhooks defines two schemes: `v1`, HMAC-SHA256 with a secret
//! both sides hold, and `v1a`, Ed25519, for which the partner holds only
//! the public key, so a key leaked from the partner's side cannot forge a
//! delivery.

use std::time::Duration;

/// A registration's signature scheme.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum SignatureScheme {
    /// Standard Webhooks `v1`: HMAC-SHA256 under a shared `whsec_` secret.
    #[default]
    HmacSha256,
    /// Standard Webhooks `v1a`: Ed25519; the partner verifies with the
    /// `whpk_` public key.
    Ed25519,
}

impl SignatureScheme {
    /// The stored and public name.
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::HmacSha256 => "hmac-sha256",
            Self::Ed25519 => "ed25519",
        }
    }

    /// The scheme a stored name means; an unknown name (written by a newer
    /// registry) reads as the default rather than failing every read.
    pub fn from_stored(name: &str) -> Self {
        match name {
            "ed25519" => Self::Ed25519,
            _ => Self::HmacSha256,
        }
    }
}

/// The most previous keys valid at once: each one signs every delivery
/// while it is valid, so each costs every delivery a signature.
pub const MAX_PREVIOUS_KEYS: usize = 5;

/// The longest a previous key may stay valid after a rotation: a week, as
/// Stripe allows when rolling a webhook secret.
pub const MAX_PREVIOUS_KEY_LIFETIME: Duration = Duration::from_secs(7 * 24 * 3600);
