//! The change log (`registry_changes`, numbered by the one-row
//! `registry_version`): what other services' caches must forget, in the
//! order it committed.
//!
//! A change takes the next version in its writer's transaction. The
//! counter row is locked until that transaction ends, so versions commit
//! in order: a reader that saw version v has seen every change up to v.
//! Changes are kept for [`RETENTION`]; a reader further behind is told to
//! forget everything.

use diesel::QueryableByName;
use diesel::sql_types::{BigInt, Integer, Nullable, Text, Uuid as SqlUuid};
use diesel_async::{AsyncPgConnection, RunQueryDsl};
use uuid::Uuid;

use crate::domain::{ApiKeyId, Change, ChangesSince, NotificationTypeId, PartnerId, RegistryError};

/// How long a change is kept: far longer than any reader goes between
/// syncs while it is up.
const RETENTION: &str = "1 hour";

#[derive(QueryableByName)]
struct Row {
    #[diesel(sql_type = BigInt)]
    version: i64,
    #[diesel(sql_type = Text)]
    kind: String,
    #[diesel(sql_type = Nullable<SqlUuid>)]
    partner_id: Option<Uuid>,
    #[diesel(sql_type = Nullable<Integer>)]
    notification_type: Option<i32>,
    #[diesel(sql_type = Nullable<SqlUuid>)]
    api_key_id: Option<Uuid>,
}

/// Records `change` under the next version, in the caller's transaction,
/// and forgets changes older than [`RETENTION`].
pub async fn record(conn: &mut AsyncPgConnection, change: Change) -> Result<(), RegistryError> {
    let (kind, partner, notification_type, key) = match change {
        Change::Callback(p, t) => ("callback", Some(p.as_uuid()), Some(t.get()), None),
        Change::Partner(p) => ("partner", Some(p.as_uuid()), None, None),
        Change::ApiKey(p, k) => ("api_key", Some(p.as_uuid()), None, Some(k.as_uuid())),
        Change::Catalogue => ("catalogue", None, None, None),
    };
    diesel::sql_query(
        "WITH next AS (UPDATE registry_version SET version = version + 1 RETURNING version)
         INSERT INTO registry_changes (version, kind, partner_id, notification_type, api_key_id)
         SELECT version, $1, $2, $3, $4 FROM next",
    )
    .bind::<Text, _>(kind)
    .bind::<Nullable<SqlUuid>, _>(partner)
    .bind::<Nullable<Integer>, _>(notification_type)
    .bind::<Nullable<SqlUuid>, _>(key)
    .execute(conn)
    .await?;
    diesel::sql_query(format!(
        "DELETE FROM registry_changes WHERE changed_at < now() - interval '{RETENTION}'"
    ))
    .execute(conn)
    .await?;
    Ok(())
}

/// The changes after version `after`, at most `limit` of them (more, or
/// some no longer kept, answers an incomplete list).
pub async fn since(
    conn: &mut AsyncPgConnection,
    after: u64,
    limit: usize,
) -> Result<ChangesSince, RegistryError> {
    #[derive(QueryableByName)]
    struct Head {
        #[diesel(sql_type = BigInt)]
        version: i64,
        #[diesel(sql_type = Nullable<BigInt>)]
        oldest: Option<i64>,
    }
    let after = i64::try_from(after).unwrap_or(i64::MAX);
    // Read first: a change that commits after this read has a later
    // version, and is left for the next call.
    let head: Head = diesel::sql_query(
        "SELECT v.version, (SELECT min(version) FROM registry_changes) AS oldest
         FROM registry_version v",
    )
    .get_result(conn)
    .await?;
    let version = u64::try_from(head.version).unwrap_or_default();
    if after >= head.version {
        return Ok(ChangesSince {
            version,
            changes: Vec::new(),
            complete: true,
        });
    }
    let kept = head.oldest.is_some_and(|oldest| after + 1 >= oldest);
    let rows: Vec<Row> = if kept {
        diesel::sql_query(
            "SELECT version, kind, partner_id, notification_type, api_key_id
             FROM registry_changes WHERE version > $1 AND version <= $2
             ORDER BY version LIMIT $3",
        )
        .bind::<BigInt, _>(after)
        .bind::<BigInt, _>(head.version)
        .bind::<BigInt, _>(i64::try_from(limit).unwrap_or(i64::MAX).saturating_add(1))
        .load(conn)
        .await?
    } else {
        Vec::new()
    };
    // A row that cannot be read makes the list incomplete: a reader must
    // never miss a change.
    let changes = (kept && rows.len() <= limit)
        .then(|| rows.into_iter().map(to_change).collect::<Option<Vec<_>>>())
        .flatten();
    Ok(ChangesSince {
        version,
        complete: changes.is_some(),
        changes: changes.unwrap_or_default(),
    })
}

fn to_change(row: Row) -> Option<(u64, Change)> {
    let partner = row.partner_id.map(PartnerId::from_uuid);
    let change = match (row.kind.as_str(), partner) {
        ("callback", Some(p)) => {
            Change::Callback(p, NotificationTypeId::from_stored(row.notification_type?))
        }
        ("partner", Some(p)) => Change::Partner(p),
        ("api_key", Some(p)) => Change::ApiKey(p, ApiKeyId::from_uuid(row.api_key_id?)),
        ("catalogue", _) => Change::Catalogue,
        _ => return None,
    };
    Some((u64::try_from(row.version).ok()?, change))
}
