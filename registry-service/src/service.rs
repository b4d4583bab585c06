//! The registry's use cases, between the gRPC edge and storage: each method
//! takes already-parsed domain values, runs its queries (in one transaction
//! where it reads and then writes) and seals or opens secrets on the way.

use std::time::Duration;

use chrono::{DateTime, Utc};
use diesel_async::AsyncConnection;
use secrecy::{ExposeSecret, SecretString};

use crate::crypto::{self, Cipher};
use crate::domain::text::Credentials;
use crate::domain::{
    ApiKey, ApiKeyId, CallbackUrl, Change, ChangesSince, ErrorState, NotificationType,
    NotificationTypeId, Outcome, Page, PageRequest, Partner, PartnerId, Registration,
    RegistrationId, RegistryError,
};
use crate::storage::models::{OutcomeChange, RegistrationRow, TargetChange};
use crate::storage::registrations::ListFilter;
use crate::storage::{DbPool, api_keys, changes, notification_types, partners, registrations};

/// The reason recorded when a partner deletes a registration.
pub const DELETED_BY_PARTNER: &str = "deleted by the partner";

#[derive(Debug)]
pub struct Registry {
    pool: DbPool,
    changes: changes::ChangeReader,
    cipher: Cipher,
    secret_grace: Duration,
}

/// A key together with its token, which exists only in this response.
#[derive(Debug)]
pub struct IssuedKey {
    pub key: ApiKey,
    pub token: SecretString,
}

/// What a partner asks for when it registers a callback.
#[derive(Debug)]
pub struct UpsertCallback {
    pub partner_id: PartnerId,
    pub notification_type: NotificationTypeId,
    pub callback_url: CallbackUrl,
    pub credentials: Option<Credentials>,
    /// Replaced like the rest: left out, it is cleared.
    pub merchant_id: Option<String>,
}

#[derive(Debug)]
pub struct SigningSecrets {
    pub registration_id: RegistrationId,
    pub current: SecretString,
    pub previous: Option<(SecretString, DateTime<Utc>)>,
}

/// Everything the dispatcher needs to deliver to a registration.
#[derive(Debug)]
pub struct ResolvedCallback {
    pub registration_id: RegistrationId,
    pub callback_url: String,
    pub user_name: Option<String>,
    pub password: Option<SecretString>,
    /// Current first, then the previous one during its grace period.
    pub signing_secrets: Vec<SecretString>,
    pub is_in_error_state: bool,
}

/// A delivery outcome as the dispatcher reports it.
#[derive(Debug)]
pub struct OutcomeReport {
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
    RegistryError::NotFound(format!(
        "partner {partner_id} has no active callback for notification type {notification_type}"
    ))
}

impl Registry {
    /// `database_url` is the pool's: [`changes::ChangeReader`] keeps a
    /// connection of its own to it.
    pub fn new(pool: DbPool, database_url: &str, cipher: Cipher, secret_grace: Duration) -> Self {
        Self {
            pool,
            changes: changes::ChangeReader::new(database_url),
            cipher,
            secret_grace,
        }
    }

    pub fn pool(&self) -> &DbPool {
        &self.pool
    }

    /// Whether the database answers (readiness).
    pub async fn ping(&self) -> bool {
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
    pub async fn refresh_gauges(&self) {
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

    // ------------------------------------------------------------ partners

    pub async fn create_partner(
        &self,
        name: String,
        key_label: String,
    ) -> Result<(Partner, IssuedKey), RegistryError> {
        let new_key = self.cipher.new_api_key().map_err(RegistryError::internal)?;
        let mut conn = self.pool.get().await?;
        conn.transaction(async |conn| {
            let partner = partners::insert(conn, PartnerId::generate(), &name).await?;
            let key = api_keys::insert(conn, partner.id, &key_label, new_key.hash, new_key.prefix)
                .await?;
            Ok((
                partner,
                IssuedKey {
                    key,
                    token: new_key.token,
                },
            ))
        })
        .await
    }

    pub async fn get_partner(&self, id: PartnerId) -> Result<Partner, RegistryError> {
        let mut conn = self.pool.get().await?;

        partners::get(&mut conn, id).await
    }

    pub async fn list_partners(&self, page: PageRequest) -> Result<Page<Partner>, RegistryError> {
        let mut conn = self.pool.get().await?;

        partners::list(&mut conn, page).await
    }

    pub async fn disable_partner(&self, id: PartnerId) -> Result<Partner, RegistryError> {
        let mut conn = self.pool.get().await?;
        conn.transaction(async |conn| {
            let partner = partners::disable(conn, id).await?;
            changes::record(conn, Change::Partner(id)).await?;
            Ok(partner)
        })
        .await
    }

    // ------------------------------------------------------------ API keys

    pub async fn issue_api_key(
        &self,
        partner_id: PartnerId,
        label: String,
    ) -> Result<IssuedKey, RegistryError> {
        let new_key = self.cipher.new_api_key().map_err(RegistryError::internal)?;
        let mut conn = self.pool.get().await?;
        partners::get_enabled(&mut conn, partner_id).await?;
        let key =
            api_keys::insert(&mut conn, partner_id, &label, new_key.hash, new_key.prefix).await?;
        Ok(IssuedKey {
            key,
            token: new_key.token,
        })
    }

    pub async fn list_api_keys(
        &self,
        partner_id: PartnerId,
        include_revoked: bool,
    ) -> Result<Vec<ApiKey>, RegistryError> {
        let mut conn = self.pool.get().await?;
        partners::get(&mut conn, partner_id).await?;
        api_keys::list(&mut conn, partner_id, include_revoked).await
    }

    pub async fn revoke_api_key(
        &self,
        partner_id: PartnerId,
        key_id: ApiKeyId,
    ) -> Result<ApiKey, RegistryError> {
        let mut conn = self.pool.get().await?;
        conn.transaction(async |conn| {
            let key = api_keys::revoke(conn, partner_id, key_id).await?;
            changes::record(conn, Change::ApiKey(partner_id, key_id)).await?;
            Ok(key)
        })
        .await
    }

    /// Token -> key, one indexed lookup. Malformed tokens never reach the
    /// database.
    pub async fn authenticate(&self, token: &SecretString) -> Result<ApiKey, RegistryError> {
        let token = token.expose_secret();
        if !crypto::looks_like_api_key(token) {
            return Err(RegistryError::Unauthenticated);
        }
        let hash = crypto::hash_api_key(token);
        let mut conn = self.pool.get().await?;

        api_keys::find_live_by_hash(&mut conn, &hash)
            .await?
            .ok_or(RegistryError::Unauthenticated)
    }

    // -------------------------------------------------- notification types

    pub async fn list_notification_types(&self) -> Result<Vec<NotificationType>, RegistryError> {
        let mut conn = self.pool.get().await?;

        notification_types::list(&mut conn).await
    }

    pub async fn get_notification_type(
        &self,
        id: NotificationTypeId,
    ) -> Result<NotificationType, RegistryError> {
        let mut conn = self.pool.get().await?;

        notification_types::find(&mut conn, id)
            .await?
            .ok_or_else(|| {
                RegistryError::NotFound(format!("notification type {id} does not exist"))
            })
    }

    pub async fn create_notification_type(
        &self,
        id: NotificationTypeId,
        name: String,
        description: String,
        echoable: bool,
    ) -> Result<NotificationType, RegistryError> {
        let mut conn = self.pool.get().await?;
        conn.transaction(async |conn| {
            let created =
                notification_types::insert(conn, id, &name, &description, echoable).await?;
            changes::record(conn, Change::Catalogue).await?;
            Ok(created)
        })
        .await
    }

    // ----------------------------------------------------------- changes

    /// The changes after version `after` (at most `limit`), for the caches
    /// of other services.
    pub async fn changes_since(
        &self,
        after: u64,
        limit: usize,
    ) -> Result<ChangesSince, RegistryError> {
        self.changes.since(after, limit).await
    }

    // ------------------------------------------------------- registrations

    /// Creates the active registration for (partner, type), or replaces the
    /// URL and credentials of the existing one. Answers whether it created.
    pub async fn upsert_callback(
        &self,
        request: UpsertCallback,
    ) -> Result<(Registration, bool), RegistryError> {
        let mut conn = self.pool.get().await?;
        let change = Change::Callback(request.partner_id, request.notification_type);
        conn.transaction(async |conn| {
            partners::get_enabled(conn, request.partner_id).await?;
            if notification_types::find(conn, request.notification_type)
                .await?
                .is_none()
            {
                return Err(RegistryError::invalid(
                    "notification_type",
                    format!(
                        "{} is not a supported notification type",
                        request.notification_type
                    ),
                ));
            }
            // Two rounds at most: an insert that loses a race to a concurrent
            // create finds the winner's row on the second round and updates it.
            for _ in 0..2 {
                if let Some(row) =
                    registrations::lock_active(conn, request.partner_id, request.notification_type)
                        .await?
                {
                    let updated = self.replace_target(conn, &row, &request).await?;
                    changes::record(conn, change).await?;
                    return Ok((updated.to_domain(), false));
                }
                if let Some(created) = self.insert_registration(conn, &request).await? {
                    changes::record(conn, change).await?;
                    return Ok((created.to_domain(), true));
                }
            }
            Err(RegistryError::internal(
                "registration upsert kept racing with concurrent writers",
            ))
        })
        .await
    }

    async fn replace_target(
        &self,
        conn: &mut diesel_async::AsyncPgConnection,
        row: &RegistrationRow,
        request: &UpsertCallback,
    ) -> Result<RegistrationRow, RegistryError> {
        let id = RegistrationId::from_uuid(row.id);
        let error_state = row
            .to_domain()
            .error_state
            .after_url_change(&row.callback_url, request.callback_url.as_str());
        let change = TargetChange {
            callback_url: request.callback_url.as_str().to_owned(),
            callback_user_name: request.credentials.as_ref().map(|c| c.user_name.clone()),
            callback_password_sealed: self.seal_password(id, request.credentials.as_ref())?,
            merchant_id: request.merchant_id.clone(),
            is_in_error_state: error_state.is_in_error_state,
            error_state_reason: error_state.reason,
            detected_error_state_at: error_state.detected_at,
            updated_at: Utc::now(),
        };
        registrations::update_target(conn, id, &change).await
    }

    async fn insert_registration(
        &self,
        conn: &mut diesel_async::AsyncPgConnection,
        request: &UpsertCallback,
    ) -> Result<Option<RegistrationRow>, RegistryError> {
        let id = RegistrationId::generate();
        let secret = self
            .cipher
            .new_signing_key()
            .map_err(RegistryError::internal)?;
        let now = Utc::now();
        let row = RegistrationRow {
            id: id.as_uuid(),
            partner_id: request.partner_id.as_uuid(),
            notification_type_id: request.notification_type.get(),
            callback_url: request.callback_url.as_str().to_owned(),
            callback_user_name: request.credentials.as_ref().map(|c| c.user_name.clone()),
            callback_password_sealed: self.seal_password(id, request.credentials.as_ref())?,
            signing_secret_sealed: self.seal(&secret, &secret_context(id))?,
            previous_secret_sealed: None,
            previous_secret_expires_at: None,
            is_active: true,
            deactivated_at: None,
            deactivation_reason: None,
            is_in_error_state: false,
            error_state_reason: None,
            detected_error_state_at: None,
            last_outcome_at: None,
            created_at: now,
            updated_at: now,
            merchant_id: request.merchant_id.clone(),
        };
        registrations::insert(conn, &row).await
    }

    pub async fn get_callback(
        &self,
        partner_id: PartnerId,
        notification_type: NotificationTypeId,
    ) -> Result<Registration, RegistryError> {
        let mut conn = self.pool.get().await?;
        partners::get(&mut conn, partner_id).await?;
        registrations::find_active(&mut conn, partner_id, notification_type)
            .await?
            .map(|row| row.to_domain())
            .ok_or_else(|| no_active(partner_id, notification_type))
    }

    pub async fn list_callbacks(
        &self,
        partner_id: PartnerId,
        filter: ListFilter,
        page: PageRequest,
    ) -> Result<Page<Registration>, RegistryError> {
        let mut conn = self.pool.get().await?;
        partners::get(&mut conn, partner_id).await?;
        let rows = registrations::list(&mut conn, partner_id, filter, page).await?;
        Ok(to_domain_page(rows))
    }

    pub async fn list_error_states(
        &self,
        page: PageRequest,
    ) -> Result<Page<Registration>, RegistryError> {
        let mut conn = self.pool.get().await?;
        let rows = registrations::list_in_error_state(&mut conn, page).await?;
        Ok(to_domain_page(rows))
    }

    /// Soft delete. `NotFound` when there is no active registration.
    pub async fn delete_callback(
        &self,
        partner_id: PartnerId,
        notification_type: NotificationTypeId,
    ) -> Result<Registration, RegistryError> {
        let mut conn = self.pool.get().await?;
        conn.transaction(async |conn| {
            partners::get(conn, partner_id).await?;
            let row = registrations::lock_active(conn, partner_id, notification_type)
                .await?
                .ok_or_else(|| no_active(partner_id, notification_type))?;
            let row = registrations::deactivate(
                conn,
                RegistrationId::from_uuid(row.id),
                DELETED_BY_PARTNER,
                Utc::now(),
            )
            .await?;
            changes::record(conn, Change::Callback(partner_id, notification_type)).await?;
            Ok(row.to_domain())
        })
        .await
    }

    pub async fn get_signing_secrets(
        &self,
        partner_id: PartnerId,
        notification_type: NotificationTypeId,
    ) -> Result<SigningSecrets, RegistryError> {
        let mut conn = self.pool.get().await?;

        let row = registrations::find_active(&mut conn, partner_id, notification_type)
            .await?
            .ok_or_else(|| no_active(partner_id, notification_type))?;
        self.open_secrets(&row, Utc::now())
    }

    /// A new current secret; the old one stays valid for the grace period.
    pub async fn rotate_signing_secret(
        &self,
        partner_id: PartnerId,
        notification_type: NotificationTypeId,
    ) -> Result<SigningSecrets, RegistryError> {
        let grace =
            chrono::Duration::from_std(self.secret_grace).map_err(RegistryError::internal)?;
        let mut conn = self.pool.get().await?;
        conn.transaction(async |conn| {
            let row = registrations::lock_active(conn, partner_id, notification_type)
                .await?
                .ok_or_else(|| no_active(partner_id, notification_type))?;
            let id = RegistrationId::from_uuid(row.id);
            let fresh = self
                .cipher
                .new_signing_key()
                .map_err(RegistryError::internal)?;
            let now = Utc::now();
            let row = registrations::set_secrets(
                conn,
                id,
                self.seal(&fresh, &secret_context(id))?,
                row.signing_secret_sealed,
                now + grace,
            )
            .await?;
            changes::record(conn, Change::Callback(partner_id, notification_type)).await?;
            self.open_secrets(&row, now)
        })
        .await
    }

    // ------------------------------------------------------ for delivery

    pub async fn resolve_callback(
        &self,
        partner_id: PartnerId,
        notification_type: NotificationTypeId,
    ) -> Result<ResolvedCallback, RegistryError> {
        let mut conn = self.pool.get().await?;
        partners::get_enabled(&mut conn, partner_id).await?;
        let row = registrations::find_active(&mut conn, partner_id, notification_type)
            .await?
            .ok_or_else(|| no_active(partner_id, notification_type))?;
        let id = RegistrationId::from_uuid(row.id);
        let secrets = self.open_secrets(&row, Utc::now())?;
        let password = match &row.callback_password_sealed {
            Some(sealed) => Some(SecretString::from(
                String::from_utf8(self.open(sealed, &password_context(id))?)
                    .map_err(RegistryError::internal)?,
            )),
            None => None,
        };
        let mut signing_secrets = vec![secrets.current];
        signing_secrets.extend(secrets.previous.map(|(secret, _)| secret));
        Ok(ResolvedCallback {
            registration_id: id,
            is_in_error_state: row.is_in_error_state,
            callback_url: row.callback_url,
            user_name: row.callback_user_name,
            password,
            signing_secrets,
        })
    }

    /// Applies one outcome to the error state (seed `003`). Ignored, with
    /// `applied = false`, when the registration is inactive, its URL has
    /// changed since the attempt, or a newer outcome was already applied.
    pub async fn record_outcome(
        &self,
        report: OutcomeReport,
    ) -> Result<(Registration, bool), RegistryError> {
        let mut conn = self.pool.get().await?;
        conn.transaction(async |conn| {
            let row = registrations::lock(conn, report.registration_id)
                .await?
                .ok_or_else(|| {
                    RegistryError::NotFound(format!(
                        "registration {} does not exist",
                        report.registration_id
                    ))
                })?;
            let stale = !row.is_active
                || row.callback_url != report.callback_url
                || row
                    .last_outcome_at
                    .is_some_and(|last| last > report.occurred_at);
            if stale {
                metrics::counter!("callbacks_outcome_reports_total", "applied" => "false")
                    .increment(1);
                return Ok((row.to_domain(), false));
            }
            metrics::counter!("callbacks_outcome_reports_total", "applied" => "true").increment(1);
            let state: ErrorState = row
                .to_domain()
                .error_state
                .after(&report.outcome, report.occurred_at);
            let now = Utc::now();
            let change = OutcomeChange {
                is_in_error_state: state.is_in_error_state,
                error_state_reason: state.reason,
                detected_error_state_at: state.detected_at,
                last_outcome_at: Some(report.occurred_at),
                updated_at: now,
            };
            let mut row =
                registrations::apply_outcome(conn, report.registration_id, &change).await?;
            if let Outcome::Gone { reason } = &report.outcome {
                let why = format!("the endpoint answered 410 Gone ({reason})");
                row = registrations::deactivate(conn, report.registration_id, &why, now).await?;
                let change = Change::Callback(
                    PartnerId::from_uuid(row.partner_id),
                    NotificationTypeId::from_stored(row.notification_type_id),
                );
                changes::record(conn, change).await?;
            }
            Ok((row.to_domain(), true))
        })
        .await
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

    fn open_secrets(
        &self,
        row: &RegistrationRow,
        now: DateTime<Utc>,
    ) -> Result<SigningSecrets, RegistryError> {
        let id = RegistrationId::from_uuid(row.id);
        let context = secret_context(id);
        let current =
            crypto::format_signing_secret(&self.open(&row.signing_secret_sealed, &context)?);
        let previous = match (&row.previous_secret_sealed, row.previous_secret_expires_at) {
            (Some(sealed), Some(expires_at)) if expires_at > now => Some((
                crypto::format_signing_secret(&self.open(sealed, &context)?),
                expires_at,
            )),
            _ => None,
        };
        Ok(SigningSecrets {
            registration_id: id,
            current,
            previous,
        })
    }
}
