//! `RecoverDeliveries` and `GetRecovery`: parsing the scope of a recovery,
//! and a recovery or its dry run as the wire has it.

use callbacks_proto::dispatcher::v1 as pb;
use service_kit::validation::{CHECKED, FieldViolation, Violations};
use tonic::Status;

use super::convert::{from_timestamp, timestamp};
use super::{guid, positive};
use crate::domain::{Recovery, RecoveryPlan, RecoveryScope, RecoveryState};

/// The scope a request asks for, every field violation reported at once.
pub(super) fn scope(request: &pb::RecoverDeliveriesRequest) -> Result<RecoveryScope, Status> {
    let mut v = Violations::default();
    let partner = v.check(guid("partner_id", &request.partner_id));
    let kind = request
        .notification_type
        .map(|t| v.check(positive("notification_type", t)));
    let mut moment = |field: &'static str, ts: Option<&prost_types::Timestamp>| {
        let parsed = ts.and_then(from_timestamp);
        if parsed.is_none() {
            v.push(FieldViolation::new(
                field,
                "is required and must be a valid timestamp",
            ));
        }
        parsed
    };
    let since = moment("since", request.since.as_ref());
    let until = moment("until", request.until.as_ref());
    if let (Some(since), Some(until)) = (since, until)
        && let Err(violation) = RecoveryScope::check_range(since, until)
    {
        v.push(violation);
    }
    v.finish()?;
    Ok(RecoveryScope {
        partner_id: partner.expect(CHECKED),
        notification_type: kind.map(|k| k.expect(CHECKED)),
        statuses: RecoveryScope::statuses(request.include_cancelled),
        since: since.expect(CHECKED),
        until: until.expect(CHECKED),
    })
}

fn scoped(scope: &RecoveryScope) -> pb::Recovery {
    pb::Recovery {
        partner_id: scope.partner_id.to_string(),
        notification_type: scope.notification_type,
        since: Some(timestamp(scope.since)),
        until: Some(timestamp(scope.until)),
        include_cancelled: scope.statuses.len() > 1,
        ..Default::default()
    }
}

/// A dry run's answer.
pub(super) fn planned(scope: &RecoveryScope, plan: RecoveryPlan) -> pb::Recovery {
    pb::Recovery {
        dry_run: true,
        total: plan.total,
        earliest: plan.earliest.map(timestamp),
        latest: plan.latest.map(timestamp),
        state: "planned".into(),
        ..scoped(scope)
    }
}

impl From<Recovery> for pb::Recovery {
    fn from(r: Recovery) -> Self {
        pb::Recovery {
            recovery_id: Some(r.id.to_string()),
            total: r.total,
            resent: r.resent,
            state: match r.state {
                RecoveryState::Running => "running",
                RecoveryState::Done => "done",
            }
            .into(),
            created_at: Some(timestamp(r.created_at)),
            finished_at: r.finished_at.map(timestamp),
            ..scoped(&r.scope)
        }
    }
}
