//! How one attempt ended, in a small set of stable kinds (Standard Webhooks
//! etiquette): 2xx is delivered; 410 Gone means the partner wants nothing
//! more; anything else, 3xx included (redirects are never followed), is a
//! failure worth retrying.

use std::time::Duration;

use super::FailureKind;

/// Where a delivery stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DeliveryStatus {
    Pending,
    Delivered,
    Failed,
    /// Nothing to deliver to any more (the registration was deleted, or
    /// answered 410 Gone).
    Cancelled,
}

impl DeliveryStatus {
    pub fn as_str(&self) -> &'static str {
        match self {
            Self::Pending => "pending",
            Self::Delivered => "delivered",
            Self::Failed => "failed",
            Self::Cancelled => "cancelled",
        }
    }

    pub fn parse(text: &str) -> Option<Self> {
        match text {
            "pending" => Some(Self::Pending),
            "delivered" => Some(Self::Delivered),
            "failed" => Some(Self::Failed),
            "cancelled" => Some(Self::Cancelled),
            _ => None,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AttemptResult {
    Delivered {
        status: u16,
    },
    /// The endpoint answered 410 Gone.
    Gone {
        status: u16,
    },
    /// An answer that was not 2xx, or no answer at all.
    Failed {
        status: Option<u16>,
        kind: FailureKind,
        /// Short and stable: `HTTP 500`, `timeout after 15 s`,
        /// `connection refused`, …
        reason: String,
        retry_after: Option<Duration>,
    },
}

impl AttemptResult {
    /// Classifies an HTTP answer.
    pub fn from_status(status: u16, retry_after: Option<Duration>) -> Self {
        match status {
            200..=299 => Self::Delivered { status },
            410 => Self::Gone { status },
            300..=399 => Self::Failed {
                status: Some(status),
                kind: FailureKind::Redirect,
                reason: format!("HTTP {status} (redirects are not followed)"),
                retry_after: None,
            },
            _ => Self::Failed {
                status: Some(status),
                kind: FailureKind::HttpStatus,
                reason: format!("HTTP {status}"),
                retry_after,
            },
        }
    }

    /// A failure without an answer.
    pub fn no_answer(kind: FailureKind, reason: impl Into<String>) -> Self {
        Self::Failed {
            status: None,
            kind,
            reason: reason.into(),
            retry_after: None,
        }
    }

    pub fn status(&self) -> Option<u16> {
        match self {
            Self::Delivered { status } | Self::Gone { status } => Some(*status),
            Self::Failed { status, .. } => *status,
        }
    }

    /// The failure's kind; `None` for a delivery or a 410.
    pub fn failure(&self) -> Option<FailureKind> {
        match self {
            Self::Failed { kind, .. } => Some(*kind),
            _ => None,
        }
    }

    /// What the attempt log and the registry's error state say.
    pub fn reason(&self) -> Option<String> {
        match self {
            Self::Delivered { .. } => None,
            Self::Gone { status } => Some(format!("HTTP {status} Gone")),
            Self::Failed { reason, .. } => Some(reason.clone()),
        }
    }
}

/// `Retry-After` as seconds or an HTTP date, relative to `now`.
pub fn parse_retry_after(value: &str, now: chrono::DateTime<chrono::Utc>) -> Option<Duration> {
    let value = value.trim();
    if let Ok(seconds) = value.parse::<u64>() {
        return Some(Duration::from_secs(seconds));
    }
    let at = chrono::DateTime::parse_from_rfc2822(value).ok()?;
    (at.with_timezone(&chrono::Utc) - now)
        .to_std()
        .ok()
        .or(Some(Duration::ZERO))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statuses_classify() {
        assert_eq!(
            AttemptResult::from_status(204, None),
            AttemptResult::Delivered { status: 204 }
        );
        assert_eq!(
            AttemptResult::from_status(410, None),
            AttemptResult::Gone { status: 410 }
        );
        assert_eq!(
            AttemptResult::from_status(302, Some(Duration::from_secs(9)))
                .reason()
                .unwrap(),
            "HTTP 302 (redirects are not followed)"
        );
        let failed = AttemptResult::from_status(503, Some(Duration::from_secs(9)));
        assert_eq!(failed.reason().unwrap(), "HTTP 503");
        assert_eq!(failed.failure(), Some(FailureKind::HttpStatus));
        assert_eq!(
            AttemptResult::from_status(302, None).failure(),
            Some(FailureKind::Redirect)
        );
        assert_eq!(AttemptResult::from_status(204, None).failure(), None);
        assert_eq!(AttemptResult::from_status(410, None).failure(), None);
        assert!(matches!(
            failed,
            AttemptResult::Failed {
                retry_after: Some(_),
                ..
            }
        ));
        assert_eq!(
            AttemptResult::no_answer(FailureKind::ConnectionRefused, "connection refused").status(),
            None
        );
    }

    #[test]
    fn retry_after_parses_both_forms() {
        let now = chrono::DateTime::parse_from_rfc3339("2026-01-01T00:00:00Z")
            .unwrap()
            .with_timezone(&chrono::Utc);
        assert_eq!(
            parse_retry_after("120", now),
            Some(Duration::from_secs(120))
        );
        assert_eq!(
            parse_retry_after("Thu, 01 Jan 2026 00:01:00 GMT", now),
            Some(Duration::from_secs(60))
        );
        assert_eq!(
            parse_retry_after("Wed, 31 Dec 2025 00:00:00 GMT", now),
            Some(Duration::ZERO)
        );
        assert_eq!(parse_retry_after("soon", now), None);
    }

    #[test]
    fn statuses_round_trip() {
        for s in [
            DeliveryStatus::Pending,
            DeliveryStatus::Delivered,
            DeliveryStatus::Failed,
            DeliveryStatus::Cancelled,
        ] {
            assert_eq!(DeliveryStatus::parse(s.as_str()), Some(s));
        }
    }
}
