//! The help text of every metric the registry exports, registered once at
//! start so that each scrape says what its series mean (`promtool check
//! metrics` refuses metrics without it).

/// Registers the descriptions.
pub(crate) fn describe() {
    metrics::describe_gauge!(
        "callbacks_registrations_in_error_state",
        "Active registrations whose last attempt failed (at scrape)"
    );
    metrics::describe_counter!(
        "callbacks_registrations_auto_paused_total",
        "Registrations paused for failing longer than REGISTRY_AUTO_PAUSE_AFTER"
    );
    metrics::describe_counter!(
        "callbacks_outcome_reports_total",
        "Outcome reports from dispatchers; applied=false: ignored as stale"
    );
}
