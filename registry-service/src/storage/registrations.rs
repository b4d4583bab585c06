//! Queries on `registrations`. At most one row per (partner, type) is
//! active, which a partial unique index enforces; deactivated rows stay as
//! history.

use chrono::{DateTime, Utc};
use diesel::prelude::*;
use diesel_async::{AsyncPgConnection, RunQueryDsl};

use super::models::{KeysChange, OutcomeChange, RegistrationRow, TargetChange};
use super::schema::registrations;
pub(crate) use crate::domain::registration::ListFilter;
use crate::domain::{
    NotificationTypeId, Page, PageRequest, PartnerId, RegistrationId, RegistryError,
};

type ActiveFilter = diesel::dsl::And<
    diesel::dsl::And<
        diesel::dsl::Eq<registrations::partner_id, uuid::Uuid>,
        diesel::dsl::Eq<registrations::notification_type_id, i32>,
    >,
    diesel::dsl::Eq<registrations::is_active, bool>,
>;

/// The filter that picks the active registration of (partner, type).
fn active(partner_id: PartnerId, notification_type: NotificationTypeId) -> ActiveFilter {
    registrations::partner_id
        .eq(partner_id.as_uuid())
        .and(registrations::notification_type_id.eq(notification_type.get()))
        .and(registrations::is_active.eq(true))
}

/// The active registration for (partner, type).
pub(crate) async fn find_active(
    conn: &mut AsyncPgConnection,
    partner_id: PartnerId,
    notification_type: NotificationTypeId,
) -> Result<Option<RegistrationRow>, RegistryError> {
    Ok(registrations::table
        .filter(active(partner_id, notification_type))
        .select(RegistrationRow::as_select())
        .first(conn)
        .await
        .optional()?)
}

/// Like [`find_active`], holding the row until the transaction ends.
pub(crate) async fn lock_active(
    conn: &mut AsyncPgConnection,
    partner_id: PartnerId,
    notification_type: NotificationTypeId,
) -> Result<Option<RegistrationRow>, RegistryError> {
    Ok(registrations::table
        .filter(active(partner_id, notification_type))
        .select(RegistrationRow::as_select())
        .for_update()
        .first(conn)
        .await
        .optional()?)
}

/// Holds the registration row until the transaction ends.
pub(crate) async fn lock(
    conn: &mut AsyncPgConnection,
    id: RegistrationId,
) -> Result<Option<RegistrationRow>, RegistryError> {
    Ok(registrations::table
        .find(id.as_uuid())
        .select(RegistrationRow::as_select())
        .for_update()
        .first(conn)
        .await
        .optional()?)
}

/// Inserts a new active registration. `None` when another active one for
/// the same (partner, type) won a race: the caller updates that one instead.
pub(crate) async fn insert(
    conn: &mut AsyncPgConnection,
    row: &RegistrationRow,
) -> Result<Option<RegistrationRow>, RegistryError> {
    Ok(diesel::insert_into(registrations::table)
        .values(row)
        .on_conflict_do_nothing()
        .returning(RegistrationRow::as_returning())
        .get_result(conn)
        .await
        .optional()?)
}

pub(crate) async fn update_target(
    conn: &mut AsyncPgConnection,
    id: RegistrationId,
    change: &TargetChange,
) -> Result<RegistrationRow, RegistryError> {
    Ok(diesel::update(registrations::table.find(id.as_uuid()))
        .set(change)
        .returning(RegistrationRow::as_returning())
        .get_result(conn)
        .await?)
}

/// Pauses (since when, why) or resumes (`None`) a registration.
pub(crate) async fn set_pause(
    conn: &mut AsyncPgConnection,
    id: RegistrationId,
    pause: Option<(DateTime<Utc>, &str)>,
    at: DateTime<Utc>,
) -> Result<RegistrationRow, RegistryError> {
    Ok(diesel::update(registrations::table.find(id.as_uuid()))
        .set((
            registrations::paused_at.eq(pause.map(|p| p.0)),
            registrations::pause_reason.eq(pause.map(|p| p.1)),
            registrations::updated_at.eq(at),
        ))
        .returning(RegistrationRow::as_returning())
        .get_result(conn)
        .await?)
}

/// Counts a registration's failing streak from `at`.
pub(crate) async fn restart_streak(
    conn: &mut AsyncPgConnection,
    id: RegistrationId,
    at: DateTime<Utc>,
) -> Result<RegistrationRow, RegistryError> {
    Ok(diesel::update(registrations::table.find(id.as_uuid()))
        .set(registrations::detected_error_state_at.eq(at))
        .returning(RegistrationRow::as_returning())
        .get_result(conn)
        .await?)
}

/// Soft delete: the row stays, inactive, with when and why.
pub(crate) async fn deactivate(
    conn: &mut AsyncPgConnection,
    id: RegistrationId,
    reason: &str,
    at: DateTime<Utc>,
) -> Result<RegistrationRow, RegistryError> {
    Ok(diesel::update(registrations::table.find(id.as_uuid()))
        .set((
            registrations::is_active.eq(false),
            registrations::deactivated_at.eq(at),
            registrations::deactivation_reason.eq(reason),
            registrations::updated_at.eq(at),
        ))
        .returning(RegistrationRow::as_returning())
        .get_result(conn)
        .await?)
}

/// Writes a rotation's keys.
pub(crate) async fn set_keys(
    conn: &mut AsyncPgConnection,
    id: RegistrationId,
    change: &KeysChange,
) -> Result<RegistrationRow, RegistryError> {
    Ok(diesel::update(registrations::table.find(id.as_uuid()))
        .set(change)
        .returning(RegistrationRow::as_returning())
        .get_result(conn)
        .await?)
}

pub(crate) async fn apply_outcome(
    conn: &mut AsyncPgConnection,
    id: RegistrationId,
    change: &OutcomeChange,
) -> Result<RegistrationRow, RegistryError> {
    Ok(diesel::update(registrations::table.find(id.as_uuid()))
        .set(change)
        .returning(RegistrationRow::as_returning())
        .get_result(conn)
        .await?)
}

/// A partner's registrations, oldest first, active and history alike unless
/// filtered.
pub(crate) async fn list(
    conn: &mut AsyncPgConnection,
    partner_id: PartnerId,
    filter: ListFilter,
    page: PageRequest,
) -> Result<Page<RegistrationRow>, RegistryError> {
    let mut query = registrations::table
        .filter(registrations::partner_id.eq(partner_id.as_uuid()))
        .select(RegistrationRow::as_select())
        .order((registrations::created_at, registrations::id))
        .offset(page.offset())
        .limit(page.fetch_limit())
        .into_boxed();
    if let Some(is_active) = filter.is_active {
        query = query.filter(registrations::is_active.eq(is_active));
    }
    if let Some(id) = filter.registration_id {
        query = query.filter(registrations::id.eq(id.as_uuid()));
    }
    if let Some(merchant) = filter.merchant_id {
        query = query.filter(registrations::merchant_id.eq(merchant));
    }
    Ok(page.finish(query.load(conn).await?))
}

/// Active registrations in error state, across partners, the longest
/// failing first (served by `registrations_error_state_idx`).
pub(crate) async fn list_in_error_state(
    conn: &mut AsyncPgConnection,
    page: PageRequest,
) -> Result<Page<RegistrationRow>, RegistryError> {
    let rows = registrations::table
        .filter(registrations::is_in_error_state.eq(true))
        .filter(registrations::is_active.eq(true))
        .select(RegistrationRow::as_select())
        .order((registrations::detected_error_state_at, registrations::id))
        .offset(page.offset())
        .limit(page.fetch_limit())
        .load(conn)
        .await?;
    Ok(page.finish(rows))
}

/// How many active registrations are in error state.
pub(crate) async fn count_in_error_state(
    conn: &mut AsyncPgConnection,
) -> Result<i64, RegistryError> {
    Ok(registrations::table
        .filter(registrations::is_in_error_state.eq(true))
        .filter(registrations::is_active.eq(true))
        .count()
        .get_result(conn)
        .await?)
}
