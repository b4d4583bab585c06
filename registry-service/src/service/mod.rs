//! The registry's use cases, between the gRPC edge and storage: each method
//! takes already-parsed domain values, runs its queries (in one transaction
//! where it reads and then writes) and seals or opens secrets on the way.
//! Partners, keys, the catalogue and the change log are in [`accounts`];
//! registrations, their secrets, resolution and outcomes in
//! [`callbacks`]; moving secrets to the current key in [`reseal`].

mod accounts;
mod callbacks;
mod pause;
mod reseal;
mod signing;

pub(crate) use reseal::{ResealReport, current_key_id};
pub(crate) use signing::SigningSecrets;

use std::time::Duration;

use chrono::{DateTime, Utc};
use diesel_async::AsyncConnection;
use secrecy::{ExposeSecret, SecretString};

use crate::crypto::{self, Cipher};
use crate::domain::text::Credentials;
use crate::domain::{
    ApiKey, ApiKeyId, CallbackUrl, Change, ChangesSince, ErrorState, NewNotificationType,
    NotificationType, NotificationTypeId, Outcome, Page, PageRequest, Partner, PartnerId,
    Registration, RegistrationId, RegistryError, RetryPolicy, SignatureScheme,
};
use crate::storage::models::{OutcomeChange, RegistrationRow, TargetChange};
use crate::storage::registrations::ListFilter;
use crate::storage::{DbPool, api_keys, changes, notification_types, partners, registrations};

/// The reason recorded when a partner deletes a registration.
pub(crate) const DELETED_BY_PARTNER: &str = "deleted by the partner";

#[derive(Debug)]
pub(crate) struct Registry {
    pool: DbPool,
    changes: changes::ChangeReader,
    cipher: Cipher,
    secret_grace: Duration,
    /// How long a registration may fail without a break before it is
    /// paused; `None`: never.
    auto_pause_after: Option<Duration>,
}

/// A key together with its token, which exists only in this response.
#[derive(Debug)]
pub struct IssuedKey {
    pub key: ApiKey,
    pub token: SecretString,
}

/// What a partner asks for when it registers a callback.
#[derive(Debug)]
pub(crate) struct UpsertCallback {
    pub partner_id: PartnerId,
    pub notification_type: NotificationTypeId,
    pub callback_url: CallbackUrl,
    pub credentials: Option<Credentials>,
    /// Replaced like the rest: left out, it is cleared.
    pub merchant_id: Option<String>,
    /// Replaced like the rest: left out, it is the default.
    pub retry_policy: RetryPolicy,
    /// Left out, the registration keeps its scheme (a new one: HMAC). A
    /// change makes a key of the new scheme; the old key stays valid for
    /// the grace period.
    pub signature_scheme: Option<SignatureScheme>,
}

/// Everything the dispatcher needs to deliver to a registration.
#[derive(Debug)]
pub struct ResolvedCallback {
    pub registration_id: RegistrationId,
    pub callback_url: String,
    pub user_name: Option<String>,
    pub password: Option<SecretString>,
    /// Current first, then the previous ones still valid: `whsec_` HMAC
    /// secrets, `whsk_` Ed25519 seeds.
    pub signing_secrets: Vec<SecretString>,
    pub is_in_error_state: bool,
    /// The waits of the registration's retry policy, in seconds; none for
    /// the dispatcher's own schedule.
    pub retry_waits: Vec<u32>,
    /// Paused: its deliveries wait.
    pub paused: bool,
}

/// A delivery outcome as the dispatcher reports it.
#[derive(Debug)]
pub(crate) struct OutcomeReport {
    pub registration_id: RegistrationId,
    pub callback_url: String,
    pub occurred_at: DateTime<Utc>,
    pub outcome: Outcome,
}

fn to_domain_page(rows: Page<RegistrationRow>) -> Page<Registration> {
    Page {
        items: rows.items.iter().map(RegistrationRow::to_domain).collect(),
        number: rows.number,
        size: rows.size,
        has_previous_page: rows.has_previous_page,
        has_next_page: rows.has_next_page,
    }
}

fn password_context(id: RegistrationId) -> String {
    format!("registrations/{id}/callback_password")
}

fn secret_context(id: RegistrationId) -> String {
    format!("registrations/{id}/signing_secret")
}

fn no_active(partner_id: PartnerId, notification_type: NotificationTypeId) -> RegistryError {
    RegistryError::NoActiveRegistration {
        partner: partner_id,
        notification_type,
    }
}

impl Registry {
    /// `database_url` is the pool's: [`changes::ChangeReader`] keeps a
    /// connection of its own to it.
    pub(crate) fn new(
        pool: DbPool,
        database_url: &str,
        cipher: Cipher,
        secret_grace: Duration,
        auto_pause_after: Option<Duration>,
    ) -> Self {
        Self {
            pool,
            changes: changes::ChangeReader::new(database_url),
            cipher,
            secret_grace,
            auto_pause_after,
        }
    }

    /// Whether the database answers (readiness).
    pub(crate) async fn ping(&self) -> bool {
        use diesel_async::RunQueryDsl;
        match self.pool.get().await {
            Ok(mut conn) => diesel::sql_query("SELECT 1")
                .execute(&mut conn)
                .await
                .is_ok(),
            Err(_) => false,
        }
    }

    /// Sets the gauges that describe the database (on scrape).
    pub(crate) async fn refresh_gauges(&self) {
        match self.pool.get().await {
            Ok(mut conn) => match registrations::count_in_error_state(&mut conn).await {
                Ok(count) => {
                    metrics::gauge!("callbacks_registrations_in_error_state").set(count as f64)
                }
                Err(error) => {
                    tracing::warn!(error = %error, "cannot count registrations in error state")
                }
            },
            Err(error) => tracing::warn!(error = %error, "cannot refresh gauges"),
        }
    }

    // ------------------------------------------------------------ sealing

    fn seal(&self, plaintext: &[u8], context: &str) -> Result<Vec<u8>, RegistryError> {
        self.cipher
            .seal(plaintext, context.as_bytes())
            .map_err(RegistryError::internal)
    }

    fn open(&self, sealed: &[u8], context: &str) -> Result<Vec<u8>, RegistryError> {
        self.cipher
            .open(sealed, context.as_bytes())
            .map_err(RegistryError::internal)
    }

    fn seal_password(
        &self,
        id: RegistrationId,
        credentials: Option<&Credentials>,
    ) -> Result<Option<Vec<u8>>, RegistryError> {
        credentials
            .and_then(|c| c.password.as_ref())
            .map(|p| self.seal(p.expose_secret().as_bytes(), &password_context(id)))
            .transpose()
    }
}
