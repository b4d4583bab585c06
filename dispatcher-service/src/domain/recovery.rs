//! Recovery in bulk: what a partner or operator asks to send again, what
//! a dry run answers, and the job that sends it.

use chrono::{DateTime, Utc};
use uuid::Uuid;

use super::DeliveryStatus;

/// The longest time range one recovery may cover.
pub const MAX_RANGE_DAYS: i64 = 90;

/// Which deliveries a recovery sends again: a partner's failed ones (and,
/// if asked, cancelled ones) whose events were published in
/// `[since, until)`, of one type or of all.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RecoveryScope {
    pub partner_id: Uuid,
    pub notification_type: Option<i32>,
    pub statuses: Vec<DeliveryStatus>,
    pub since: DateTime<Utc>,
    pub until: DateTime<Utc>,
}

impl RecoveryScope {
    /// The statuses a recovery takes: failed, and cancelled when asked.
    pub fn statuses(include_cancelled: bool) -> Vec<DeliveryStatus> {
        let mut statuses = vec![DeliveryStatus::Failed];
        if include_cancelled {
            statuses.push(DeliveryStatus::Cancelled);
        }
        statuses
    }

    /// Checks the range: `since` before `until`, at most
    /// [`MAX_RANGE_DAYS`] apart. Violations name `since` and `until`.
    pub fn check_range(
        since: DateTime<Utc>,
        until: DateTime<Utc>,
    ) -> Result<(), super::error::FieldViolation> {
        use super::error::FieldViolation;
        if until <= since {
            return Err(FieldViolation::new(
                "until",
                "must be later than since: the range is empty",
            ));
        }
        if until - since > chrono::Duration::days(MAX_RANGE_DAYS) {
            return Err(FieldViolation::new(
                "until",
                format!("must be at most {MAX_RANGE_DAYS} days after since"),
            ));
        }
        Ok(())
    }
}

/// What a dry run answers: how many deliveries a recovery would send, and
/// the publish times of the first and the last.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RecoveryPlan {
    pub total: i64,
    pub earliest: Option<DateTime<Utc>>,
    pub latest: Option<DateTime<Utc>>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RecoveryState {
    Running,
    Done,
}

impl RecoveryState {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Running => "running",
            Self::Done => "done",
        }
    }
}

/// A recovery job and how far it is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Recovery {
    pub id: Uuid,
    pub scope: RecoveryScope,
    /// Deliveries that matched when the job was made.
    pub total: i64,
    /// Deliveries made due again so far.
    pub resent: i64,
    pub state: RecoveryState,
    pub created_at: DateTime<Utc>,
    pub finished_at: Option<DateTime<Utc>>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_range_must_be_forward_and_bounded() {
        let at = |days| DateTime::from_timestamp(1_800_000_000 + days * 86_400, 0).unwrap();
        assert!(RecoveryScope::check_range(at(0), at(1)).is_ok());
        assert!(RecoveryScope::check_range(at(0), at(MAX_RANGE_DAYS)).is_ok());
        for (since, until) in [(0, 0), (1, 0), (0, MAX_RANGE_DAYS + 1)] {
            let refused = RecoveryScope::check_range(at(since), at(until)).unwrap_err();
            assert_eq!(refused.field, "until");
        }
        assert_eq!(
            RecoveryScope::statuses(true),
            [DeliveryStatus::Failed, DeliveryStatus::Cancelled]
        );
    }
}
