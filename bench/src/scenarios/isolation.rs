//! Scenario 4, isolation: healthy endpoints alone, beside more that
//! answer, beside some that throttle, some that fail, and some that hang.

use super::latency::latency_samples;
use super::*;

/// Scenario 4: healthy endpoints' latency with and without endpoints that
/// throttle, fail or hang.
///
/// A p99 of a few milliseconds from one 10-second window moves with the
/// VM's stalls: single runs of one build gave ratios from 0.6 to 2.1
/// (docs/benchmarks.md, "Comparing two builds"). So the scenario runs
/// `ISOLATION_RUNS` times, each on a fresh stack, and reads the p99 of
/// the runs' latencies together. Within a run the phases keep their order
/// (none, the control, the throttling, the failing, the hanging last): a
/// phase after the throttling and the failing endpoints also carries what
/// they leave behind (their held deliveries, retried as their holds end),
/// and no phase measures what the hanging ones leave.
pub async fn isolation(scale: Scale) -> anyhow::Result<Report> {
    let mut report = Report::new(
        "4. isolation: 100 healthy endpoints at 1,000 events/s, alone, beside 10 more that answer, 10 that throttle, 10 that fail and 10 that hang",
        &[
            "beside the 100 healthy",
            "healthy events",
            "p50 ms",
            "p99 ms",
            "max ms",
            "lost",
            "duplicated",
            "dispatcher CPU s/1k",
            "Postgres CPU s/1k",
            "p99 ms of each run",
        ],
    );
    let mut phases: [Phase; 5] = Default::default();
    let mut peak_rss = PeakRss::default();
    for _ in 0..ISOLATION_RUNS {
        peak_rss = peak_rss.max(isolation_run(scale, &mut phases).await?);
    }
    let p99: Vec<Duration> = phases
        .iter_mut()
        .zip(ISOLATION_PHASES)
        .map(|(phase, label)| {
            let runs: Vec<String> = phase.p99s.iter().map(|p| ms(*p)).collect();
            let all = percentiles(std::mem::take(&mut phase.samples));
            report.rows.push(vec![
                label.into(),
                phase.events.to_string(),
                ms(all.p50),
                ms(all.p99),
                ms(all.max),
                phase.lost.to_string(),
                phase.duplicated.to_string(),
                per_thousand(phase.dispatcher_cpu / phase.events.max(1) as f64),
                per_thousand(phase.postgres_cpu / phase.events.max(1) as f64),
                runs.join(", "),
            ]);
            all.p99
        })
        .collect();
    let ratio = |a: Duration, b: Duration| a.as_secs_f64() / b.as_secs_f64().max(1e-9);
    report.notes.push(format!(
        "{ISOLATION_RUNS} runs, each on a fresh stack after {} warm-up deliveries, VACUUM ANALYZE and a CHECKPOINT; the percentiles are of all runs' latencies together. Healthy p99 with no extra load / beside the throttling endpoints: {:.2}, beside the failing: {:.2}, beside the hanging: {:.2}; the hanging / beside the control: {:.2}. CPU is per 1,000 healthy events, the side load's work included.",
        scale.count(WARM_UP),
        ratio(p99[2], p99[0]),
        ratio(p99[3], p99[0]),
        ratio(p99[4], p99[0]),
        ratio(p99[4], p99[1]),
    ));
    report.notes.push(peak_rss.note());
    Ok(report)
}

/// Fresh stacks the isolation scenario runs on, its latencies pooled.
const ISOLATION_RUNS: usize = 3;

/// The isolation scenario's phases, in the order each run measures them.
const ISOLATION_PHASES: [&str; 5] = [
    "none",
    "10 more that answer (100 events/s)",
    "10 that answer 429, Retry-After 1 s (100 events/s)",
    "10 that answer 500 (100 events/s)",
    "10 that hang (100 events/s, 5 s timeout)",
];

/// One isolation phase's latencies over the runs so far.
#[derive(Debug, Default)]
struct Phase {
    samples: Vec<Duration>,
    p99s: Vec<Duration>,
    events: usize,
    lost: usize,
    duplicated: usize,
    /// CPU seconds (in all, not per event) of the dispatcher and Postgres.
    dispatcher_cpu: f64,
    postgres_cpu: f64,
}

/// One run of the isolation phases on a fresh stack, adding to `phases`;
/// answers the services' peak RSS.
async fn isolation_run(scale: Scale, phases: &mut [Phase; 5]) -> anyhow::Result<PeakRss> {
    let mut stack = Stack::start().await?;
    let worker = stack
        .add_dispatcher(DispatcherSettings {
            workers: true,
            response_timeout: "5s",
            ..Default::default()
        })
        .await?;
    let healthy = stack.partners(100, "/p").await?;
    let others = stack.partners(10, "/other").await?;
    let throttling = stack.partners(10, "/throttle").await?;
    let failing = stack.partners(10, "/fail").await?;
    let hanging = stack.partners(10, "/hang").await?;
    let window = scale.duration(Duration::from_secs(10));
    let all: Vec<String> = [&healthy[..], &others[..]].concat();
    stack.warm(&all, scale.count(WARM_UP)).await?;

    // 100 events/s more, to nobody, to 10 endpoints that answer (the
    // control: the same load, nothing goes wrong), to 10 that answer 429,
    // to 10 that answer 500, and to 10 that hang until the 5 s timeout.
    let sides = [
        None,
        Some(&others),
        Some(&throttling),
        Some(&failing),
        Some(&hanging),
    ];
    for (phase, side) in phases.iter_mut().zip(sides) {
        let cpu = Cpu::start(vec![stack.dispatcher_pid(worker)]);
        let load = side.map(|side| side_load(&stack, side, 100, window));
        let (samples, events, lost, duplicated) =
            latency_samples(&stack, &healthy, 1_000, window).await?;
        if let Some(load) = load {
            load.await?;
        }
        let used = cpu.used(1);
        phase.dispatcher_cpu += used.processes;
        phase.postgres_cpu += used.postgres;
        phase.p99s.push(percentiles(samples.clone()).p99);
        phase.samples.extend(samples);
        phase.events += events;
        phase.lost += lost;
        phase.duplicated += duplicated;
    }
    Ok(stack.peak_rss())
}

/// Publishes `rate` events/s to `partners` in turn for `window`, one
/// call at a time per tick, in the background.
fn side_load(
    stack: &Stack,
    partners: &[String],
    rate: u32,
    window: Duration,
) -> tokio::task::JoinHandle<()> {
    let publishers: Vec<_> = (0..4).map(|_| stack.publisher()).collect();
    let partners = partners.to_vec();
    let total = (f64::from(rate) * window.as_secs_f64()) as usize;
    tokio::spawn(async move {
        let mut ticks = tokio::time::interval(Duration::from_secs(1) / rate);
        for n in 0..total {
            ticks.tick().await;
            let mut client = publishers[n % publishers.len()].clone();
            let _ = client
                .publish(event(&partners[n % partners.len()], n))
                .await;
        }
    })
}
