//! Scenario 5, backlog: claims and deliveries with a small and a large
//! backlog waiting.

use super::*;

/// The dispatcher's claim statement (`storage::queue::CLAIM`) of 128 with
/// the current backlog, from the cursor; run and rolled back, `rounds`
/// times: how long each took. The tables are analysed first, and the
/// session set up as the dispatcher's claim connection, so it plans as the
/// dispatcher's does.
pub(super) async fn claim_cost(stack: &Stack, rounds: usize) -> anyhow::Result<Percentiles> {
    use dispatcher_service::storage::queue::{CLAIM, Role};
    use tokio_postgres::types::Type;
    let client = stack.dispatch_db.client().await?;
    client
        .batch_execute(&Role::Claims.session(std::time::Duration::from_secs(30)))
        .await?;
    // Typed as the dispatcher binds them.
    let claim = client
        .prepare_typed(CLAIM, &[Type::INT4, Type::INT4, Type::UUID])
        .await?;
    let mut took = Vec::with_capacity(rounds);
    for _ in 0..rounds {
        client.batch_execute("BEGIN").await?;
        let started = Instant::now();
        client
            .query(&claim, &[&128_i32, &60_000_i32, &Uuid::new_v4()])
            .await?;
        took.push(started.elapsed());
        client.batch_execute("ROLLBACK").await?;
    }
    Ok(percentiles(took))
}

/// How many times scenario 5 times a claim.
const CLAIM_ROUNDS: usize = 20;

/// 5. Claim cost and delivery rate with a small and a huge backlog.
pub async fn backlog(scale: Scale) -> anyhow::Result<Report> {
    let mut report = Report::new(
        "5. backlog: claims and deliveries with 10,000 versus 1,000,000 waiting",
        &[
            "waiting",
            "filled in s",
            "claim of 128 p50 ms",
            "claim of 128 max ms",
            "delivered (measured)",
            "deliveries/s",
            "dispatcher CPU s/1k",
            "Postgres CPU s/1k",
            "delivered (all)",
            "lost",
            "duplicated",
        ],
    );
    let mut peak_rss = PeakRss::default();
    // The small backlog twice before and twice after the large one: the
    // VM's speed drifts over the minutes between, and a small backlog's
    // window is a quarter of a second, over which single runs minutes apart
    // differed by half. The large one is read over a window ten times as
    // long, while nine tenths of it still wait, against the small runs'
    // median. Neither window takes in a backlog's last thousand: as it
    // empties, claims come back short and the rate falls.
    let (small, large) = (scale.count(10_000), scale.count(1_000_000));
    let mut rates = Vec::new();
    for waiting in [small, small, large, small, small] {
        let (mut stack, partners) = publishing_stack().await?;
        let (published, fill) = prefill(&stack, &partners, waiting, 1000, 4).await?;
        // Both backlogs start settled: the maintenance that a burst of a
        // million inserts sets off (autovacuum, a checkpoint) is done
        // before, not during, the half second measured.
        stack.settle().await?;
        let claim = claim_cost(&stack, CLAIM_ROUNDS).await?;
        // The dispatcher starts with the phase: its first deliveries also
        // pay for its connections and its memory's first growth, which
        // weigh on a window of less than a second, so they are left out.
        let window_end = if waiting == large {
            scale.count(100_000)
        } else {
            scale.count(9_000)
        };
        let (skipped, until) = (scale.count(1_000), waiting.min(window_end));
        let measured = until - skipped;
        let worker = stack.add_dispatcher(DispatcherSettings::default()).await?;
        let limit = Duration::from_secs(600);
        anyhow::ensure!(
            stack.receiver.wait_for(skipped, limit).await,
            "the first {skipped} of {waiting} waiting did not arrive within 10 minutes"
        );
        let cpu = Cpu::start(vec![stack.dispatcher_pid(worker)]);
        let started = Instant::now();
        anyhow::ensure!(
            stack.receiver.wait_for(until, limit).await,
            "the first {until} of {waiting} waiting did not arrive within 10 minutes"
        );
        let elapsed = started.elapsed();
        let (d, pg) = cpu.per_thousand(measured);
        rates.push(measured as f64 / elapsed.as_secs_f64());
        // Then the rest of the backlog, to count every delivery.
        let all = stack
            .receiver
            .wait_for(waiting, Duration::from_secs(900))
            .await;
        let (_, lost, duplicated) = latencies(&published, &stack.receiver.take());
        report.rows.push(vec![
            waiting.to_string(),
            format!("{:.1}", fill.as_secs_f64()),
            ms(claim.p50),
            ms(claim.max),
            measured.to_string(),
            format!("{:.0}", rates[rates.len() - 1]),
            d,
            pg,
            (published.len() - lost).to_string(),
            lost.to_string(),
            duplicated.to_string(),
        ]);
        peak_rss = peak_rss.max(stack.peak_rss());
        anyhow::ensure!(
            all,
            "{lost} of {waiting} waiting did not arrive within 15 minutes"
        );
    }
    report.notes.push(format!(
        "The claim is timed {CLAIM_ROUNDS} times. The rate and its CPU are measured over deliveries {} to {} of each small backlog and {} to {} of the large one (the dispatcher starts with the phase, and its first deliveries also pay for its start), after `VACUUM (ANALYZE)` and a `CHECKPOINT`; lost and duplicated count the whole backlog.",
        scale.count(1_000) + 1,
        scale.count(9_000),
        scale.count(1_000) + 1,
        scale.count(100_000)
    ));
    let mut small_rates = [rates[0], rates[1], rates[3], rates[4]];
    small_rates.sort_by(f64::total_cmp);
    let median = (small_rates[1] + small_rates[2]) / 2.0;
    report.notes.push(format!(
        "With {large} waiting, the rate is {:.0} % of the median of the four runs with {small}.",
        100.0 * rates[2] / median
    ));
    report.notes.push(peak_rss.note());
    Ok(report)
}
