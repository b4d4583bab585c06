//! Writing published events, with their deliveries, in one transaction.

use diesel::prelude::*;
use diesel_async::{AsyncPgConnection, RunQueryDsl};
use uuid::Uuid;

use super::WAKE_CHANNEL;
use super::models::{NewDelivery, NewEvent};
use super::schema::{deliveries, events};
use crate::domain::DispatchError;

/// What became of one event handed to [`insert`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Stored {
    pub event_id: Uuid,
    pub delivery_id: Option<Uuid>,
    /// The idempotency key had been used: these are the first event's ids.
    pub duplicate: bool,
}

/// Stores `new` events and a delivery for each that has a subscriber, then
/// wakes the workers; all in the caller's transaction, so nothing is
/// visible (or delivered) before it commits. Events whose idempotency key
/// was used before are not stored again: their first event is answered.
pub async fn insert(
    conn: &mut AsyncPgConnection,
    new: &[NewEvent],
) -> Result<Vec<Stored>, DispatchError> {
    let inserted: std::collections::HashSet<Uuid> = diesel::insert_into(events::table)
        .values(new)
        .on_conflict_do_nothing()
        .returning(events::id)
        .get_results::<Uuid>(conn)
        .await?
        .into_iter()
        .collect();
    let mut results = Vec::with_capacity(new.len());
    let mut fresh_deliveries = Vec::new();
    for event in new {
        if inserted.contains(&event.id) {
            let delivery_id = event.has_subscriber.then(Uuid::now_v7);
            if let Some(id) = delivery_id {
                fresh_deliveries.push(NewDelivery {
                    id,
                    event_id: event.id,
                    partner_id: event.partner_id,
                    notification_type: event.notification_type,
                    is_test: event.is_test,
                });
            }
            results.push(Stored {
                event_id: event.id,
                delivery_id,
                duplicate: false,
            });
        } else {
            results.push(first_of_key(conn, event).await?);
        }
    }
    if !fresh_deliveries.is_empty() {
        diesel::insert_into(deliveries::table)
            .values(&fresh_deliveries)
            .execute(conn)
            .await?;
        diesel::sql_query(format!("NOTIFY {WAKE_CHANNEL}"))
            .execute(conn)
            .await?;
    }
    Ok(results)
}

/// The event (and delivery) an earlier publish with the same key made.
async fn first_of_key(
    conn: &mut AsyncPgConnection,
    event: &NewEvent,
) -> Result<Stored, DispatchError> {
    let Some(key) = &event.idempotency_key else {
        return Err(DispatchError::internal(format!(
            "event {} without an idempotency key conflicted",
            event.id
        )));
    };
    let event_id: Uuid = events::table
        .filter(events::partner_id.eq(event.partner_id))
        .filter(events::idempotency_key.eq(key))
        .select(events::id)
        .first(conn)
        .await?;
    let delivery_id = deliveries::table
        .filter(deliveries::event_id.eq(event_id))
        .select(deliveries::id)
        .first(conn)
        .await
        .optional()?;
    Ok(Stored {
        event_id,
        delivery_id,
        duplicate: true,
    })
}
