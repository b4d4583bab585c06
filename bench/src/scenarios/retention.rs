//! Scenario 9, retention: the tables' size and the claim's cost over
//! several retention periods of steady traffic.

use super::*;

/// The retention period the dispatcher runs with (its minimum).
const PERIOD: Duration = Duration::from_secs(60);

/// Rows and bytes (tables with their indexes and TOAST) of the three tables
/// retention works on.
async fn table_sizes(stack: &Stack) -> anyhow::Result<(i64, i64, f64)> {
    let db = stack.dispatch_db.client().await?;
    let row = db
        .query_one(
            "SELECT (SELECT count(*) FROM events),
                    (SELECT count(*) FROM attempts),
                    (pg_total_relation_size('events') + pg_total_relation_size('deliveries')
                     + pg_total_relation_size('attempts'))::float8 / 1048576",
            &[],
        )
        .await?;
    Ok((row.get(0), row.get(1), row.get(2)))
}

/// Scenario 9: publishes at a steady rate for several retention periods
/// of a minute each; after every window, how many rows and bytes the
/// tables hold, what a claim costs, and the window's delivery latency.
pub async fn retention(scale: Scale) -> anyhow::Result<Report> {
    let mut stack = Stack::start().await?;
    let settings = DispatcherSettings {
        extra_env: vec![("DISPATCHER_RETENTION".into(), "1m".into())],
        ..DispatcherSettings::default()
    };
    stack.add_dispatcher(settings).await?;
    let partners = stack.partners(100, "/p").await?;
    let (rate, window) = (1_000, Duration::from_secs(20));
    let windows = ((PERIOD * 6).as_secs_f64() * scale.0 / window.as_secs_f64()).ceil() as usize;
    let mut report = Report::new(
        "9. retention: tables and claims over six retention periods (1 minute each)",
        &[
            "after s",
            "events",
            "attempts",
            "tables MiB",
            "claim of 128 p50 ms",
            "claim of 128 max ms",
            "delivery p50 ms",
            "delivery p99 ms",
            "lost",
        ],
    );
    let started = Instant::now();
    for _ in 0..windows.max(1) {
        let (samples, _, lost, _) =
            super::latency::latency_samples(&stack, &partners, rate, window).await?;
        let delivered = percentiles(samples);
        let (events, attempts, mib) = table_sizes(&stack).await?;
        let claim = super::backlog::claim_cost(&stack, 20).await?;
        report.rows.push(vec![
            format!("{:.0}", started.elapsed().as_secs_f64()),
            events.to_string(),
            attempts.to_string(),
            format!("{mib:.1}"),
            ms(claim.p50),
            ms(claim.max),
            ms(delivered.p50),
            ms(delivered.p99),
            lost.to_string(),
        ]);
    }
    report.notes.push(format!(
        "{rate} events/s open loop to 100 partners, DISPATCHER_RETENTION=1m (housekeeping every 15 s, 5,000 rows a statement, a VACUUM once removals reach a tenth of the events; no other VACUUM). A row per {window:?} window: the rows level off at about a period and a housekeeping interval of traffic, and the bytes with them."
    ));
    report.notes.push(stack.peak_rss().note());
    Ok(report)
}
