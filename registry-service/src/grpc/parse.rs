//! Turns the wire requests that carry more than an id into domain values,
//! reporting every field violation of a request at once.

use std::time::Duration;

use callbacks_proto::registry::v1 as pb;
use pb::record_delivery_outcome_request::Outcome as WireOutcome;

use super::convert::from_timestamp;
use crate::domain::registration::ListFilter;
use crate::domain::signing::MAX_PREVIOUS_KEY_LIFETIME;
use crate::domain::text::{self, Credentials};
use crate::domain::{
    FieldViolation, NewNotificationType, NotificationTypeId, Outcome, PageRequest, PartnerId,
    RegistrationId, RegistryError, RetryPolicy, SignatureScheme, UrlPolicy,
};
use crate::service::{OutcomeReport, UpsertCallback};
use service_kit::validation::{CHECKED, Violations};

pub(super) fn partner_id(raw: &str) -> Result<PartnerId, RegistryError> {
    Ok(PartnerId::parse("partner_id", raw)?)
}

/// Parses the (partner, type) pair most callback RPCs are addressed by,
/// reporting both fields at once when both are wrong.
pub(super) fn target(
    partner: &str,
    kind: i32,
) -> Result<(PartnerId, NotificationTypeId), RegistryError> {
    let mut violations = Violations::default();
    let partner = violations.check(PartnerId::parse("partner_id", partner));
    let kind = violations.check(NotificationTypeId::parse("notification_type", kind));
    violations.finish()?;
    let (partner, kind) = (partner.expect(CHECKED), kind.expect(CHECKED));
    let span = tracing::Span::current();
    span.record("partner.id", tracing::field::display(partner));
    span.record("notification.type", kind.get());
    Ok((partner, kind))
}

pub(super) fn page(request: Option<pb::PageRequest>) -> Result<PageRequest, RegistryError> {
    let request = request.unwrap_or_default();
    Ok(PageRequest::parse(request.page_number, request.page_size)?)
}

pub(super) fn new_notification_type(
    request: pb::CreateNotificationTypeRequest,
) -> Result<NewNotificationType, RegistryError> {
    let mut violations = Violations::default();
    let id = violations.check(NotificationTypeId::parse(
        "notification_type_id",
        request.notification_type_id,
    ));
    let name = violations.check(text::type_name(&request.name));
    let description = violations.check(text::optional("description", &request.description, 1000));
    let payload_schema = violations.check(text::payload_schema(
        "payload_schema_json",
        request.payload_schema_json.as_deref(),
    ));
    violations.finish()?;
    Ok(NewNotificationType {
        id: id.expect(CHECKED),
        name: name.expect(CHECKED),
        description: description.expect(CHECKED),
        echoable: request.echoable,
        payload_schema: payload_schema.expect(CHECKED),
    })
}

pub(super) fn upsert_callback(
    request: pb::UpsertCallbackRequest,
    url_policy: &UrlPolicy,
) -> Result<UpsertCallback, RegistryError> {
    let mut violations = Violations::default();
    let partner = violations.check(PartnerId::parse("partner_id", &request.partner_id));
    let kind = violations.check(NotificationTypeId::parse(
        "notification_type",
        request.notification_type,
    ));
    let url = violations.check(url_policy.parse(&request.callback_url));
    let credentials = violations.check(Credentials::parse(
        request.callback_user_name.as_deref(),
        request.callback_password.as_deref(),
    ));
    let merchant_id = violations.check(text::merchant_id(request.merchant_id.as_deref()));
    let retry_policy = request.retry_policy.unwrap_or_default();
    let retry_policy = violations.check(RetryPolicy::parse(
        &retry_policy.name,
        &retry_policy.schedule_seconds,
    ));
    let signature_scheme = violations.check(signature_scheme(request.signature_scheme));
    violations.finish()?;
    Ok(UpsertCallback {
        partner_id: partner.expect(CHECKED),
        notification_type: kind.expect(CHECKED),
        callback_url: url.expect(CHECKED),
        credentials: credentials.expect(CHECKED),
        merchant_id: merchant_id.expect(CHECKED),
        retry_policy: retry_policy.expect(CHECKED),
        signature_scheme: signature_scheme.expect(CHECKED),
    })
}

/// A requested signature scheme; `None` (left out, or UNSPECIFIED) keeps
/// the registration's.
fn signature_scheme(value: Option<i32>) -> Result<Option<SignatureScheme>, FieldViolation> {
    match value.map(pb::SignatureScheme::try_from) {
        None | Some(Ok(pb::SignatureScheme::Unspecified)) => Ok(None),
        Some(Ok(pb::SignatureScheme::HmacSha256)) => Ok(Some(SignatureScheme::HmacSha256)),
        Some(Ok(pb::SignatureScheme::Ed25519)) => Ok(Some(SignatureScheme::Ed25519)),
        Some(Err(_)) => Err(FieldViolation::new(
            "signature_scheme",
            "must be SIGNATURE_SCHEME_HMAC_SHA256 or SIGNATURE_SCHEME_ED25519",
        )),
    }
}

/// How long a rotation keeps the replaced key: at most a week.
pub(super) fn previous_key_life(seconds: Option<u32>) -> Result<Option<Duration>, RegistryError> {
    let Some(seconds) = seconds else {
        return Ok(None);
    };
    let life = Duration::from_secs(seconds.into());
    if life > MAX_PREVIOUS_KEY_LIFETIME {
        return Err(RegistryError::invalid(
            "previous_expires_in_seconds",
            format!(
                "must be 0 to {} (a week)",
                MAX_PREVIOUS_KEY_LIFETIME.as_secs()
            ),
        ));
    }
    Ok(Some(life))
}

/// The partner whose registrations are listed, the filter and the page.
pub(super) fn list_callbacks(
    request: pb::ListCallbacksRequest,
) -> Result<(PartnerId, ListFilter, PageRequest), RegistryError> {
    let mut violations = Violations::default();
    let partner = violations.check(PartnerId::parse("partner_id", &request.partner_id));
    let registration_id = match request.registration_id.as_deref() {
        Some(raw) => violations.check(RegistrationId::parse("registration_id", raw)),
        None => None,
    };
    let wire_page = request.page.unwrap_or_default();
    let page = violations.check(PageRequest::parse(
        wire_page.page_number,
        wire_page.page_size,
    ));
    let merchant_id = match request.merchant_id.as_deref() {
        Some(raw) => violations.check(text::merchant_filter(raw)),
        None => None,
    };
    violations.finish()?;
    let filter = ListFilter {
        is_active: request.is_active,
        registration_id,
        merchant_id,
    };
    Ok((partner.expect(CHECKED), filter, page.expect(CHECKED)))
}

pub(super) fn outcome_report(
    request: pb::RecordDeliveryOutcomeRequest,
) -> Result<OutcomeReport, RegistryError> {
    let mut violations = Violations::default();
    let id = violations.check(RegistrationId::parse(
        "registration_id",
        &request.registration_id,
    ));
    if request.callback_url.is_empty() {
        violations.push(FieldViolation::new("callback_url", "is required"));
    }
    let occurred_at = request.occurred_at.as_ref().and_then(from_timestamp);
    if occurred_at.is_none() {
        violations.push(FieldViolation::new(
            "occurred_at",
            "is required and must be a valid timestamp",
        ));
    }
    let outcome = request.outcome.map(outcome);
    if outcome.is_none() {
        violations.push(FieldViolation::new(
            "outcome",
            "is required: one of succeeded, failed, gone",
        ));
    }
    violations.finish()?;
    Ok(OutcomeReport {
        registration_id: id.expect(CHECKED),
        callback_url: request.callback_url,
        occurred_at: occurred_at.expect(CHECKED),
        outcome: outcome.expect(CHECKED),
    })
}

fn outcome(wire: WireOutcome) -> Outcome {
    let reason = |raw: String| {
        if raw.trim().is_empty() {
            "unspecified failure".to_owned()
        } else {
            raw
        }
    };
    match wire {
        WireOutcome::Succeeded(_) => Outcome::Succeeded,
        WireOutcome::Failed(f) => Outcome::Failed {
            reason: reason(f.reason),
        },
        WireOutcome::Gone(g) => Outcome::Gone {
            reason: reason(g.reason),
        },
    }
}
