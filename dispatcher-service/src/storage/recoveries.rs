//! Recovery jobs: planning one (a dry run), making one, reading one, and
//! moving the running ones on by a chunk.
//!
//! A partner's deliveries are found through their events, whose index
//! (partner, type, publish time) serves the range. A job lists its
//! deliveries when it is made (`recovery_items`), so that each chunk is a
//! read of the list rather than of the range again.

use chrono::{DateTime, Utc};
use diesel::sql_types::{Array, BigInt, Bool, Int4, Nullable, Text, Timestamptz, Uuid as SqlUuid};
use diesel::{OptionalExtension as _, QueryableByName};
use diesel_async::{AsyncConnection as _, AsyncPgConnection, RunQueryDsl};
use uuid::Uuid;

use crate::domain::{
    DeliveryStatus, DispatchError, Recovery, RecoveryPlan, RecoveryScope, RecoveryState,
};

/// The deliveries a scope matches: `$1` partner, `$2` type (or NULL), `$3`
/// since, `$4` until, `$5` statuses.
const MATCHING: &str = "FROM events e JOIN deliveries d ON d.id = e.delivery_id
     WHERE e.partner_id = $1 AND ($2::int IS NULL OR e.notification_type = $2)
       AND e.created_at >= $3 AND e.created_at < $4 AND e.delivery_id IS NOT NULL
       AND d.status = ANY($5) AND e.erased_at IS NULL";

#[derive(QueryableByName)]
struct PlanRow {
    #[diesel(sql_type = BigInt)]
    total: i64,
    #[diesel(sql_type = Nullable<Timestamptz>)]
    earliest: Option<DateTime<Utc>>,
    #[diesel(sql_type = Nullable<Timestamptz>)]
    latest: Option<DateTime<Utc>>,
}

#[derive(QueryableByName)]
struct RecoveryRow {
    #[diesel(sql_type = SqlUuid)]
    id: Uuid,
    #[diesel(sql_type = SqlUuid)]
    partner_id: Uuid,
    #[diesel(sql_type = Nullable<Int4>)]
    notification_type: Option<i32>,
    #[diesel(sql_type = Array<Text>)]
    statuses: Vec<String>,
    #[diesel(sql_type = Timestamptz)]
    since: DateTime<Utc>,
    #[diesel(sql_type = Timestamptz)]
    until: DateTime<Utc>,
    #[diesel(sql_type = BigInt)]
    total: i64,
    #[diesel(sql_type = BigInt)]
    resent: i64,
    #[diesel(sql_type = Text)]
    state: String,
    #[diesel(sql_type = Timestamptz)]
    created_at: DateTime<Utc>,
    #[diesel(sql_type = Nullable<Timestamptz>)]
    finished_at: Option<DateTime<Utc>>,
}

impl From<RecoveryRow> for Recovery {
    fn from(row: RecoveryRow) -> Self {
        Recovery {
            id: row.id,
            scope: RecoveryScope {
                partner_id: row.partner_id,
                notification_type: row.notification_type,
                statuses: row
                    .statuses
                    .iter()
                    .filter_map(|s| DeliveryStatus::parse(s))
                    .collect(),
                since: row.since,
                until: row.until,
            },
            total: row.total,
            resent: row.resent,
            state: if row.state == "done" {
                RecoveryState::Done
            } else {
                RecoveryState::Running
            },
            created_at: row.created_at,
            finished_at: row.finished_at,
        }
    }
}

const COLUMNS: &str = "id, partner_id, notification_type, statuses, since, until, total, resent, \
                       state, created_at, finished_at";

fn statuses(scope: &RecoveryScope) -> Vec<&'static str> {
    scope.statuses.iter().map(DeliveryStatus::as_str).collect()
}

/// How many deliveries `scope` matches now, and the publish times of the
/// first and the last.
pub(crate) async fn plan(
    conn: &mut AsyncPgConnection,
    scope: &RecoveryScope,
) -> Result<RecoveryPlan, DispatchError> {
    let row: PlanRow = diesel::sql_query(format!(
        "SELECT count(*) AS total, min(e.created_at) AS earliest, max(e.created_at) AS latest \
         {MATCHING}"
    ))
    .bind::<SqlUuid, _>(scope.partner_id)
    .bind::<Nullable<Int4>, _>(scope.notification_type)
    .bind::<Timestamptz, _>(scope.since)
    .bind::<Timestamptz, _>(scope.until)
    .bind::<Array<Text>, _>(statuses(scope))
    .get_result(conn)
    .await?;
    Ok(RecoveryPlan {
        total: row.total,
        earliest: row.earliest,
        latest: row.latest,
    })
}

/// Makes a job for `scope` and lists the deliveries it matches; done at
/// once when there are none.
pub(crate) async fn create(
    conn: &mut AsyncPgConnection,
    scope: &RecoveryScope,
) -> Result<Recovery, DispatchError> {
    let id = Uuid::now_v7();
    conn.transaction(async |conn| {
        let listed = diesel::sql_query(format!(
            "INSERT INTO recovery_items (recovery_id, delivery_id) SELECT $6, d.id {MATCHING}"
        ))
        .bind::<SqlUuid, _>(scope.partner_id)
        .bind::<Nullable<Int4>, _>(scope.notification_type)
        .bind::<Timestamptz, _>(scope.since)
        .bind::<Timestamptz, _>(scope.until)
        .bind::<Array<Text>, _>(statuses(scope))
        .bind::<SqlUuid, _>(id)
        .execute(conn)
        .await?;
        let total = i64::try_from(listed).unwrap_or(i64::MAX);
        let state = if total == 0 { "done" } else { "running" };
        let row: RecoveryRow = diesel::sql_query(format!(
            "INSERT INTO recoveries (id, partner_id, notification_type, statuses, since, until, \
                                     total, state, finished_at)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, CASE WHEN $8 = 'done' THEN now() END)
             RETURNING {COLUMNS}"
        ))
        .bind::<SqlUuid, _>(id)
        .bind::<SqlUuid, _>(scope.partner_id)
        .bind::<Nullable<Int4>, _>(scope.notification_type)
        .bind::<Array<Text>, _>(statuses(scope))
        .bind::<Timestamptz, _>(scope.since)
        .bind::<Timestamptz, _>(scope.until)
        .bind::<BigInt, _>(total)
        .bind::<Text, _>(state)
        .get_result(conn)
        .await?;
        Ok(row.into())
    })
    .await
}

/// The job; with `partner`, only if it is theirs.
pub(crate) async fn get(
    conn: &mut AsyncPgConnection,
    id: Uuid,
    partner: Option<Uuid>,
) -> Result<Option<Recovery>, DispatchError> {
    let row: Option<RecoveryRow> = diesel::sql_query(format!(
        "SELECT {COLUMNS} FROM recoveries WHERE id = $1 AND ($2::uuid IS NULL OR partner_id = $2)"
    ))
    .bind::<SqlUuid, _>(id)
    .bind::<Nullable<SqlUuid>, _>(partner)
    .get_result(conn)
    .await
    .optional()?;
    Ok(row.map(Into::into))
}

#[derive(QueryableByName)]
struct Advanced {
    #[diesel(sql_type = SqlUuid)]
    id: Uuid,
    #[diesel(sql_type = BigInt)]
    resent: i64,
    #[diesel(sql_type = Bool)]
    done: bool,
}

/// Makes the next `chunk` deliveries of one running job due again, as a
/// new series each, and takes them off its list, in one transaction
/// under the job's row lock (a job another replica holds is skipped).
/// Answers the job and how many it resent; `None` when no job runs.
pub(crate) async fn advance(
    conn: &mut AsyncPgConnection,
    chunk: i64,
) -> Result<Option<(Uuid, i64, bool)>, DispatchError> {
    conn.transaction(async |conn| {
        let advanced: Option<Advanced> = diesel::sql_query(ADVANCE)
            .bind::<BigInt, _>(chunk)
            .get_result(conn)
            .await
            .optional()?;
        let Some(advanced) = advanced else {
            return Ok(None);
        };
        if advanced.resent > 0 {
            super::notify_due(conn).await?;
        }
        Ok(Some((advanced.id, advanced.resent, advanced.done)))
    })
    .await
}

/// One chunk of the oldest running job no other replica holds: the next
/// deliveries of its list, taken off it, and made pending and due now
/// where they are still failed (or cancelled); done when the list runs out.
const ADVANCE: &str = "WITH job AS (
       SELECT id, statuses FROM recoveries WHERE state = 'running'
       ORDER BY created_at LIMIT 1 FOR UPDATE SKIP LOCKED
     ), taken AS (
       DELETE FROM recovery_items i USING job
       WHERE i.recovery_id = job.id AND i.delivery_id IN (
         SELECT delivery_id FROM recovery_items, job j
         WHERE recovery_id = j.id ORDER BY delivery_id LIMIT $1)
       RETURNING i.delivery_id
     ), resent AS (
       UPDATE deliveries d
       SET status = 'pending', next_attempt_at = now(), series_attempts = 0, lease_token = NULL,
           completed_at = NULL, updated_at = now()
       FROM taken, job
       WHERE d.id = taken.delivery_id AND d.status = ANY(job.statuses)
         AND NOT EXISTS (SELECT 1 FROM events e WHERE e.id = d.event_id AND e.erased_at IS NOT NULL)
       RETURNING d.id
     )
     UPDATE recoveries r
     SET resent = r.resent + (SELECT count(*) FROM resent),
         state = CASE WHEN (SELECT count(*) FROM taken) < $1 THEN 'done' ELSE 'running' END,
         finished_at = CASE WHEN (SELECT count(*) FROM taken) < $1 THEN now() END
     FROM job
     WHERE r.id = job.id
     RETURNING r.id, (SELECT count(*) FROM resent) AS resent, r.state = 'done' AS done";
