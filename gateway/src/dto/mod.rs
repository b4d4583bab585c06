//! The JSON of the public contract: camelCase names, as in the seed
//! documents. These structs are the OpenAPI schemas too; the wire types of
//! gRPC are converted into them here and go no further.

mod recovery;
mod signing;

pub(crate) use recovery::{Erasure, RecoverBody, RecoveryView};
pub(crate) use signing::{RotateBody, SignatureScheme, SigningSecret};

use callbacks_proto::registry::v1 as pb;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

/// `PUT /{partnerUniqueID}/callbacks/{notificationType}`. The body is the
/// whole desired state: credentials left out are cleared.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
#[schema(example = json!({
    "callBackUrl": "https://hooks.partner.example/callbacks",
    "callBackUserName": "partner-hooks",
    "merchantId": "merchant-0042",
    "callBackPassword": "correct horse battery staple"
}))]
pub(crate) struct UpsertCallbackBody {
    /// Absolute `https` URL, at most 2,048 characters, without user-info or
    /// fragment, on a public host: a domain name (not `localhost` or a
    /// local suffix such as `.local`, `.internal`, `.lan`), or a public IP
    /// address. The pattern states the domain-name form with a path; the
    /// server also takes an IP address, a port or no path.
    #[schema(
        max_length = 2048,
        pattern = r"^https://([A-Za-z0-9]+(-[A-Za-z0-9]+)*\.)+(?!(local|internal|lan|localhost|arpa)/)[A-Za-z]{2,63}(/[A-Za-z0-9._~!$&'()*+,;=:@-]*)+(\?[A-Za-z0-9._~!$&'()*+,;=:@/?-]*)?$"
    )]
    pub call_back_url: String,
    /// Basic-auth user name sent with each delivery: no `:`, no control
    /// characters, at most 256 characters. Empty means none.
    #[serde(default)]
    #[schema(max_length = 256, pattern = r"^[^:\x00-\x1f\x7f-\x9f]*$")]
    pub call_back_user_name: Option<String>,
    /// Basic-auth password, at most 1,024 characters; needs
    /// `callBackUserName`. Empty means none. Never returned.
    #[serde(default)]
    #[schema(max_length = 1024)]
    pub call_back_password: Option<String>,
    /// Your own identifier of the merchant this callback is for (seed
    /// 003): up to 64 printable ASCII characters without spaces. Empty or
    /// left out means none.
    #[serde(default)]
    #[schema(max_length = 64, pattern = r"^[\x21-\x7e]*$")]
    pub merchant_id: Option<String>,
    /// How long failing deliveries are retried. Left out: `default`.
    #[serde(default)]
    #[schema(schema_with = crate::schemas::retry_policy_choice)]
    pub retry_policy: Option<RetryPolicyChoice>,
    /// How deliveries are signed. Left out: kept (a new registration:
    /// `hmac-sha256`). A change makes a key of the new scheme; the old key
    /// keeps signing for 24 hours beside it, so receivers move over without
    /// a gap.
    #[serde(default)]
    pub signature_scheme: Option<SignatureScheme>,
}

/// `POST …/pause`: why (optional).
#[derive(Debug, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
#[schema(example = json!({"reason": "maintenance until 18:00 UTC"}))]
pub(crate) struct PauseBody {
    /// Shown with the registration; at most 500 characters, no control
    /// characters.
    #[serde(default)]
    #[schema(max_length = 500, pattern = r"^[^\x00-\x1f\x7f-\x9f]*$")]
    pub reason: Option<String>,
}

/// The retry policy a registration asks for (the OpenAPI document states
/// it in `schemas::retry_policy_choice`).
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub(crate) struct RetryPolicyChoice {
    pub name: String,
    #[serde(default)]
    pub schedule_seconds: Vec<u32>,
}

/// How long a registration's failing deliveries are retried before they
/// are marked failed: `default` (about two days), `short` (about 1 h 45
/// min), `long` (about a week), or `custom` with your own waits.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
#[schema(example = json!({"name": "custom", "scheduleSeconds": [10, 60, 600, 3600]}))]
pub(crate) struct RetryPolicy {
    #[schema(pattern = "^(default|short|long|custom)$")]
    pub name: String,
    /// The waits between attempts, in seconds; empty for `default`, whose
    /// schedule is the operator's.
    pub schedule_seconds: Vec<u32>,
}

/// A callback registration (seed 003's attributes).
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub(crate) struct Registration {
    #[schema(format = Uuid)]
    pub registration_id: String,
    #[schema(format = Uuid)]
    pub partner_unique_id: String,
    pub notification_type: i32,
    pub call_back_url: String,
    pub call_back_user_name: Option<String>,
    /// Whether a password is registered; the password itself is never
    /// returned.
    pub has_password: bool,
    /// Your own identifier of the merchant, as registered.
    pub merchant_id: Option<String>,
    pub retry_policy: RetryPolicy,
    pub signature_scheme: SignatureScheme,
    /// Set while paused: deliveries wait until the registration is resumed.
    pub paused_at: Option<DateTime<Utc>>,
    /// Why it is paused, as given when it was paused.
    pub pause_reason: Option<String>,
    pub is_active: bool,
    pub deactivated_at: Option<DateTime<Utc>>,
    /// Why it was deactivated: deleted by the partner, or the endpoint
    /// answered 410 Gone.
    pub deactivation_reason: Option<String>,
    /// True when the last delivery attempt failed; cleared by a success or a
    /// new URL. Deliveries go on regardless.
    pub is_in_error_state: bool,
    pub error_state_reason: Option<String>,
    /// When the current failing streak began.
    pub detected_error_state_at: Option<DateTime<Utc>>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

/// One page of a partner's registrations.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub(crate) struct RegistrationPage {
    pub results: Vec<Registration>,
    pub page_number: u32,
    pub page_size: u32,
    pub has_previous_page: bool,
    pub has_next_page: bool,
}

/// `202` answer to a test notification.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub(crate) struct EchoAccepted {
    #[schema(format = Uuid)]
    pub delivery_id: String,
    /// Where the delivery's outcome can be read.
    pub delivery_url: String,
}

#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct Health {
    pub status: &'static str,
}

// ------------------------------------------------------------- operators

#[derive(Debug, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
#[schema(example = json!({"name": "Acme Payments", "keyLabel": "production"}))]
pub(crate) struct CreatePartnerBody {
    /// 1 to 200 characters, not blank, without control characters
    /// (surrounding white space is trimmed).
    #[schema(
        max_length = 200,
        pattern = r"^[\t\n\x0b\x0c\r \x85\xa0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000]*[^\x00-\x1f\x7f-\x9f]*[^\x00-\x1f\x7f-\x9f\t\n\x0b\x0c\r \x85\xa0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000][\t\n\x0b\x0c\r \x85\xa0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000]*$"
    )]
    pub name: String,
    /// A label for the first API key: at most 100 characters, without
    /// control characters.
    #[serde(default)]
    #[schema(
        max_length = 100,
        pattern = r"^[\t\n\x0b\x0c\r \x85\xa0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000]*([^\x00-\x1f\x7f-\x9f]*[^\x00-\x1f\x7f-\x9f\t\n\x0b\x0c\r \x85\xa0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000])?[\t\n\x0b\x0c\r \x85\xa0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000]*$"
    )]
    pub key_label: Option<String>,
}

#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub(crate) struct Partner {
    #[schema(format = Uuid)]
    pub partner_unique_id: String,
    pub name: String,
    pub created_at: DateTime<Utc>,
    pub disabled_at: Option<DateTime<Utc>>,
}

#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub(crate) struct PartnerPage {
    pub results: Vec<Partner>,
    pub page_number: u32,
    pub page_size: u32,
    pub has_previous_page: bool,
    pub has_next_page: bool,
}

#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub(crate) struct ApiKey {
    #[schema(format = Uuid)]
    pub key_id: String,
    #[schema(format = Uuid)]
    pub partner_unique_id: String,
    pub label: String,
    /// The first characters of the token, to tell keys apart.
    pub token_prefix: String,
    pub created_at: DateTime<Utc>,
    pub revoked_at: Option<DateTime<Utc>>,
    /// A portal link's key: it opens the partner portal only.
    pub portal_only: bool,
    /// When it stops working, if it does (portal links).
    pub expires_at: Option<DateTime<Utc>>,
}

/// A new key. `token` is shown here once and stored nowhere.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub(crate) struct IssuedApiKey {
    #[serde(flatten)]
    pub key: ApiKey,
    pub token: String,
}

#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub(crate) struct CreatedPartner {
    pub partner: Partner,
    pub api_key: IssuedApiKey,
}

#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub(crate) struct IssueApiKeyBody {
    /// At most 100 characters, without control characters.
    #[serde(default)]
    #[schema(
        max_length = 100,
        pattern = r"^[\t\n\x0b\x0c\r \x85\xa0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000]*([^\x00-\x1f\x7f-\x9f]*[^\x00-\x1f\x7f-\x9f\t\n\x0b\x0c\r \x85\xa0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000])?[\t\n\x0b\x0c\r \x85\xa0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000]*$"
    )]
    pub label: Option<String>,
}

#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub(crate) struct ApiKeyList {
    pub results: Vec<ApiKey>,
}

#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub(crate) struct NotificationType {
    pub notification_type_id: i32,
    pub name: String,
    pub description: String,
    /// Whether partners may fire test notifications of this type.
    pub echoable: bool,
    pub created_at: DateTime<Utc>,
    /// The JSON Schema that the type's payloads and test bodies satisfy;
    /// null when any JSON document is accepted.
    #[schema(value_type = Option<Object>)]
    pub payload_schema: Option<serde_json::Value>,
}

#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub(crate) struct NotificationTypeList {
    pub results: Vec<NotificationType>,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
#[schema(example = json!({"notificationTypeId": 12, "name": "settlement.completed", "description": "A settlement finished", "echoable": false}))]
pub(crate) struct CreateNotificationTypeBody {
    /// A positive integer.
    #[schema(minimum = 1)]
    pub notification_type_id: i32,
    /// 1 to 100 lowercase letters, digits, `.`, `_` and `-`.
    #[schema(
        max_length = 100,
        pattern = r"^[\t\n\x0b\x0c\r \x85\xa0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000]*[a-z0-9._-]{1,100}[\t\n\x0b\x0c\r \x85\xa0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000]*$"
    )]
    pub name: String,
    /// At most 1,000 characters, without control characters.
    #[serde(default)]
    #[schema(
        max_length = 1000,
        pattern = r"^[\t\n\x0b\x0c\r \x85\xa0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000]*([^\x00-\x1f\x7f-\x9f]*[^\x00-\x1f\x7f-\x9f\t\n\x0b\x0c\r \x85\xa0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000])?[\t\n\x0b\x0c\r \x85\xa0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000]*$"
    )]
    pub description: String,
    #[serde(default)]
    pub echoable: bool,
    /// The JSON Schema the type's payloads and test bodies must satisfy
    /// (self-contained: no references to other documents).
    #[serde(default)]
    #[schema(value_type = Option<Object>)]
    pub payload_schema: Option<serde_json::Value>,
}

// ----------------------------------------------------- from the wire types

/// Timestamps from our own backends are always set and in range; a missing
/// one reads as the epoch rather than failing the whole answer.
fn time(ts: Option<prost_types::Timestamp>) -> DateTime<Utc> {
    maybe_time(ts).unwrap_or_default()
}

pub(super) fn maybe_time(ts: Option<prost_types::Timestamp>) -> Option<DateTime<Utc>> {
    let ts = ts?;
    DateTime::from_timestamp(ts.seconds, u32::try_from(ts.nanos).ok()?)
}

impl From<pb::RetryPolicy> for RetryPolicy {
    fn from(p: pb::RetryPolicy) -> Self {
        Self {
            name: p.name,
            schedule_seconds: p.schedule_seconds,
        }
    }
}

impl From<RetryPolicyChoice> for pb::RetryPolicy {
    fn from(p: RetryPolicyChoice) -> Self {
        Self {
            name: p.name,
            schedule_seconds: p.schedule_seconds,
        }
    }
}

impl From<pb::Registration> for Registration {
    fn from(r: pb::Registration) -> Self {
        Self {
            registration_id: r.registration_id,
            partner_unique_id: r.partner_id,
            notification_type: r.notification_type,
            call_back_url: r.callback_url,
            call_back_user_name: r.callback_user_name,
            has_password: r.has_password,
            merchant_id: r.merchant_id,
            retry_policy: r.retry_policy.unwrap_or_default().into(),
            signature_scheme: SignatureScheme::from_wire(r.signature_scheme),
            paused_at: maybe_time(r.paused_at),
            pause_reason: r.pause_reason,
            is_active: r.is_active,
            deactivated_at: maybe_time(r.deactivated_at),
            deactivation_reason: r.deactivation_reason,
            is_in_error_state: r.is_in_error_state,
            error_state_reason: r.error_state_reason,
            detected_error_state_at: maybe_time(r.detected_error_state_at),
            created_at: time(r.created_at),
            updated_at: time(r.updated_at),
        }
    }
}

impl From<pb::Partner> for Partner {
    fn from(p: pb::Partner) -> Self {
        Self {
            partner_unique_id: p.partner_id,
            name: p.name,
            created_at: time(p.created_at),
            disabled_at: maybe_time(p.disabled_at),
        }
    }
}

impl From<pb::ApiKey> for ApiKey {
    fn from(k: pb::ApiKey) -> Self {
        Self {
            key_id: k.key_id,
            partner_unique_id: k.partner_id,
            label: k.label,
            token_prefix: k.token_prefix,
            created_at: time(k.created_at),
            revoked_at: maybe_time(k.revoked_at),
            portal_only: k.portal_only,
            expires_at: maybe_time(k.expires_at),
        }
    }
}

impl From<pb::IssuedApiKey> for IssuedApiKey {
    fn from(k: pb::IssuedApiKey) -> Self {
        Self {
            key: k.key.unwrap_or_default().into(),
            token: k.token,
        }
    }
}

impl From<pb::NotificationType> for NotificationType {
    fn from(t: pb::NotificationType) -> Self {
        Self {
            notification_type_id: t.notification_type_id,
            name: t.name,
            description: t.description,
            echoable: t.echoable,
            created_at: time(t.created_at),
            payload_schema: t
                .payload_schema_json
                .and_then(|text| serde_json::from_str(&text).ok()),
        }
    }
}

// ------------------------------------------------------------ deliveries

/// One attempt to deliver.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub(crate) struct DeliveryAttempt {
    pub attempt_number: u32,
    pub started_at: DateTime<Utc>,
    pub duration_ms: u32,
    /// The HTTP status the endpoint answered, if it answered.
    pub response_status: Option<u32>,
    /// Why the attempt failed: `HTTP 500`, `timeout after 15 s`, …
    pub error: Option<String>,
    /// The first bytes of the answer.
    pub response_excerpt: String,
    /// Why the attempt failed, as a stable code for programs: `refused`,
    /// `dns`, `connection_refused`, `connection_reset`, `connect_timeout`,
    /// `timeout`, `tls`, `invalid_response`, `connection`, `redirect` or
    /// `http_status`; null on success and on 410 Gone.
    #[schema(pattern = "^[a-z_]+$")]
    pub failure_kind: Option<String>,
}

/// A delivery of one event to one registration, with its attempts.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub(crate) struct Delivery {
    #[schema(format = Uuid)]
    pub delivery_id: String,
    #[schema(format = Uuid)]
    pub event_id: String,
    #[schema(format = Uuid)]
    pub partner_unique_id: String,
    pub notification_type: i32,
    /// `pending`, `delivered`, `failed` or `cancelled`.
    pub status: String,
    /// A test (echo) notification.
    pub is_test: bool,
    pub attempt_count: u32,
    pub next_attempt_at: Option<DateTime<Utc>>,
    pub created_at: DateTime<Utc>,
    /// Oldest first; empty in lists.
    pub attempts: Vec<DeliveryAttempt>,
}

#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub(crate) struct DeliveryPage {
    pub results: Vec<Delivery>,
    pub page_number: u32,
    pub page_size: u32,
    pub has_previous_page: bool,
    pub has_next_page: bool,
}

pub(crate) fn delivery_status_name(status: i32) -> String {
    use callbacks_proto::dispatcher::v1::DeliveryStatus;
    match DeliveryStatus::try_from(status) {
        Ok(DeliveryStatus::Pending) => "pending",
        Ok(DeliveryStatus::Delivered) => "delivered",
        Ok(DeliveryStatus::Failed) => "failed",
        Ok(DeliveryStatus::Cancelled) => "cancelled",
        _ => "unknown",
    }
    .to_owned()
}

impl From<callbacks_proto::dispatcher::v1::Delivery> for Delivery {
    fn from(d: callbacks_proto::dispatcher::v1::Delivery) -> Self {
        Self {
            delivery_id: d.delivery_id,
            event_id: d.event_id,
            partner_unique_id: d.partner_id,
            notification_type: d.notification_type,
            status: delivery_status_name(d.status),
            is_test: d.is_test,
            attempt_count: d.attempt_count,
            next_attempt_at: maybe_time(d.next_attempt_at),
            created_at: time(d.created_at),
            attempts: d
                .attempts
                .into_iter()
                .map(|a| DeliveryAttempt {
                    attempt_number: a.attempt_number,
                    started_at: time(a.started_at),
                    duration_ms: a.duration_ms,
                    response_status: a.response_status,
                    error: a.error,
                    response_excerpt: a.response_excerpt,
                    failure_kind: a.failure_kind,
                })
                .collect(),
        }
    }
}
