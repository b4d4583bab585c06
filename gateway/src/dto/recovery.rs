//! The JSON of a recovery (what a partner asks for, and the dry run's or
//! the job's answer) and of an erasure: a partner's own bulk operations
//! on its deliveries.

use callbacks_proto::dispatcher::v1 as pb;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::maybe_time;

/// What an erasure did.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub(crate) struct Erasure {
    /// Payloads this call removed.
    pub erased_events: i64,
    /// Pending deliveries it cancelled.
    pub cancelled_deliveries: i64,
}

impl From<pb::Erasure> for Erasure {
    fn from(e: pb::Erasure) -> Self {
        Self {
            erased_events: e.erased_events,
            cancelled_deliveries: e.cancelled_deliveries,
        }
    }
}

/// `POST /v1/callbacks/recoveries/{partnerUniqueID}`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
#[schema(example = json!({
    "notificationType": 5,
    "since": "2026-12-01T00:00:00Z",
    "until": "2026-12-02T00:00:00Z",
    "dryRun": true
}))]
pub(crate) struct RecoverBody {
    /// One notification type only; every type when left out.
    #[serde(default)]
    #[schema(minimum = 1, maximum = 2147483647)]
    pub notification_type: Option<i32>,
    /// Events published at or after this moment…
    pub since: DateTime<Utc>,
    /// …and before this one: later than `since`, at most 90 days after it.
    pub until: DateTime<Utc>,
    /// Cancelled deliveries too, not only failed ones.
    #[serde(default)]
    pub include_cancelled: bool,
    /// Only say what would be sent.
    #[serde(default)]
    pub dry_run: bool,
}

/// A recovery: the dry run's answer, or the job and how far it is.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub(crate) struct RecoveryView {
    /// Left out for a dry run.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(format = Uuid)]
    pub recovery_id: Option<String>,
    /// Where the job's progress is read; left out for a dry run.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub status_url: Option<String>,
    pub dry_run: bool,
    /// `planned` (a dry run), `running` or `done`.
    pub state: String,
    pub notification_type: Option<i32>,
    pub since: Option<DateTime<Utc>>,
    pub until: Option<DateTime<Utc>>,
    pub include_cancelled: bool,
    /// Deliveries the recovery covers (a dry run: would cover).
    pub total: i64,
    /// Publish times of the first and the last of them (dry run only).
    pub earliest: Option<DateTime<Utc>>,
    pub latest: Option<DateTime<Utc>>,
    /// Sent again so far; one no longer failed or cancelled when its turn
    /// comes is left alone.
    pub resent: i64,
    pub created_at: Option<DateTime<Utc>>,
    pub finished_at: Option<DateTime<Utc>>,
}

impl From<pb::Recovery> for RecoveryView {
    fn from(r: pb::Recovery) -> Self {
        Self {
            status_url: r
                .recovery_id
                .as_ref()
                .map(|id| format!("/v1/callbacks/recoveries/{}/{id}", r.partner_id)),
            recovery_id: r.recovery_id,
            dry_run: r.dry_run,
            state: r.state,
            notification_type: r.notification_type,
            since: maybe_time(r.since),
            until: maybe_time(r.until),
            include_cancelled: r.include_cancelled,
            total: r.total,
            earliest: maybe_time(r.earliest),
            latest: maybe_time(r.latest),
            resent: r.resent,
            created_at: maybe_time(r.created_at),
            finished_at: maybe_time(r.finished_at),
        }
    }
}
