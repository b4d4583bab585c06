//! Callback registrations: create or update, read, list, delete, their
//! signing secrets, and what the dispatcher asks of them (resolution and
//! outcomes).

use super::*;
use crate::domain::health::{HealthEvent, HealthKind};
use crate::domain::registration::Standing;
use crate::storage::health_events;

impl Registry {
    // ------------------------------------------------------- registrations

    /// Creates the active registration for (partner, type), or replaces the
    /// URL and credentials of the existing one. Answers whether it created.
    pub(crate) async fn upsert_callback(
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
            retry_policy: request.retry_policy.name().to_owned(),
            retry_schedule_secs: request.retry_policy.stored_waits(),
            is_in_error_state: error_state.is_in_error_state,
            error_state_reason: error_state.reason,
            detected_error_state_at: error_state.detected_at,
            updated_at: Utc::now(),
        };
        let updated = registrations::update_target(conn, id, &change).await?;
        match request.signature_scheme {
            Some(scheme) if scheme.as_str() != updated.signature_scheme => {
                self.rotate_keys(
                    conn,
                    &updated,
                    scheme,
                    self.secret_grace,
                    super::signing::WhenFull::DropSoonest,
                )
                .await
            }
            _ => Ok(updated),
        }
    }

    async fn insert_registration(
        &self,
        conn: &mut diesel_async::AsyncPgConnection,
        request: &UpsertCallback,
    ) -> Result<Option<RegistrationRow>, RegistryError> {
        let id = RegistrationId::generate();
        let now = Utc::now();
        let row = RegistrationRow {
            id: id.as_uuid(),
            partner_id: request.partner_id.as_uuid(),
            notification_type_id: request.notification_type.get(),
            callback_url: request.callback_url.as_str().to_owned(),
            callback_user_name: request.credentials.as_ref().map(|c| c.user_name.clone()),
            callback_password_sealed: self.seal_password(id, request.credentials.as_ref())?,
            signing_secret_sealed: self.fresh_key(id)?,
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
            retry_policy: request.retry_policy.name().to_owned(),
            retry_schedule_secs: request.retry_policy.stored_waits(),
            paused_at: None,
            pause_reason: None,
            signature_scheme: request
                .signature_scheme
                .unwrap_or_default()
                .as_str()
                .to_owned(),
            previous_keys_sealed: Vec::new(),
            previous_keys_scheme: Vec::new(),
            previous_keys_expire_at: Vec::new(),
        };
        registrations::insert(conn, &row).await
    }

    pub(crate) async fn get_callback(
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

    pub(crate) async fn list_callbacks(
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

    pub(crate) async fn list_error_states(
        &self,
        page: PageRequest,
    ) -> Result<Page<Registration>, RegistryError> {
        let mut conn = self.pool.get().await?;
        let rows = registrations::list_in_error_state(&mut conn, page).await?;
        Ok(to_domain_page(rows))
    }

    /// Soft delete. `NotFound` when there is no active registration.
    pub(crate) async fn delete_callback(
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

    // ------------------------------------------------------ for delivery

    pub(crate) async fn resolve_callback(
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
        let signing_secrets = self.signing_keys(&row, Utc::now())?;
        let password = match &row.callback_password_sealed {
            Some(sealed) => Some(SecretString::from(
                String::from_utf8(self.open(sealed, &password_context(id))?)
                    .map_err(RegistryError::internal)?,
            )),
            None => None,
        };
        let retry_waits = row.to_domain().retry_policy.waits().to_vec();
        Ok(ResolvedCallback {
            registration_id: id,
            retry_waits,
            paused: row.paused_at.is_some(),
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
    pub(crate) async fn record_outcome(
        &self,
        report: OutcomeReport,
    ) -> Result<(Registration, bool), RegistryError> {
        let mut conn = self.pool.get().await?;
        conn.transaction(async |conn| {
            let row = registrations::lock(conn, report.registration_id)
                .await?
                .ok_or(RegistryError::RegistrationNotFound(report.registration_id))?;
            let standing = Standing {
                is_active: row.is_active,
                callback_url: &row.callback_url,
                last_outcome_at: row.last_outcome_at,
            };
            if standing.makes_stale(&report.callback_url, report.occurred_at) {
                metrics::counter!("callbacks_outcome_reports_total", "applied" => "false")
                    .increment(1);
                return Ok((row.to_domain(), false));
            }
            metrics::counter!("callbacks_outcome_reports_total", "applied" => "true").increment(1);
            let before = row.to_domain().error_state;
            let state: ErrorState = before.after(&report.outcome, report.occurred_at);
            let auto_pause = self.auto_pause(&row, &state, report.occurred_at);
            let health = health_changes(&row, &before, &state, auto_pause.as_deref(), &report);
            for event in &health {
                health_events::record(conn, event).await?;
            }
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
            if let Some(pause) = auto_pause {
                row = registrations::set_pause(conn, report.registration_id, Some((now, &pause)), now)
                    .await?;
                metrics::counter!("callbacks_registrations_auto_paused_total").increment(1);
                tracing::warn!(registration.id = %report.registration_id, reason = %pause, "registration paused automatically");
                changes::record(conn, callback_change(&row)).await?;
            }
            if let Outcome::Gone { reason } = &report.outcome {
                let why = format!("the endpoint answered 410 Gone ({reason})");
                row = registrations::deactivate(conn, report.registration_id, &why, now).await?;
                changes::record(conn, callback_change(&row)).await?;
            }
            Ok((row.to_domain(), true))
        })
        .await
    }
}

/// The health events an applied outcome makes: the error state entered or
/// left, and the registration paused automatically.
fn health_changes(
    row: &RegistrationRow,
    before: &ErrorState,
    after: &ErrorState,
    auto_pause: Option<&str>,
    report: &OutcomeReport,
) -> Vec<HealthEvent> {
    let event = |kind, reason: Option<String>| HealthEvent {
        id: 0,
        partner_id: row.partner_id,
        notification_type: row.notification_type_id,
        registration_id: row.id,
        kind,
        reason,
        occurred_at: report.occurred_at,
    };
    let mut events = Vec::new();
    if let Some(kind) = HealthKind::of_change(before, after) {
        events.push(event(kind, after.reason.clone()));
    }
    if let Some(reason) = auto_pause {
        events.push(event(HealthKind::Disabled, Some(reason.to_owned())));
    }
    events
}

impl Registry {
    /// The reason to pause `row` for, if the failure just applied (leaving
    /// `state`) makes its streak longer than `--auto-pause-after` and it is
    /// not paused yet.
    fn auto_pause(
        &self,
        row: &RegistrationRow,
        state: &ErrorState,
        at: DateTime<Utc>,
    ) -> Option<String> {
        let after = self.auto_pause_after?;
        if row.paused_at.is_some() || !row.is_active || !state.failing_for(at, after) {
            return None;
        }
        Some(format!(
            "paused automatically: failing since {} (longer than {})",
            state
                .detected_at?
                .to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
            humantime::format_duration(after)
        ))
    }
}

/// The change-log entry for a change to `row`'s registration.
fn callback_change(row: &RegistrationRow) -> Change {
    Change::Callback(
        PartnerId::from_uuid(row.partner_id),
        NotificationTypeId::from_stored(row.notification_type_id),
    )
}
