//! Partners, their API keys and the notification-type catalogue, as the
//! rest of the service sees them.

use chrono::{DateTime, Utc};

use super::{ApiKeyId, NotificationTypeId, PartnerId};

/// A partner as the rest of the service sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Partner {
    pub id: PartnerId,
    pub name: String,
    pub created_at: DateTime<Utc>,
    pub disabled_at: Option<DateTime<Utc>>,
}

/// An API key without its secret part.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiKey {
    pub id: ApiKeyId,
    pub partner_id: PartnerId,
    pub label: String,
    pub token_prefix: String,
    pub created_at: DateTime<Utc>,
    pub revoked_at: Option<DateTime<Utc>>,
    /// A portal link's key: it opens the partner portal only.
    pub portal_only: bool,
    /// When it stops working, if it does.
    pub expires_at: Option<DateTime<Utc>>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NotificationType {
    pub id: NotificationTypeId,
    pub name: String,
    pub description: String,
    pub echoable: bool,
    pub created_at: DateTime<Utc>,
    /// The JSON Schema its payloads must satisfy, as compiled text.
    pub payload_schema: Option<String>,
}

/// A notification type to add to the catalogue, validated.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewNotificationType {
    pub id: NotificationTypeId,
    pub name: String,
    pub description: String,
    pub echoable: bool,
    pub payload_schema: Option<String>,
}
