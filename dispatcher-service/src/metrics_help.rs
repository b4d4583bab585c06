//! The help text of every metric the dispatcher exports, registered once
//! at start so that each scrape says what its series mean (`promtool check
//! metrics` refuses metrics without it). The series themselves are made
//! where they are counted.

/// The counters, by name, with their help text.
const COUNTERS: &[(&str, &str)] = &[
    (
        "callbacks_events_published_total",
        "Events accepted, by outcome",
    ),
    (
        "callbacks_events_refused_total",
        "Publish calls refused, by reason",
    ),
    (
        "callbacks_test_notifications_total",
        "Test notifications (echoes) accepted",
    ),
    (
        "callbacks_delivery_attempts_total",
        "Webhook attempts, by outcome",
    ),
    (
        "callbacks_delivery_failures_total",
        "Failed webhook attempts, by kind",
    ),
    (
        "callbacks_deliveries_finished_total",
        "Deliveries that ended, by status",
    ),
    (
        "callbacks_outcomes_not_written_total",
        "Attempt outcomes this process did not write, by reason",
    ),
    (
        "callbacks_deliveries_deferred_total",
        "Deliveries put back unattempted, by reason",
    ),
    (
        "callbacks_idempotency_keys_expired_total",
        "Idempotency keys forgotten once their window passed",
    ),
    (
        "callbacks_retention_removed_total",
        "Rows removed once the retention period passed, by table",
    ),
    (
        "callbacks_health_events_relayed_total",
        "Registry health events stored as notifications by this replica",
    ),
    (
        "callbacks_recovered_deliveries_total",
        "Deliveries a recovery job made due again",
    ),
    (
        "callbacks_endpoint_holds_total",
        "Endpoints held, by reason",
    ),
    (
        "callbacks_endpoint_limit_changes_dropped_total",
        "Endpoint limit changes not shared with the other replicas (too many waiting)",
    ),
];

/// Registers the descriptions.
pub(crate) fn describe() {
    for (name, help) in COUNTERS {
        metrics::describe_counter!(*name, *help);
    }
    metrics::describe_gauge!(
        "callbacks_deliveries_in_flight",
        "Webhook attempts running now in this process"
    );
    metrics::describe_gauge!(
        "callbacks_queue_pending",
        "Deliveries pending, due or scheduled, all replicas (at scrape)"
    );
    metrics::describe_gauge!(
        "callbacks_queue_oldest_due_seconds",
        "How long the oldest due delivery has waited (at scrape)"
    );
    metrics::describe_gauge!(
        "callbacks_endpoints_limited",
        "Endpoints held or allowed fewer attempts at once, all replicas, by reason"
    );
    metrics::describe_gauge!(
        "callbacks_dispatcher_replicas",
        "Dispatcher replicas alive, as this one last saw them"
    );
    metrics::describe_histogram!(
        "callbacks_delivery_attempt_duration_seconds",
        "Webhook attempt latency, connect to last byte read"
    );
}
