//! Signing keys: what a partner reads (the secret, or the public key) and
//! what the dispatcher signs with, rotation with a chosen life for the key
//! it replaces, and the switch between HMAC and Ed25519.
//!
//! A rotation keeps the replaced key valid for its own time, beside those
//! of earlier rotations still valid: every valid key signs each delivery,
//! so a partner moving several receivers over one by one verifies with
//! whichever key each holds.

use super::*;
use crate::domain::signing::{MAX_PREVIOUS_KEYS, SignatureScheme};
use crate::storage::models::KeysChange;

/// A key a receiver verifies with: the `whsec_` secret, or the `whpk_`
/// public key for Ed25519. `expires_at` for a previous key only.
#[derive(Debug)]
pub struct VerificationKey {
    pub scheme: SignatureScheme,
    pub key: SecretString,
    pub expires_at: Option<DateTime<Utc>>,
}

/// A registration's keys as its partner sees them: the current one, and
/// the previous ones still valid, newest first.
#[derive(Debug)]
pub struct SigningSecrets {
    pub registration_id: RegistrationId,
    pub current: VerificationKey,
    pub previous: Vec<VerificationKey>,
}

/// What a rotation does when the replaced key would make more than
/// [`MAX_PREVIOUS_KEYS`] valid.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum WhenFull {
    /// Refuse it (a rotation the partner asked for: they choose whether to
    /// wait or to drop the replaced key at once).
    Refuse,
    /// Drop the previous key that expires first (a scheme change, which
    /// must not fail on the keys' history).
    DropSoonest,
}

/// A key opened: its scheme, its bytes (the HMAC secret, or the Ed25519
/// seed) and, for a previous key, when it stops being used.
struct OpenKey {
    scheme: SignatureScheme,
    bytes: Vec<u8>,
    expires_at: Option<DateTime<Utc>>,
}

impl OpenKey {
    fn verification(&self) -> Result<VerificationKey, RegistryError> {
        let key = match self.scheme {
            SignatureScheme::HmacSha256 => crypto::format_signing_secret(&self.bytes),
            SignatureScheme::Ed25519 => SecretString::from(
                crypto::ed25519_public_key(&self.bytes).map_err(RegistryError::internal)?,
            ),
        };
        Ok(VerificationKey {
            scheme: self.scheme,
            key,
            expires_at: self.expires_at,
        })
    }

    /// The text form the dispatcher signs with.
    fn signing(&self) -> SecretString {
        match self.scheme {
            SignatureScheme::HmacSha256 => crypto::format_signing_secret(&self.bytes),
            SignatureScheme::Ed25519 => crypto::format_ed25519_seed(&self.bytes),
        }
    }
}

impl Registry {
    pub(crate) async fn get_signing_secrets(
        &self,
        partner_id: PartnerId,
        notification_type: NotificationTypeId,
    ) -> Result<SigningSecrets, RegistryError> {
        let mut conn = self.pool.get().await?;
        let row = registrations::find_active(&mut conn, partner_id, notification_type)
            .await?
            .ok_or_else(|| no_active(partner_id, notification_type))?;
        self.signing_secrets(&row, Utc::now())
    }

    /// A new current key of the same scheme; the replaced one stays valid
    /// for `keep_previous` (the configured grace when `None`; zero drops
    /// it at once, as after a leak).
    pub(crate) async fn rotate_signing_secret(
        &self,
        partner_id: PartnerId,
        notification_type: NotificationTypeId,
        keep_previous: Option<Duration>,
    ) -> Result<SigningSecrets, RegistryError> {
        let keep = keep_previous.unwrap_or(self.secret_grace);
        let mut conn = self.pool.get().await?;
        conn.transaction(async |conn| {
            let row = registrations::lock_active(conn, partner_id, notification_type)
                .await?
                .ok_or_else(|| no_active(partner_id, notification_type))?;
            let scheme = SignatureScheme::from_stored(&row.signature_scheme);
            let row = self
                .rotate_keys(conn, &row, scheme, keep, WhenFull::Refuse)
                .await?;
            changes::record(conn, Change::Callback(partner_id, notification_type)).await?;
            self.signing_secrets(&row, Utc::now())
        })
        .await
    }

    /// Replaces `row`'s current key with a fresh one of `scheme`; the
    /// replaced key joins the previous ones for `keep` (not at all when
    /// zero), and previous keys that have expired are dropped. More than
    /// [`MAX_PREVIOUS_KEYS`] left valid is dealt with as `when_full` says.
    pub(super) async fn rotate_keys(
        &self,
        conn: &mut diesel_async::AsyncPgConnection,
        row: &RegistrationRow,
        scheme: SignatureScheme,
        keep: Duration,
        when_full: WhenFull,
    ) -> Result<RegistrationRow, RegistryError> {
        let id = RegistrationId::from_uuid(row.id);
        let now = Utc::now();
        let mut change = KeysChange {
            signing_secret_sealed: self.fresh_key(id)?,
            signature_scheme: scheme.as_str().to_owned(),
            previous_keys_sealed: Vec::new(),
            previous_keys_scheme: Vec::new(),
            previous_keys_expire_at: Vec::new(),
            updated_at: now,
        };
        if !keep.is_zero() {
            let keep = chrono::Duration::from_std(keep).map_err(RegistryError::internal)?;
            change.push(
                &row.signing_secret_sealed,
                &row.signature_scheme,
                now + keep,
            );
        }
        let still_valid = previous_entries(row).filter(|(_, _, expires_at)| *expires_at > now);
        for (sealed, scheme, expires_at) in still_valid {
            change.push(sealed, scheme, expires_at);
        }
        if change.previous_keys_sealed.len() > MAX_PREVIOUS_KEYS {
            let kept = &change.previous_keys_expire_at[1..];
            let soonest = kept.iter().min().copied().unwrap_or(now);
            if when_full == WhenFull::Refuse {
                return Err(RegistryError::TooManyPreviousKeys {
                    count: kept.len(),
                    next_expiry: soonest,
                });
            }
            let at = 1 + kept.iter().position(|at| *at == soonest).unwrap_or(0);
            change.remove(at);
        }
        registrations::set_keys(conn, id, &change).await
    }

    /// A new key's bytes, sealed for registration `id`.
    pub(super) fn fresh_key(&self, id: RegistrationId) -> Result<Vec<u8>, RegistryError> {
        let fresh = self
            .cipher
            .new_signing_key()
            .map_err(RegistryError::internal)?;
        self.seal(&fresh, &secret_context(id))
    }

    pub(super) fn signing_secrets(
        &self,
        row: &RegistrationRow,
        now: DateTime<Utc>,
    ) -> Result<SigningSecrets, RegistryError> {
        let mut keys = self.open_keys(row, now)?.into_iter();
        let current = keys
            .next()
            .ok_or_else(|| RegistryError::internal("a registration without a key"))?;
        Ok(SigningSecrets {
            registration_id: RegistrationId::from_uuid(row.id),
            current: current.verification()?,
            previous: keys.map(|k| k.verification()).collect::<Result<_, _>>()?,
        })
    }

    /// Every key a delivery is signed with, in the dispatcher's text form:
    /// the current one first, then the previous ones still valid.
    pub(super) fn signing_keys(
        &self,
        row: &RegistrationRow,
        now: DateTime<Utc>,
    ) -> Result<Vec<SecretString>, RegistryError> {
        Ok(self
            .open_keys(row, now)?
            .iter()
            .map(OpenKey::signing)
            .collect())
    }

    /// The current key, then the previous ones valid at `now`, opened.
    fn open_keys(
        &self,
        row: &RegistrationRow,
        now: DateTime<Utc>,
    ) -> Result<Vec<OpenKey>, RegistryError> {
        let context = secret_context(RegistrationId::from_uuid(row.id));
        let mut keys = vec![OpenKey {
            scheme: SignatureScheme::from_stored(&row.signature_scheme),
            bytes: self.open(&row.signing_secret_sealed, &context)?,
            expires_at: None,
        }];
        for (sealed, scheme, expires_at) in previous_entries(row) {
            if expires_at > now {
                keys.push(OpenKey {
                    scheme: SignatureScheme::from_stored(scheme),
                    bytes: self.open(sealed, &context)?,
                    expires_at: Some(expires_at),
                });
            }
        }
        Ok(keys)
    }
}

/// The row's previous keys as (sealed, scheme, expiry), newest first.
fn previous_entries(row: &RegistrationRow) -> impl Iterator<Item = (&[u8], &str, DateTime<Utc>)> {
    row.previous_keys_sealed
        .iter()
        .zip(&row.previous_keys_scheme)
        .zip(&row.previous_keys_expire_at)
        .map(|((sealed, scheme), at)| (sealed.as_slice(), scheme.as_str(), *at))
}
