//! How long a registration's failing deliveries are retried: a named
//! policy, or a bounded schedule of the partner's own.
//!
//! The registry owns the names and resolves each to its waits; the
//! dispatcher applies the waits it is given, its jitter and its cap on
//! `Retry-After`. `default` resolves to no waits of its own: the
//! dispatcher's configured schedule (about two days), so that an operator
//! who changes it changes it for every registration that did not choose.

use super::FieldViolation;

/// The most waits a custom schedule may have (one attempt more is made).
pub const MAX_WAITS: usize = 20;
/// The longest one wait may be; with [`MAX_WAITS`], a custom schedule
/// retries for 20 days at the most. Both bounds are per field, so that the
/// OpenAPI document can state them whole.
pub const MAX_WAIT_SECS: u32 = 86_400;

/// `short`: about an hour and three quarters, for events that are worth
/// little once late.
const SHORT: &[u32] = &[5, 30, 120, 600, 1_800, 3_600];
/// `long`: about a week, for partners with long maintenance windows.
const LONG: &[u32] = &[
    5, 30, 120, 600, 1_800, 3_600, 10_800, 21_600, 43_200, 86_400, 86_400, 86_400, 86_400, 86_400,
    86_400,
];

/// A registration's retry policy.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum RetryPolicy {
    /// The dispatcher's configured schedule.
    #[default]
    Default,
    Short,
    Long,
    /// The partner's waits, in seconds, checked against the bounds above.
    Custom(Vec<u32>),
}

impl RetryPolicy {
    /// The names a caller may choose, as the error message lists them.
    pub const NAMES: &str = "default, short, long or custom";

    /// Parses a policy from its name and, for `custom` only, its waits.
    /// Every problem is reported against `field` (`….name` or
    /// `….schedule_seconds`).
    pub fn parse(name: &str, schedule: &[u32]) -> Result<Self, FieldViolation> {
        let named = |policy| {
            if schedule.is_empty() {
                Ok(policy)
            } else {
                Err(FieldViolation::new(
                    "retry_policy.schedule_seconds",
                    "is only for the custom policy",
                ))
            }
        };
        match name {
            "" | "default" => named(Self::Default),
            "short" => named(Self::Short),
            "long" => named(Self::Long),
            "custom" => custom(schedule).map(Self::Custom),
            _ => Err(FieldViolation::new(
                "retry_policy.name",
                format!("must be {}", Self::NAMES),
            )),
        }
    }

    /// A policy as stored: its name and, for `custom`, its waits. A stored
    /// value that is not one of these (never written) reads as the default.
    pub fn from_stored(name: &str, schedule: Option<&[i32]>) -> Self {
        match (name, schedule) {
            ("short", _) => Self::Short,
            ("long", _) => Self::Long,
            ("custom", Some(waits)) => Self::Custom(
                waits
                    .iter()
                    .map(|w| u32::try_from(*w).unwrap_or_default())
                    .collect(),
            ),
            _ => Self::Default,
        }
    }

    pub fn name(&self) -> &'static str {
        match self {
            Self::Default => "default",
            Self::Short => "short",
            Self::Long => "long",
            Self::Custom(_) => "custom",
        }
    }

    /// The waits the dispatcher applies, in seconds; none for the default
    /// (the dispatcher's own schedule).
    pub fn waits(&self) -> &[u32] {
        match self {
            Self::Default => &[],
            Self::Short => SHORT,
            Self::Long => LONG,
            Self::Custom(waits) => waits,
        }
    }

    /// The waits as stored: only a custom policy stores its own.
    pub fn stored_waits(&self) -> Option<Vec<i32>> {
        match self {
            Self::Custom(waits) => Some(
                waits
                    .iter()
                    .map(|w| i32::try_from(*w).unwrap_or(i32::MAX))
                    .collect(),
            ),
            _ => None,
        }
    }
}

fn custom(schedule: &[u32]) -> Result<Vec<u32>, FieldViolation> {
    let invalid = |rule: String| FieldViolation::new("retry_policy.schedule_seconds", rule);
    if schedule.is_empty() || schedule.len() > MAX_WAITS {
        return Err(invalid(format!(
            "must list 1 to {MAX_WAITS} waits for the custom policy"
        )));
    }
    if schedule.iter().any(|w| !(1..=MAX_WAIT_SECS).contains(w)) {
        return Err(invalid(format!(
            "each wait must be 1 to {MAX_WAIT_SECS} seconds"
        )));
    }
    Ok(schedule.to_vec())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_parse_and_name_themselves() {
        for (name, policy) in [
            ("", RetryPolicy::Default),
            ("default", RetryPolicy::Default),
            ("short", RetryPolicy::Short),
            ("long", RetryPolicy::Long),
        ] {
            let parsed = RetryPolicy::parse(name, &[]).unwrap();
            assert_eq!(parsed, policy);
            let stored = RetryPolicy::from_stored(parsed.name(), parsed.stored_waits().as_deref());
            assert_eq!(stored, policy);
        }
        let longest = RetryPolicy::parse("custom", &[MAX_WAIT_SECS; MAX_WAITS]).unwrap();
        assert_eq!(longest.waits().len(), MAX_WAITS);
        let custom = RetryPolicy::parse("custom", &[1, 60, 3600]).unwrap();
        assert_eq!(custom.waits(), &[1, 60, 3600]);
        let stored = RetryPolicy::from_stored("custom", custom.stored_waits().as_deref());
        assert_eq!(stored, custom);
    }

    #[test]
    fn the_named_schedules_keep_their_promises() {
        let total = |p: RetryPolicy| p.waits().iter().map(|w| u64::from(*w)).sum::<u64>();
        assert!((5_000..8_000).contains(&total(RetryPolicy::Short)));
        let long = total(RetryPolicy::Long);
        assert!((6 * 86_400..=7 * 86_400).contains(&long), "{long}");
        assert!(RetryPolicy::Default.waits().is_empty());
    }

    #[test]
    fn bad_policies_name_their_field() {
        for (name, schedule, field) in [
            ("weekly", &[][..], "retry_policy.name"),
            ("Short", &[], "retry_policy.name"),
            ("short", &[5], "retry_policy.schedule_seconds"),
            ("custom", &[], "retry_policy.schedule_seconds"),
            ("custom", &[0], "retry_policy.schedule_seconds"),
            ("custom", &[86_401], "retry_policy.schedule_seconds"),
            ("custom", &[1; 21], "retry_policy.schedule_seconds"),
        ] {
            let error = RetryPolicy::parse(name, schedule).unwrap_err();
            assert_eq!(error.field, field, "{name} {schedule:?}");
        }
    }
}
