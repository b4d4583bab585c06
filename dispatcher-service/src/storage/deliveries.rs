//! Reading deliveries and their attempt logs, and redelivery.

use diesel::prelude::*;
use diesel_async::{AsyncPgConnection, RunQueryDsl};
use uuid::Uuid;

use super::models::{AttemptRow, DeliveryRow};
use super::schema::{attempts, deliveries, events};
pub(crate) use crate::domain::delivery::ListFilter;
use crate::domain::{Delivery, DeliveryStatus, DispatchError};

async fn attempts_of(
    conn: &mut AsyncPgConnection,
    id: Uuid,
) -> Result<Vec<AttemptRow>, DispatchError> {
    Ok(attempts::table
        .filter(attempts::delivery_id.eq(id))
        .order(attempts::attempt_number)
        .select(AttemptRow::as_select())
        .load(conn)
        .await?)
}

/// The delivery with its attempts; with `partner`, only if it is theirs.
pub(crate) async fn get(
    conn: &mut AsyncPgConnection,
    id: Uuid,
    partner: Option<Uuid>,
) -> Result<Option<Delivery>, DispatchError> {
    let mut query = deliveries::table
        .find(id)
        .select(DeliveryRow::as_select())
        .into_boxed();
    if let Some(partner) = partner {
        query = query.filter(deliveries::partner_id.eq(partner));
    }
    let Some(row) = query.first(conn).await.optional()? else {
        return Ok(None);
    };
    let attempts = attempts_of(conn, id).await?;
    Ok(Some(row.into_domain(attempts)))
}

/// A partner's deliveries, newest first; `limit` rows from `offset`, without
/// their attempt logs. Found through their events, whose index serves this
/// (`deliveries` keeps only the indexes its hot path needs).
pub(crate) async fn list(
    conn: &mut AsyncPgConnection,
    filter: ListFilter,
    offset: i64,
    limit: i64,
) -> Result<Vec<Delivery>, DispatchError> {
    let mut query = events::table
        .inner_join(deliveries::table.on(events::delivery_id.eq(deliveries::id.nullable())))
        .filter(events::partner_id.eq(filter.partner_id))
        .filter(events::delivery_id.is_not_null())
        .select(DeliveryRow::as_select())
        .order((events::created_at.desc(), events::delivery_id.desc()))
        .offset(offset)
        .limit(limit)
        .into_boxed();
    if let Some(kind) = filter.notification_type {
        query = query.filter(events::notification_type.eq(kind));
    }
    if let Some(status) = filter.status {
        query = query.filter(deliveries::status.eq(status.as_str()));
    }
    if let Some(since) = filter.since {
        query = query.filter(events::created_at.ge(since));
    }
    if let Some(until) = filter.until {
        query = query.filter(events::created_at.lt(until));
    }
    let rows = query.load(conn).await?;
    Ok(rows
        .into_iter()
        .map(|row| row.into_domain(Vec::new()))
        .collect())
}

/// Makes a finished delivery due again, as a new series of attempts.
/// `FailedPrecondition` while it is still pending.
pub(crate) async fn redeliver(
    conn: &mut AsyncPgConnection,
    id: Uuid,
    partner: Option<Uuid>,
) -> Result<Delivery, DispatchError> {
    let existing = get(conn, id, partner)
        .await?
        .ok_or(DispatchError::DeliveryNotFound(id))?;
    if existing.status == DeliveryStatus::Pending {
        return Err(DispatchError::StillPending(id));
    }
    let erased: Option<chrono::DateTime<chrono::Utc>> = events::table
        .find(existing.event_id)
        .select(events::erased_at)
        .first(conn)
        .await?;
    if erased.is_some() {
        return Err(DispatchError::PayloadErased(existing.event_id));
    }
    // The answer is the row this update wrote: read again afterwards, it
    // could already show the new series' outcome (a worker may claim the
    // delivery the moment the update commits).
    let Some(updated) = diesel::update(deliveries::table.find(id))
        .filter(deliveries::status.ne(DeliveryStatus::Pending.as_str()))
        .set((
            deliveries::status.eq(DeliveryStatus::Pending.as_str()),
            deliveries::next_attempt_at.eq(diesel::dsl::now),
            deliveries::series_attempts.eq(0),
            deliveries::lease_token.eq(None::<Uuid>),
            deliveries::completed_at.eq(None::<chrono::DateTime<chrono::Utc>>),
            deliveries::updated_at.eq(diesel::dsl::now),
        ))
        .returning(DeliveryRow::as_returning())
        .get_result(conn)
        .await
        .optional()?
    else {
        return Err(DispatchError::RedeliveredConcurrently(id));
    };
    super::notify_due(conn).await?;
    let mut delivery = updated.into_domain(Vec::new());
    delivery.attempts = existing.attempts;
    Ok(delivery)
}
