//! Endpoint limits as every replica sees them: the holds and reduced
//! allowances of endpoints that throttled or kept failing (see
//! `delivery::fleet`). Times come from the database's clock, so a replica
//! whose own clock is off holds an endpoint exactly as long as the others.

use std::time::Duration;

use chrono::{DateTime, Utc};
use diesel::QueryableByName;
use diesel::sql_types::{BigInt, Double, Int4, Text, Timestamptz, Uuid as SqlUuid};
use diesel_async::{AsyncPgConnection, RunQueryDsl};
use uuid::Uuid;

use crate::domain::DispatchError;

/// An endpoint held by this replica: for `hold` from now, with `allowance`
/// attempts at once in all.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Held {
    pub registration_id: Uuid,
    pub partner_id: Uuid,
    pub notification_type: i32,
    pub reason: &'static str,
    pub hold: Duration,
    pub allowance: i32,
}

/// An endpoint's limit as stored: held for `remaining` more (zero once the
/// hold is over), `allowance` attempts at once in all.
#[derive(Debug, Clone, QueryableByName)]
pub(crate) struct Limit {
    #[diesel(sql_type = SqlUuid)]
    pub registration_id: Uuid,
    #[diesel(sql_type = Text)]
    pub reason: String,
    #[diesel(sql_type = BigInt)]
    remaining_ms: i64,
    #[diesel(sql_type = Int4)]
    pub allowance: i32,
}

impl Limit {
    pub(crate) fn remaining(&self) -> Duration {
        Duration::from_millis(u64::try_from(self.remaining_ms).unwrap_or(0))
    }
}

/// An endpoint throttled for long, not yet noticed.
#[derive(Debug, Clone, QueryableByName)]
pub(crate) struct Throttled {
    #[diesel(sql_type = SqlUuid)]
    pub registration_id: Uuid,
    #[diesel(sql_type = SqlUuid)]
    pub partner_id: Uuid,
    #[diesel(sql_type = Int4)]
    pub notification_type: i32,
    #[diesel(sql_type = Timestamptz)]
    pub limited_since: DateTime<Utc>,
    #[diesel(sql_type = Timestamptz)]
    pub noticed_at: DateTime<Utc>,
}

/// Records a hold: the later end and the smaller allowance of this one and
/// the one stored win; the streak's start stays.
pub(crate) async fn hold(conn: &mut AsyncPgConnection, held: &Held) -> Result<(), DispatchError> {
    diesel::sql_query(
        "INSERT INTO endpoint_limits AS l (registration_id, partner_id, notification_type,
             reason, held_until, allowance, limited_since, updated_at)
         VALUES ($1, $2, $3, $4, clock_timestamp() + make_interval(secs => $5), $6,
             clock_timestamp(), clock_timestamp())
         ON CONFLICT (registration_id) DO UPDATE SET
             reason = excluded.reason,
             held_until = greatest(l.held_until, excluded.held_until),
             allowance = least(l.allowance, excluded.allowance),
             updated_at = excluded.updated_at",
    )
    .bind::<SqlUuid, _>(held.registration_id)
    .bind::<SqlUuid, _>(held.partner_id)
    .bind::<Int4, _>(held.notification_type)
    .bind::<Text, _>(held.reason)
    .bind::<Double, _>(held.hold.as_secs_f64())
    .bind::<Int4, _>(held.allowance.max(1))
    .execute(conn)
    .await?;
    Ok(())
}

/// Records that the endpoint answered well enough for `allowance` attempts
/// at once; at `full`, once no hold is running, its row goes.
pub(crate) async fn ease(
    conn: &mut AsyncPgConnection,
    registration_id: Uuid,
    allowance: i32,
    full: i32,
) -> Result<(), DispatchError> {
    if allowance >= full {
        diesel::sql_query(
            "DELETE FROM endpoint_limits
             WHERE registration_id = $1 AND held_until <= clock_timestamp()",
        )
        .bind::<SqlUuid, _>(registration_id)
        .execute(conn)
        .await?;
    } else {
        diesel::sql_query(
            "UPDATE endpoint_limits
             SET allowance = greatest(allowance, $2), updated_at = clock_timestamp()
             WHERE registration_id = $1",
        )
        .bind::<SqlUuid, _>(registration_id)
        .bind::<Int4, _>(allowance)
        .execute(conn)
        .await?;
    }
    Ok(())
}

/// Every endpoint's limit, after forgetting those neither held nor
/// changed within `forget_after` (whoever limited them has stopped
/// writing: it recovered unseen, or its replica is gone).
pub(crate) async fn read(
    conn: &mut AsyncPgConnection,
    forget_after: Duration,
) -> Result<Vec<Limit>, DispatchError> {
    diesel::sql_query(
        "DELETE FROM endpoint_limits
         WHERE greatest(held_until, updated_at) < clock_timestamp() - make_interval(secs => $1)",
    )
    .bind::<Double, _>(forget_after.as_secs_f64())
    .execute(conn)
    .await?;
    Ok(diesel::sql_query(
        "SELECT registration_id, reason, allowance,
           greatest(0, ceil(extract(epoch FROM held_until - clock_timestamp()) * 1000))::int8
             AS remaining_ms
         FROM endpoint_limits",
    )
    .load(conn)
    .await?)
}

/// The endpoints throttled continuously for `after` and not yet noticed,
/// marked noticed: each streak is answered once, whichever replica asks
/// (the update takes the rows' locks; a second asker finds them noticed).
pub(crate) async fn notice_long_throttled(
    conn: &mut AsyncPgConnection,
    after: Duration,
) -> Result<Vec<Throttled>, DispatchError> {
    Ok(diesel::sql_query(
        "UPDATE endpoint_limits SET noticed_at = clock_timestamp()
         WHERE noticed_at IS NULL AND reason = 'throttled'
           AND limited_since <= clock_timestamp() - make_interval(secs => $1)
         RETURNING registration_id, partner_id, notification_type, limited_since, noticed_at",
    )
    .bind::<Double, _>(after.as_secs_f64())
    .load(conn)
    .await?)
}
