//! Health events: written in the transaction of the state change they
//! report, read in order by the dispatchers that relay them.

use chrono::{DateTime, Utc};
use diesel::prelude::*;
use diesel_async::{AsyncPgConnection, RunQueryDsl};
use uuid::Uuid;

use super::schema::health_events;
use crate::domain::RegistryError;
use crate::domain::health::{HealthEvent, HealthKind};

#[derive(Debug, Insertable)]
#[diesel(table_name = health_events)]
struct NewRow<'a> {
    partner_id: Uuid,
    notification_type: i32,
    registration_id: Uuid,
    kind: &'a str,
    reason: Option<&'a str>,
    occurred_at: DateTime<Utc>,
}

#[derive(Debug, Queryable, Selectable)]
#[diesel(table_name = health_events, check_for_backend(diesel::pg::Pg))]
struct Row {
    id: i64,
    partner_id: Uuid,
    notification_type: i32,
    registration_id: Uuid,
    kind: String,
    reason: Option<String>,
    occurred_at: DateTime<Utc>,
}

/// Records `event` (its `id` is ignored: the table numbers it).
pub(crate) async fn record(
    conn: &mut AsyncPgConnection,
    event: &HealthEvent,
) -> Result<(), RegistryError> {
    diesel::insert_into(health_events::table)
        .values(NewRow {
            partner_id: event.partner_id,
            notification_type: event.notification_type,
            registration_id: event.registration_id,
            kind: event.kind.as_str(),
            reason: event.reason.as_deref(),
            occurred_at: event.occurred_at,
        })
        .execute(conn)
        .await?;
    Ok(())
}

/// Up to `limit` events numbered after `after`, in order.
pub(crate) async fn after(
    conn: &mut AsyncPgConnection,
    after: i64,
    limit: i64,
) -> Result<Vec<HealthEvent>, RegistryError> {
    let rows: Vec<Row> = health_events::table
        .filter(health_events::id.gt(after))
        .order(health_events::id)
        .limit(limit)
        .select(Row::as_select())
        .load(conn)
        .await?;
    Ok(rows
        .into_iter()
        .map(|r| HealthEvent {
            id: r.id,
            partner_id: r.partner_id,
            notification_type: r.notification_type,
            registration_id: r.registration_id,
            kind: HealthKind::from_stored(&r.kind),
            reason: r.reason,
            occurred_at: r.occurred_at,
        })
        .collect())
}
