//! A callback registration and the error-state rules of the webhook
//! reference (seed `003`):
//!
//! - a failed delivery puts the registration in error state, with the reason
//!   and the moment the failing streak began;
//! - delivery goes on regardless (the flag never stops attempts);
//! - a successful delivery clears the error state;
//! - changing the callback URL resets it to false.
//!
//! The rules are pure functions here; storage applies them inside a
//! transaction that holds the row.

use chrono::{DateTime, Utc};

use super::{NotificationTypeId, PartnerId, RegistrationId, RetryPolicy, SignatureScheme};

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Registration {
    pub id: RegistrationId,
    pub partner_id: PartnerId,
    pub notification_type: NotificationTypeId,
    pub callback_url: String,
    pub callback_user_name: Option<String>,
    pub has_password: bool,
    /// Seed 003's `merchantId`: the partner's own identifier of the
    /// merchant this registration is for.
    pub merchant_id: Option<String>,
    pub retry_policy: RetryPolicy,
    pub signature_scheme: SignatureScheme,
    /// Set while the registration is paused: its deliveries wait.
    pub pause: Option<Pause>,
    pub is_active: bool,
    pub deactivated_at: Option<DateTime<Utc>>,
    pub deactivation_reason: Option<String>,
    pub error_state: ErrorState,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

/// A pause: the registration keeps its events, secret and history, and
/// its deliveries wait until it is resumed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Pause {
    pub since: DateTime<Utc>,
    pub reason: String,
}

/// `isInErrorState`, `errorStateReason`, `detectedErrorStateAt`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ErrorState {
    pub is_in_error_state: bool,
    pub reason: Option<String>,
    pub detected_at: Option<DateTime<Utc>>,
}

/// How one delivery attempt ended, as the dispatcher reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    Succeeded,
    Failed {
        reason: String,
    },
    /// The endpoint answered 410 Gone: the partner wants no more deliveries.
    Gone {
        reason: String,
    },
}

/// A reason is shown to partners and operators; keep it short.
pub const MAX_REASON_LENGTH: usize = 500;

impl ErrorState {
    /// The state after `outcome`, which finished at `at`.
    ///
    /// A failure while already failing keeps the start of the streak and
    /// takes the newest reason. `Gone` is a failure too: the registration is
    /// also deactivated, which is the caller's other half of the rule.
    pub fn after(&self, outcome: &Outcome, at: DateTime<Utc>) -> ErrorState {
        match outcome {
            Outcome::Succeeded => ErrorState::default(),
            Outcome::Failed { reason } | Outcome::Gone { reason } => ErrorState {
                is_in_error_state: true,
                reason: Some(truncate(reason, MAX_REASON_LENGTH)),
                detected_at: if self.is_in_error_state {
                    self.detected_at.or(Some(at))
                } else {
                    Some(at)
                },
            },
        }
    }

    /// Whether a registration in this state at `at` has failed without a
    /// break for `after` or longer.
    pub fn failing_for(&self, at: DateTime<Utc>, after: std::time::Duration) -> bool {
        let Ok(after) = chrono::Duration::from_std(after) else {
            return false;
        };
        self.is_in_error_state && self.detected_at.is_some_and(|since| at - since >= after)
    }

    /// The state after the partner changed the callback URL from `old` to
    /// `new`: reset when it changed, kept when the same URL was sent again.
    pub fn after_url_change(&self, old: &str, new: &str) -> ErrorState {
        if old == new {
            self.clone()
        } else {
            ErrorState::default()
        }
    }
}

fn truncate(s: &str, max_chars: usize) -> String {
    match s.char_indices().nth(max_chars) {
        Some((cut, _)) => s[..cut].to_owned(),
        None => s.to_owned(),
    }
}

/// What an outcome report is checked against: the registration as it
/// stands when the report arrives.
#[derive(Debug, Clone, Copy)]
pub struct Standing<'a> {
    pub is_active: bool,
    pub callback_url: &'a str,
    /// When the latest outcome applied to it occurred.
    pub last_outcome_at: Option<DateTime<Utc>>,
}

impl Standing<'_> {
    /// Whether an attempt on `url` that ended at `occurred_at` no longer
    /// says anything about this registration: it was deactivated, its URL
    /// changed since (the partner's fix must not be marked failing by the
    /// old URL's attempts), or a later attempt's outcome is already applied
    /// (replicas report out of order).
    pub fn makes_stale(&self, url: &str, occurred_at: DateTime<Utc>) -> bool {
        !self.is_active
            || self.callback_url != url
            || self.last_outcome_at.is_some_and(|last| last > occurred_at)
    }
}

/// Which of a partner's registrations the public list call asks for.
#[derive(Debug, Clone)]
pub struct ListFilter {
    pub is_active: Option<bool>,
    pub registration_id: Option<RegistrationId>,
    pub merchant_id: Option<String>,
}

#[cfg(test)]
mod tests {
    use chrono::TimeZone;

    use super::*;

    fn t(secs: i64) -> DateTime<Utc> {
        Utc.timestamp_opt(1_800_000_000 + secs, 0).unwrap()
    }

    fn failed(reason: &str) -> Outcome {
        Outcome::Failed {
            reason: reason.into(),
        }
    }

    #[test]
    fn failure_sets_and_keeps_the_streak_start() {
        let healthy = ErrorState::default();
        let first = healthy.after(&failed("HTTP 500"), t(0));
        assert!(first.is_in_error_state);
        assert_eq!(first.reason.as_deref(), Some("HTTP 500"));
        assert_eq!(first.detected_at, Some(t(0)));

        let second = first.after(&failed("timeout after 15 s"), t(60));
        assert_eq!(second.reason.as_deref(), Some("timeout after 15 s"));
        assert_eq!(second.detected_at, Some(t(0)), "streak start is kept");
    }

    #[test]
    fn success_clears() {
        let failing = ErrorState::default().after(&failed("HTTP 500"), t(0));
        assert_eq!(
            failing.after(&Outcome::Succeeded, t(5)),
            ErrorState::default()
        );
    }

    #[test]
    fn gone_is_a_failure() {
        let gone = ErrorState::default().after(
            &Outcome::Gone {
                reason: "HTTP 410".into(),
            },
            t(1),
        );
        assert!(gone.is_in_error_state);
    }

    #[test]
    fn url_change_resets_but_same_url_keeps() {
        let failing = ErrorState::default().after(&failed("HTTP 500"), t(0));
        assert_eq!(
            failing.after_url_change("https://a.example.com", "https://b.example.com"),
            ErrorState::default()
        );
        assert_eq!(
            failing.after_url_change("https://a.example.com", "https://a.example.com"),
            failing
        );
    }

    #[test]
    fn long_reasons_are_cut() {
        let s = ErrorState::default().after(&failed(&"é".repeat(600)), t(0));
        assert_eq!(s.reason.unwrap().chars().count(), MAX_REASON_LENGTH);
    }

    #[test]
    fn a_report_is_stale_once_deactivated_moved_or_overtaken() {
        let at = |s: i64| DateTime::from_timestamp(1_800_000_000 + s, 0).unwrap();
        let standing = Standing {
            is_active: true,
            callback_url: "https://a.example/cb",
            last_outcome_at: Some(at(10)),
        };
        assert!(!standing.makes_stale("https://a.example/cb", at(10)));
        assert!(!standing.makes_stale("https://a.example/cb", at(11)));
        assert!(
            standing.makes_stale("https://a.example/cb", at(9)),
            "overtaken"
        );
        assert!(
            standing.makes_stale("https://b.example/cb", at(11)),
            "moved"
        );
        let deactivated = Standing {
            is_active: false,
            ..standing
        };
        assert!(deactivated.makes_stale("https://a.example/cb", at(11)));
        let never = Standing {
            last_outcome_at: None,
            ..standing
        };
        assert!(!never.makes_stale("https://a.example/cb", at(0)));
    }
}
