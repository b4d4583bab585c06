//! Domain values into wire messages. (Wire into domain happens in
//! `mod.rs`, field by field, where each request is parsed.)

use callbacks_proto::registry::v1 as pb;
use chrono::{DateTime, Utc};
use prost_types::Timestamp;
use secrecy::ExposeSecret;

use crate::domain::health::HealthEvent;
use crate::domain::{
    ApiKey, Change, ChangesSince, NotificationType, Page, Partner, Registration, SignatureScheme,
};
use crate::service::{IssuedKey, ResolvedCallback, SigningSecrets};

pub(crate) fn timestamp(at: DateTime<Utc>) -> Timestamp {
    Timestamp {
        seconds: at.timestamp(),
        nanos: at.timestamp_subsec_nanos() as i32,
    }
}

/// `None` for a timestamp outside chrono's range or with invalid nanos.
pub(crate) fn from_timestamp(ts: &Timestamp) -> Option<DateTime<Utc>> {
    let nanos = u32::try_from(ts.nanos).ok()?;
    DateTime::from_timestamp(ts.seconds, nanos)
}

pub(crate) fn page_info<T>(page: &Page<T>) -> pb::PageInfo {
    pb::PageInfo {
        page_number: page.number,
        page_size: page.size,
        has_previous_page: page.has_previous_page,
        has_next_page: page.has_next_page,
    }
}

impl From<Partner> for pb::Partner {
    fn from(p: Partner) -> Self {
        Self {
            partner_id: p.id.to_string(),
            name: p.name,
            created_at: Some(timestamp(p.created_at)),
            disabled_at: p.disabled_at.map(timestamp),
        }
    }
}

impl From<ApiKey> for pb::ApiKey {
    fn from(k: ApiKey) -> Self {
        Self {
            key_id: k.id.to_string(),
            partner_id: k.partner_id.to_string(),
            label: k.label,
            token_prefix: k.token_prefix,
            created_at: Some(timestamp(k.created_at)),
            revoked_at: k.revoked_at.map(timestamp),
            portal_only: k.portal_only,
            expires_at: k.expires_at.map(timestamp),
        }
    }
}

impl From<IssuedKey> for pb::IssuedApiKey {
    fn from(k: IssuedKey) -> Self {
        Self {
            key: Some(k.key.into()),
            token: k.token.expose_secret().to_owned(),
        }
    }
}

impl From<NotificationType> for pb::NotificationType {
    fn from(t: NotificationType) -> Self {
        Self {
            notification_type_id: t.id.get(),
            name: t.name,
            description: t.description,
            echoable: t.echoable,
            created_at: Some(timestamp(t.created_at)),
            payload_schema_json: t.payload_schema,
        }
    }
}

impl From<Registration> for pb::Registration {
    fn from(r: Registration) -> Self {
        Self {
            registration_id: r.id.to_string(),
            partner_id: r.partner_id.to_string(),
            notification_type: r.notification_type.get(),
            callback_url: r.callback_url,
            callback_user_name: r.callback_user_name,
            has_password: r.has_password,
            is_active: r.is_active,
            deactivated_at: r.deactivated_at.map(timestamp),
            deactivation_reason: r.deactivation_reason,
            is_in_error_state: r.error_state.is_in_error_state,
            error_state_reason: r.error_state.reason,
            detected_error_state_at: r.error_state.detected_at.map(timestamp),
            created_at: Some(timestamp(r.created_at)),
            updated_at: Some(timestamp(r.updated_at)),
            merchant_id: r.merchant_id,
            paused_at: r.pause.as_ref().map(|p| timestamp(p.since)),
            pause_reason: r.pause.map(|p| p.reason),
            retry_policy: Some(pb::RetryPolicy {
                name: r.retry_policy.name().to_owned(),
                schedule_seconds: r.retry_policy.waits().to_vec(),
            }),
            signature_scheme: scheme(r.signature_scheme).into(),
        }
    }
}

impl From<SigningSecrets> for pb::SigningSecrets {
    fn from(s: SigningSecrets) -> Self {
        Self {
            registration_id: s.registration_id.to_string(),
            current: s.current.key.expose_secret().to_owned(),
            scheme: scheme(s.current.scheme).into(),
            previous: s
                .previous
                .into_iter()
                .map(|k| pb::PreviousKey {
                    key: k.key.expose_secret().to_owned(),
                    scheme: scheme(k.scheme).into(),
                    expires_at: k.expires_at.map(timestamp),
                })
                .collect(),
        }
    }
}

/// A signature scheme on the wire.
fn scheme(scheme: SignatureScheme) -> pb::SignatureScheme {
    match scheme {
        SignatureScheme::HmacSha256 => pb::SignatureScheme::HmacSha256,
        SignatureScheme::Ed25519 => pb::SignatureScheme::Ed25519,
    }
}

impl From<ResolvedCallback> for pb::ResolvedCallback {
    fn from(r: ResolvedCallback) -> Self {
        Self {
            registration_id: r.registration_id.to_string(),
            callback_url: r.callback_url,
            callback_user_name: r.user_name,
            callback_password: r.password.map(|p| p.expose_secret().to_owned()),
            signing_secrets: r
                .signing_secrets
                .iter()
                .map(|s| s.expose_secret().to_owned())
                .collect(),
            is_in_error_state: r.is_in_error_state,
            retry_schedule_seconds: r.retry_waits,
            paused: r.paused,
        }
    }
}

impl From<ChangesSince> for pb::ListChangesResponse {
    fn from(c: ChangesSince) -> Self {
        use pb::registry_change::Kind;
        let changes = c
            .changes
            .into_iter()
            .map(|(version, change)| {
                let mut wire = pb::RegistryChange {
                    version,
                    ..Default::default()
                };
                match change {
                    Change::Callback(partner, kind) => {
                        wire.set_kind(Kind::Callback);
                        wire.partner_id = partner.to_string();
                        wire.notification_type = kind.get();
                    }
                    Change::Partner(partner) => {
                        wire.set_kind(Kind::Partner);
                        wire.partner_id = partner.to_string();
                    }
                    Change::ApiKey(partner, key) => {
                        wire.set_kind(Kind::ApiKey);
                        wire.partner_id = partner.to_string();
                        wire.api_key_id = key.to_string();
                    }
                    Change::Catalogue => wire.set_kind(Kind::Catalogue),
                }
                wire
            })
            .collect();
        Self {
            version: c.version,
            complete: c.complete,
            changes,
        }
    }
}

impl From<HealthEvent> for pb::HealthEvent {
    fn from(e: HealthEvent) -> Self {
        Self {
            id: e.id,
            partner_id: e.partner_id.to_string(),
            notification_type: e.notification_type,
            registration_id: e.registration_id.to_string(),
            kind: e.kind.as_str().to_owned(),
            reason: e.reason,
            occurred_at: Some(timestamp(e.occurred_at)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timestamps_round_trip() {
        let now = Utc::now();
        assert_eq!(from_timestamp(&timestamp(now)), Some(now));
        assert_eq!(
            from_timestamp(&Timestamp {
                seconds: 0,
                nanos: -1
            }),
            None
        );
    }
}
