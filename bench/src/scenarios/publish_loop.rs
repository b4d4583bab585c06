//! Scenario 7: the end-to-end scenario that webhook platforms (Svix,
//! Hook0, Convoy) are compared on. A closed loop of publishers, each
//! sending one event per `Publish` call and the next as soon as it is
//! answered, while the same dispatcher delivers every event to the bench's
//! receiver.

use std::sync::Arc;
use std::time::{Duration, Instant};

use uuid::Uuid;

use super::{Cpu, Report, Scale, Used, WARM_UP, latencies, per_thousand};
use crate::measure::{ms, percentiles};
use crate::stack::{DispatcherSettings, Sent, Stack, event};

/// Publishers in the loop, each with one call in flight.
pub(super) const PUBLISHERS: usize = 64;

/// How long the loop runs at scale 1 (a tenth of it at the smallest scale).
const WINDOW: Duration = Duration::from_secs(60);

/// How long the deliveries still queued when the loop stops may take.
const DRAIN: Duration = Duration::from_secs(120);

/// What the publishers did: each delivery's id and when its call was sent,
/// and how long each call took.
#[derive(Debug, Default)]
struct Published {
    sent: Sent,
    calls: Vec<Duration>,
}

pub async fn publish_loop(scale: Scale) -> anyhow::Result<Report> {
    let mut stack = Stack::start().await?;
    let worker = stack.add_dispatcher(DispatcherSettings::default()).await?;
    let partners = stack.partners(100, "/p").await?;
    stack.warm(&partners, scale.count(WARM_UP)).await?;
    let window = scale.duration(WINDOW);
    let cpu = Cpu::start(vec![stack.dispatcher_pid(worker)]);
    let started = Instant::now();
    let published = closed_loop(&stack, Arc::new(partners), window).await?;
    let complete = stack.receiver.wait_for(published.sent.len(), DRAIN).await;
    let arrivals = stack.receiver.take();
    // The rate is read to the last arrival: the loop's last events are
    // delivered after it stops, and they count.
    let last = arrivals.iter().map(|(_, at)| *at).max().unwrap_or(started);
    let elapsed = last.saturating_duration_since(started);
    let (samples, lost, duplicated) = latencies(&published.sent, &arrivals);
    let used = cpu.used(samples.len());
    let mut report = Report::new(
        "7. publish-loop: 64 publishers, one Publish per event, closed loop, delivered by the same dispatcher",
        &[
            "publishers",
            "seconds",
            "published",
            "delivered",
            "delivered/s",
            "p50 ms",
            "p99 ms",
            "call p50 ms",
            "call p99 ms",
            "lost",
            "duplicated",
            "dispatcher CPU s/1k",
            "Postgres CPU s/1k",
        ],
    );
    report
        .rows
        .push(row(&published, samples, elapsed, (lost, duplicated), &used));
    report.notes.push(format!(
        "The publishers loop for {window:?}, after {} warm-up deliveries, VACUUM ANALYZE and a CHECKPOINT; seconds run from the first call to the last receipt, and delivered/s is read over them. p50 and p99: publish (the call's send) to receipt; call: the `Publish` call alone. CPU is per delivery and includes the publishing (one dispatcher stores and delivers). Per delivery, the bench process (publishers and receiver) took {:.1} µs, everything else busy on the machine (the kernel, the registry) {:.1} µs, and the machine was idle {:.1} µs.",
        scale.count(WARM_UP),
        used.bench * 1e6,
        used.other * 1e6,
        used.idle * 1e6,
    ));
    report.notes.push(stack.peak_rss().note());
    anyhow::ensure!(
        complete,
        "{lost} of {} published were not delivered within {DRAIN:?}",
        published.sent.len()
    );
    Ok(report)
}

/// The scenario's one row: `samples` are the publish-to-receipt latencies
/// of what was delivered.
fn row(
    published: &Published,
    samples: Vec<Duration>,
    elapsed: Duration,
    (lost, duplicated): (usize, usize),
    used: &Used,
) -> Vec<String> {
    let delivered = samples.len();
    let (e2e, call) = (percentiles(samples), percentiles(published.calls.clone()));
    vec![
        PUBLISHERS.to_string(),
        format!("{:.1}", elapsed.as_secs_f64()),
        published.sent.len().to_string(),
        delivered.to_string(),
        format!("{:.0}", delivered as f64 / elapsed.as_secs_f64().max(1e-9)),
        ms(e2e.p50),
        ms(e2e.p99),
        ms(call.p50),
        ms(call.p99),
        lost.to_string(),
        duplicated.to_string(),
        per_thousand(used.processes),
        per_thousand(used.postgres),
    ]
}

/// Runs [`PUBLISHERS`] publishers for `window`, each publishing one event
/// per call to `partners` in turn, the next as soon as the last is
/// answered.
async fn closed_loop(
    stack: &Stack,
    partners: Arc<Vec<String>>,
    window: Duration,
) -> anyhow::Result<Published> {
    let started = Instant::now();
    let mut tasks = tokio::task::JoinSet::new();
    for publisher in 0..PUBLISHERS {
        let (partners, mut client) = (partners.clone(), stack.publisher());
        tasks.spawn(async move {
            let mut own = Published::default();
            // Each publisher's events have numbers of their own.
            let mut n = publisher * 100_000_000;
            while started.elapsed() < window {
                let at = Instant::now();
                let answer = client
                    .publish(event(&partners[n % partners.len()], n))
                    .await?
                    .into_inner();
                own.calls.push(at.elapsed());
                let id = answer.delivery_id.and_then(|id| Uuid::try_parse(&id).ok());
                anyhow::ensure!(id.is_some(), "Publish scheduled no delivery");
                own.sent.extend(id.map(|id| (id, at)));
                n += 1;
            }
            Ok::<_, anyhow::Error>(own)
        });
    }
    let mut all = Published::default();
    while let Some(own) = tasks.join_next().await {
        let own = own??;
        all.sent.extend(own.sent);
        all.calls.extend(own.calls);
    }
    Ok(all)
}
