//! Row structs: the shape of the tables, nothing more. Each has a conversion
//! into its domain type; sealed columns stay sealed here and are opened by
//! the service layer, which holds the key.

use chrono::{DateTime, Utc};
use diesel::prelude::*;
use uuid::Uuid;

use super::schema::{api_keys, notification_types, partners, registrations};
use crate::domain::{
    ApiKey, ApiKeyId, ErrorState, NotificationType, NotificationTypeId, Partner, PartnerId, Pause,
    Registration, RegistrationId, RetryPolicy, SignatureScheme,
};

#[derive(Debug, Queryable, Selectable, Insertable)]
#[diesel(table_name = partners, check_for_backend(diesel::pg::Pg))]
pub struct PartnerRow {
    pub id: Uuid,
    pub name: String,
    pub created_at: DateTime<Utc>,
    pub disabled_at: Option<DateTime<Utc>>,
}

impl From<PartnerRow> for Partner {
    fn from(row: PartnerRow) -> Self {
        Self {
            id: PartnerId::from_uuid(row.id),
            name: row.name,
            created_at: row.created_at,
            disabled_at: row.disabled_at,
        }
    }
}

#[derive(Debug, Queryable, Selectable, Insertable)]
#[diesel(table_name = api_keys, check_for_backend(diesel::pg::Pg))]
pub struct ApiKeyRow {
    pub id: Uuid,
    pub partner_id: Uuid,
    pub label: String,
    pub token_hash: Vec<u8>,
    pub token_prefix: String,
    pub created_at: DateTime<Utc>,
    pub revoked_at: Option<DateTime<Utc>>,
    pub portal_only: bool,
    pub expires_at: Option<DateTime<Utc>>,
}

impl From<ApiKeyRow> for ApiKey {
    fn from(row: ApiKeyRow) -> Self {
        Self {
            id: ApiKeyId::from_uuid(row.id),
            partner_id: PartnerId::from_uuid(row.partner_id),
            label: row.label,
            token_prefix: row.token_prefix,
            created_at: row.created_at,
            revoked_at: row.revoked_at,
            portal_only: row.portal_only,
            expires_at: row.expires_at,
        }
    }
}

#[derive(Debug, Queryable, Selectable, Insertable)]
#[diesel(table_name = notification_types, check_for_backend(diesel::pg::Pg))]
pub struct NotificationTypeRow {
    pub id: i32,
    pub name: String,
    pub description: String,
    pub echoable: bool,
    pub created_at: DateTime<Utc>,
    pub payload_schema: Option<String>,
}

impl From<NotificationTypeRow> for NotificationType {
    fn from(row: NotificationTypeRow) -> Self {
        Self {
            id: NotificationTypeId::from_stored(row.id),
            name: row.name,
            description: row.description,
            echoable: row.echoable,
            created_at: row.created_at,
            payload_schema: row.payload_schema,
        }
    }
}

#[derive(Debug, Clone, Queryable, Selectable, Insertable)]
#[diesel(table_name = registrations, check_for_backend(diesel::pg::Pg))]
pub struct RegistrationRow {
    pub id: Uuid,
    pub partner_id: Uuid,
    pub notification_type_id: i32,
    pub callback_url: String,
    pub callback_user_name: Option<String>,
    pub callback_password_sealed: Option<Vec<u8>>,
    pub signing_secret_sealed: Vec<u8>,
    pub is_active: bool,
    pub deactivated_at: Option<DateTime<Utc>>,
    pub deactivation_reason: Option<String>,
    pub is_in_error_state: bool,
    pub error_state_reason: Option<String>,
    pub detected_error_state_at: Option<DateTime<Utc>>,
    pub last_outcome_at: Option<DateTime<Utc>>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    pub merchant_id: Option<String>,
    pub retry_policy: String,
    pub retry_schedule_secs: Option<Vec<i32>>,
    pub paused_at: Option<DateTime<Utc>>,
    pub pause_reason: Option<String>,
    pub signature_scheme: String,
    pub previous_keys_sealed: Vec<Vec<u8>>,
    pub previous_keys_scheme: Vec<String>,
    pub previous_keys_expire_at: Vec<DateTime<Utc>>,
}

impl RegistrationRow {
    pub fn to_domain(&self) -> Registration {
        Registration {
            id: RegistrationId::from_uuid(self.id),
            partner_id: PartnerId::from_uuid(self.partner_id),
            notification_type: NotificationTypeId::from_stored(self.notification_type_id),
            callback_url: self.callback_url.clone(),
            callback_user_name: self.callback_user_name.clone(),
            has_password: self.callback_password_sealed.is_some(),
            merchant_id: self.merchant_id.clone(),
            retry_policy: RetryPolicy::from_stored(
                &self.retry_policy,
                self.retry_schedule_secs.as_deref(),
            ),
            signature_scheme: SignatureScheme::from_stored(&self.signature_scheme),
            pause: self.paused_at.map(|since| Pause {
                since,
                reason: self.pause_reason.clone().unwrap_or_default(),
            }),
            is_active: self.is_active,
            deactivated_at: self.deactivated_at,
            deactivation_reason: self.deactivation_reason.clone(),
            error_state: ErrorState {
                is_in_error_state: self.is_in_error_state,
                reason: self.error_state_reason.clone(),
                detected_at: self.detected_error_state_at,
            },
            created_at: self.created_at,
            updated_at: self.updated_at,
        }
    }
}

/// The columns a partner's upsert replaces.
#[derive(Debug, AsChangeset)]
#[diesel(table_name = registrations, treat_none_as_null = true)]
pub struct TargetChange {
    pub callback_url: String,
    pub callback_user_name: Option<String>,
    pub callback_password_sealed: Option<Vec<u8>>,
    pub merchant_id: Option<String>,
    pub retry_policy: String,
    pub retry_schedule_secs: Option<Vec<i32>>,
    pub is_in_error_state: bool,
    pub error_state_reason: Option<String>,
    pub detected_error_state_at: Option<DateTime<Utc>>,
    pub updated_at: DateTime<Utc>,
}

/// The columns a key rotation changes: the current key and the previous
/// ones (parallel arrays, newest first).
#[derive(Debug, AsChangeset)]
#[diesel(table_name = registrations)]
pub struct KeysChange {
    pub signing_secret_sealed: Vec<u8>,
    pub signature_scheme: String,
    pub previous_keys_sealed: Vec<Vec<u8>>,
    pub previous_keys_scheme: Vec<String>,
    pub previous_keys_expire_at: Vec<DateTime<Utc>>,
    pub updated_at: DateTime<Utc>,
}

impl KeysChange {
    /// Adds a previous key after those already listed.
    pub fn push(&mut self, sealed: &[u8], scheme: &str, expires_at: DateTime<Utc>) {
        self.previous_keys_sealed.push(sealed.to_vec());
        self.previous_keys_scheme.push(scheme.to_owned());
        self.previous_keys_expire_at.push(expires_at);
    }

    /// Drops the previous key at `index`.
    pub fn remove(&mut self, index: usize) {
        self.previous_keys_sealed.remove(index);
        self.previous_keys_scheme.remove(index);
        self.previous_keys_expire_at.remove(index);
    }
}

/// The columns an applied delivery outcome changes.
#[derive(Debug, AsChangeset)]
#[diesel(table_name = registrations, treat_none_as_null = true)]
pub struct OutcomeChange {
    pub is_in_error_state: bool,
    pub error_state_reason: Option<String>,
    pub detected_error_state_at: Option<DateTime<Utc>>,
    pub last_outcome_at: Option<DateTime<Utc>>,
    pub updated_at: DateTime<Utc>,
}
