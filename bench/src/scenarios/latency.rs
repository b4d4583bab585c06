//! Scenario 3, latency: publish to receipt under an open loop.

use super::*;

/// Publishes to `partners` at `rate` per second for `window`, on schedule
/// (open loop), noting each delivery's send time.
async fn open_loop(
    stack: &Stack,
    partners: &[String],
    rate: usize,
    window: Duration,
) -> anyhow::Result<Sent> {
    let sent: Arc<Mutex<Sent>> = Arc::default();
    let total = ((rate as f64) * window.as_secs_f64()) as usize;
    let mut ticks = tokio::time::interval(Duration::from_secs_f64(1.0 / rate as f64));
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Burst);
    let mut tasks = tokio::task::JoinSet::new();
    for n in 0..total {
        ticks.tick().await;
        let (sent, mut client, partner) = (
            sent.clone(),
            stack.publisher(),
            partners[n % partners.len()].clone(),
        );
        tasks.spawn(async move {
            let at = Instant::now();
            let published = client.publish(event(&partner, n)).await?.into_inner();
            if let Some(id) = published
                .delivery_id
                .and_then(|id| Uuid::try_parse(&id).ok())
            {
                sent.lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .insert(id, at);
            }
            Ok::<_, anyhow::Error>(())
        });
    }
    while let Some(result) = tasks.join_next().await {
        result??;
    }
    let sent = std::mem::take(&mut *sent.lock().unwrap_or_else(|p| p.into_inner()));
    Ok(sent)
}

/// Runs one open-loop rate and reports publish-to-receipt latency.
async fn latency_at(
    stack: &Stack,
    partners: &[String],
    rate: usize,
    window: Duration,
) -> anyhow::Result<(Percentiles, usize, usize, usize)> {
    let (samples, sent, lost, duplicated) = latency_samples(stack, partners, rate, window).await?;
    Ok((percentiles(samples), sent, lost, duplicated))
}

/// Runs one open-loop rate: each delivery's publish-to-receipt latency,
/// how many were sent, lost and duplicated.
pub(super) async fn latency_samples(
    stack: &Stack,
    partners: &[String],
    rate: usize,
    window: Duration,
) -> anyhow::Result<(Vec<Duration>, usize, usize, usize)> {
    stack.receiver.take();
    let sent = open_loop(stack, partners, rate, window).await?;
    let expected: HashSet<Uuid> = sent.keys().copied().collect();
    stack
        .receiver
        .wait_for_ids(&expected, Duration::from_secs(120))
        .await;
    let arrivals = stack.receiver.take();
    let (samples, lost, duplicated) = latencies(&sent, &arrivals);
    Ok((samples, sent.len(), lost, duplicated))
}

/// 3. Publish-to-receipt latency at steady rates.
pub async fn latency(scale: Scale) -> anyhow::Result<Report> {
    let mut stack = Stack::start().await?;
    let worker = stack.add_dispatcher(DispatcherSettings::default()).await?;
    let partners = stack.partners(100, "/p").await?;
    let window = scale.duration(Duration::from_secs(10));
    stack.warm(&partners, scale.count(WARM_UP)).await?;
    let mut report = Report::new(
        "3. latency: publish to receipt, open loop",
        &[
            "rate/s",
            "events",
            "p50 ms",
            "p90 ms",
            "p99 ms",
            "max ms",
            "lost",
            "duplicated",
            "dispatcher CPU s/1k",
            "Postgres CPU s/1k",
        ],
    );
    for rate in [100, 1_000, 5_000] {
        let cpu = Cpu::start(vec![stack.dispatcher_pid(worker)]);
        let (p, events, lost, duplicated) = latency_at(&stack, &partners, rate, window).await?;
        let (d, pg) = cpu.per_thousand(events);
        report.rows.push(vec![
            rate.to_string(),
            events.to_string(),
            ms(p.p50),
            ms(p.p90),
            ms(p.p99),
            ms(p.max),
            lost.to_string(),
            duplicated.to_string(),
            d,
            pg,
        ]);
    }
    report.notes.push(format!(
        "Each rate runs for {window:?}, after {} warm-up deliveries, VACUUM ANALYZE and a CHECKPOINT (so no checkpoint's flush falls in the window). CPU is that of the publishing too (the same dispatcher stores and delivers).",
        scale.count(WARM_UP),
    ));
    report.notes.push(stack.peak_rss().note());
    Ok(report)
}
