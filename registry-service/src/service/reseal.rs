//! Moving sealed secrets to the current key while the registry serves.
//!
//! Rows are taken in id order, a batch per transaction, each row locked
//! while it is opened and sealed again, so a partner's concurrent change to
//! the same registration either lands before (and is re-sealed) or waits
//! (and is sealed under the current key by its own request). The plaintext
//! does not change, so nothing is published to the change log and the
//! dispatchers' resolution caches stay valid.

use diesel_async::AsyncConnection;

use super::{Registry, password_context, secret_context};
use crate::crypto::{self, Cipher};
use crate::domain::{RegistrationId, RegistryError};
use crate::storage::sealed::{self, SealedRow};

/// What a re-seal did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ResealReport {
    /// Rows written under the current key.
    pub resealed: u64,
    /// Rows still holding a value under another key once it finished
    /// (changed by a replica that did not yet have the current key).
    pub left: i64,
}

impl Registry {
    /// Seals every value that is not under the current key again, under
    /// it, `batch` rows per transaction.
    pub(crate) async fn reseal(&self, batch: i64) -> Result<ResealReport, RegistryError> {
        let header = self.cipher.current_header();
        let mut after = uuid::Uuid::nil();
        let mut resealed = 0;
        loop {
            let mut conn = self.pool.get().await?;
            let last = conn
                .transaction(async |conn| {
                    let rows = sealed::lock_not_under(conn, &header, after, batch).await?;
                    for row in &rows {
                        sealed::update(conn, &reseal_row(&self.cipher, row)?).await?;
                    }
                    Ok::<_, RegistryError>(rows.last().map(|row| (row.id, rows.len())))
                })
                .await?;
            let Some((id, count)) = last else { break };
            after = id;
            resealed += count as u64;
            tracing::info!(resealed, "re-sealed a batch under the current key");
        }
        let mut conn = self.pool.get().await?;
        let left = sealed::count_not_under(&mut conn, &header).await?;
        Ok(ResealReport { resealed, left })
    }

    /// Refuses a key ring that lacks a key some stored value names: such
    /// values would fail every request that needs them.
    pub(crate) async fn check_key_ring(&self) -> anyhow::Result<()> {
        let headers = self.cipher.headers();
        let mut conn = self.pool.get().await?;
        let orphaned = sealed::count_under_other_keys(&mut conn, headers).await?;
        anyhow::ensure!(
            orphaned == 0,
            "{orphaned} registrations hold secrets sealed under a key that is not configured \
             (REGISTRY_ENCRYPTION_KEY, REGISTRY_OLD_ENCRYPTION_KEYS): give the registry its old \
             key back, and retire it only after `registry-service reseal` reports none left"
        );
        Ok(())
    }
}

fn reseal_row(cipher: &Cipher, row: &SealedRow) -> Result<SealedRow, RegistryError> {
    let id = RegistrationId::from_uuid(row.id);
    let again = |sealed: &[u8], context: &str| -> Result<Vec<u8>, RegistryError> {
        let plain = cipher
            .open(sealed, context.as_bytes())
            .map_err(RegistryError::internal)?;
        cipher
            .seal(&plain, context.as_bytes())
            .map_err(RegistryError::internal)
    };
    let password = password_context(id);
    let secret = secret_context(id);
    Ok(SealedRow {
        id: row.id,
        callback_password_sealed: row
            .callback_password_sealed
            .as_deref()
            .map(|sealed| again(sealed, &password))
            .transpose()?,
        signing_secret_sealed: again(&row.signing_secret_sealed, &secret)?,
        previous_keys_sealed: row
            .previous_keys_sealed
            .iter()
            .map(|sealed| again(sealed, &secret))
            .collect::<Result<_, _>>()?,
    })
}

/// The key id new values are sealed under, as operators see it.
pub(crate) fn current_key_id(registry: &Registry) -> String {
    crypto::key_id_text(&registry.cipher.current_key_id())
}
