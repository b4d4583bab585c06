//! Scenario 1, ingest: durable publishes with the delivery workers off.

use super::*;

/// 1. Durable publishes per second, delivery workers off.
pub async fn ingest(scale: Scale) -> anyhow::Result<Report> {
    let (stack, partners) = publishing_stack().await?;
    let mut report = Report::new(
        "1. ingest: durable publishes (delivery workers off)",
        &[
            "call",
            "concurrency",
            "events/s",
            "call p50 ms",
            "call p99 ms",
            "lost",
            "dispatcher CPU s/1k",
            "Postgres CPU s/1k",
        ],
    );
    let window = scale.duration(Duration::from_secs(5));
    let partners = Arc::new(partners);
    for (batch, concurrency) in [(1, 1), (1, 16), (1, 64), (100, 8)] {
        let stored = stack.stored_events().await?;
        let cpu = Cpu::start(vec![stack.dispatcher_pid(0)]);
        let started = Instant::now();
        let mut tasks = Vec::new();
        for t in 0..concurrency {
            let (partners, mut client) = (partners.clone(), stack.publisher());
            tasks.push(tokio::spawn(async move {
                let mut calls = Vec::new();
                let mut n = t * 1_000_000;
                while started.elapsed() < window {
                    let sent = Instant::now();
                    if batch == 1 {
                        client
                            .publish(event(&partners[n % partners.len()], n))
                            .await?;
                    } else {
                        let events = (n..n + batch)
                            .map(|i| event(&partners[i % partners.len()], i))
                            .collect();
                        client
                            .publish_batch(dpb::PublishBatchRequest { events })
                            .await?;
                    }
                    calls.push(sent.elapsed());
                    n += batch;
                }
                Ok::<_, anyhow::Error>(calls)
            }));
        }
        let mut calls = Vec::new();
        for task in tasks {
            calls.extend(task.await??);
        }
        let elapsed = started.elapsed();
        let events = calls.len() * batch;
        let p: Percentiles = percentiles(calls);
        let (d, pg) = cpu.per_thousand(events);
        // Acknowledged but not in the database: a publish answered before
        // its commit, or a commit lost.
        let stored = usize::try_from(stack.stored_events().await? - stored).unwrap_or(0);
        report.rows.push(vec![
            if batch == 1 {
                "Publish".into()
            } else {
                format!("PublishBatch ({batch})")
            },
            concurrency.to_string(),
            format!("{:.0}", events as f64 / elapsed.as_secs_f64()),
            ms(p.p50),
            ms(p.p99),
            events.saturating_sub(stored).to_string(),
            d,
            pg,
        ]);
    }
    report.notes.push(format!(
        "Each row runs for {window:?}. Lost: events acknowledged but not in the database after the row."
    ));
    report.notes.push(stack.peak_rss().note());
    Ok(report)
}
