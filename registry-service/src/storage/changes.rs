//! The change log (`registry_changes`, numbered by the one-row
//! `registry_version`): what other services' caches must forget, in the
//! order it committed.
//!
//! A change takes the next version in its writer's transaction. The
//! counter row is locked until that transaction ends, so versions commit
//! in order: a reader that saw version v has seen every change up to v.
//! Changes are kept for [`RETENTION`]; a reader further behind is told to
//! forget everything.

use diesel::prelude::*;
use diesel::sql_types::{Integer, Nullable, Text, Uuid as SqlUuid};
use diesel_async::{AsyncConnection as _, AsyncPgConnection, RunQueryDsl};
use uuid::Uuid;

use super::schema::{registry_changes, registry_version};
use crate::domain::{ApiKeyId, Change, ChangesSince, NotificationTypeId, PartnerId, RegistryError};

/// How long a change is kept: far longer than any reader goes between
/// syncs while it is up.
const RETENTION: &str = "1 hour";

#[derive(Queryable)]
struct Row {
    version: i64,
    kind: String,
    partner_id: Option<Uuid>,
    notification_type: Option<i32>,
    api_key_id: Option<Uuid>,
}

/// Records `change` under the next version, in the caller's transaction,
/// and forgets changes older than [`RETENTION`].
pub(crate) async fn record(
    conn: &mut AsyncPgConnection,
    change: Change,
) -> Result<(), RegistryError> {
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
/// some no longer kept, answers an incomplete list). Its queries are
/// diesel's own, prepared once per connection: every dispatcher and
/// gateway asks this as often as its last answer comes back.
pub(crate) async fn since(
    conn: &mut AsyncPgConnection,
    after: u64,
    limit: usize,
) -> Result<ChangesSince, RegistryError> {
    let after = i64::try_from(after).unwrap_or(i64::MAX);
    // Read first: a change that commits after this read has a later
    // version, and is left for the next call.
    let head: i64 = registry_version::table
        .select(registry_version::version)
        .first(conn)
        .await?;
    let version = u64::try_from(head).unwrap_or_default();
    if after >= head {
        return Ok(ChangesSince {
            version,
            changes: Vec::new(),
            complete: true,
        });
    }
    let oldest: Option<i64> = registry_changes::table
        .select(diesel::dsl::min(registry_changes::version))
        .first(conn)
        .await?;
    let kept = oldest.is_some_and(|oldest| after + 1 >= oldest);
    let rows: Vec<Row> = if kept {
        registry_changes::table
            .filter(registry_changes::version.gt(after))
            .filter(registry_changes::version.le(head))
            .order(registry_changes::version)
            .limit(i64::try_from(limit).unwrap_or(i64::MAX).saturating_add(1))
            .select((
                registry_changes::version,
                registry_changes::kind,
                registry_changes::partner_id,
                registry_changes::notification_type,
                registry_changes::api_key_id,
            ))
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

/// A connection of its own for [`since`]: asked as often as it is, a
/// pool's check-out (which pings the server first) would double its
/// exchanges with the server. Calls take turns on it; a failed call gives the connection up,
/// and the next one connects afresh.
pub(crate) struct ChangeReader {
    database_url: String,
    connection: tokio::sync::Mutex<Option<AsyncPgConnection>>,
}

impl std::fmt::Debug for ChangeReader {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ChangeReader").finish_non_exhaustive()
    }
}

impl ChangeReader {
    pub(crate) fn new(database_url: &str) -> Self {
        Self {
            database_url: database_url.to_owned(),
            connection: tokio::sync::Mutex::new(None),
        }
    }

    pub(crate) async fn since(
        &self,
        after: u64,
        limit: usize,
    ) -> Result<ChangesSince, RegistryError> {
        let mut connection = self.connection.lock().await;
        let conn = match connection.as_mut() {
            Some(conn) => conn,
            None => connection.insert(
                AsyncPgConnection::establish(&self.database_url)
                    .await
                    .map_err(RegistryError::internal)?,
            ),
        };
        let answer = since(conn, after, limit).await;
        if answer.is_err() {
            *connection = None;
        }
        answer
    }
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
