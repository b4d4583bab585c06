//! The scenarios. Each builds its own system, drives it, and answers a
//! markdown table. Every loop is bounded in count and time; all traffic
//! stays on loopback. The first six live here; the later ones have modules
//! of their own.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use callbacks_proto::dispatcher::v1 as dpb;
use http_body_util::Full;
use hyper_util::rt::TokioIo;
use uuid::Uuid;

use crate::measure::{self, Percentiles, ms, percentiles};
use crate::stack::{DispatcherSettings, PeakRss, Sent, Stack, event, prefill};

mod https_hosts;
mod publish_loop;

pub use https_hosts::https_hosts;
pub use publish_loop::publish_loop;

/// Multiplies every count and duration: 1.0 is the full run, small values
/// make a smoke test.
#[derive(Debug, Clone, Copy)]
pub struct Scale(pub f64);

impl Scale {
    pub fn count(&self, full: usize) -> usize {
        ((full as f64 * self.0).round() as usize).max(1)
    }

    pub fn duration(&self, full: Duration) -> Duration {
        full.mul_f64(self.0.clamp(0.1, 1.0))
    }
}

/// A scenario's result: a title, a markdown table, and notes.
#[derive(Debug)]
pub struct Report {
    pub title: String,
    pub header: Vec<&'static str>,
    pub rows: Vec<Vec<String>>,
    pub notes: Vec<String>,
}

impl Report {
    fn new(title: &str, header: &[&'static str]) -> Self {
        Self {
            title: title.to_owned(),
            header: header.to_vec(),
            rows: Vec::new(),
            notes: Vec::new(),
        }
    }

    /// The cells of the column headed `name`, row by row.
    pub fn column(&self, name: &str) -> Vec<&str> {
        let Some(at) = self.header.iter().position(|h| *h == name) else {
            return Vec::new();
        };
        self.rows
            .iter()
            .filter_map(|row| row.get(at).map(String::as_str))
            .collect()
    }

    pub fn markdown(&self) -> String {
        let mut out = format!(
            "### {}\n\n{}",
            self.title,
            markdown_table(&self.header, &self.rows)
        );
        for note in &self.notes {
            out.push_str(&format!("\n{note}\n"));
        }
        out
    }
}

/// A markdown table of `rows` under `header`.
fn markdown_table(header: &[&str], rows: &[Vec<String>]) -> String {
    let mut table = format!(
        "| {} |\n|{}\n",
        header.join(" | "),
        "---|".repeat(header.len())
    );
    for row in rows {
        table.push_str(&format!("| {} |\n", row.join(" | ")));
    }
    table
}

/// CPU seconds over a window: of some processes (together), of Postgres,
/// of this (the bench) process, and of the whole machine.
struct Cpu {
    pids: Vec<u32>,
    processes: f64,
    postgres: HashMap<u32, f64>,
    bench: f64,
    machine: (f64, f64),
}

/// Where the machine's time went per unit of work, in CPU seconds summed
/// over the cores (so the parts add up to the cores times the window,
/// divided by the work).
#[derive(Debug, Clone, Copy)]
struct Used {
    processes: f64,
    postgres: f64,
    /// This process: the receiver, and in the ceiling also its client.
    bench: f64,
    /// Busy, but in none of the above: the kernel's network processing
    /// (softirq), the registry, everything else on the machine.
    other: f64,
    idle: f64,
}

impl Used {
    fn total(&self) -> f64 {
        self.processes + self.postgres + self.bench + self.other + self.idle
    }

    /// A row of the machine-time table, in µs per unit.
    fn row(&self, label: &str) -> Vec<String> {
        let us = |s: f64| format!("{:.1}", s * 1e6);
        vec![
            label.to_owned(),
            us(self.processes),
            us(self.postgres),
            us(self.bench),
            us(self.other),
            us(self.idle),
            us(self.total()),
        ]
    }
}

impl Cpu {
    fn start(pids: Vec<u32>) -> Self {
        Self {
            processes: pids.iter().map(|&pid| measure::cpu_seconds(pid)).sum(),
            pids,
            postgres: measure::postgres_cpu_seconds(),
            bench: measure::cpu_seconds(std::process::id()),
            machine: measure::machine_cpu_seconds(),
        }
    }

    /// CPU seconds per unit of `work` since `start`.
    fn used(&self, work: usize) -> Used {
        let per = |used: f64| used / work.max(1) as f64;
        let processes: f64 = self.pids.iter().map(|&pid| measure::cpu_seconds(pid)).sum();
        let (busy, idle) = measure::machine_cpu_seconds();
        let processes = processes - self.processes;
        let postgres = measure::postgres_cpu_used(&self.postgres, &measure::postgres_cpu_seconds());
        let bench = measure::cpu_seconds(std::process::id()) - self.bench;
        Used {
            processes: per(processes),
            postgres: per(postgres),
            bench: per(bench),
            other: per(busy - self.machine.0 - processes - postgres - bench),
            idle: per(idle - self.machine.1),
        }
    }

    /// (processes, postgres) CPU seconds per 1,000 of `work`.
    fn per_thousand(&self, work: usize) -> (String, String) {
        let used = self.used(work);
        (per_thousand(used.processes), per_thousand(used.postgres))
    }
}

/// CPU seconds per unit as the tables print them: per 1,000 units.
fn per_thousand(seconds: f64) -> String {
    format!("{:.3}", seconds * 1000.0)
}

/// Latencies from publish (send time) to arrival, by delivery id; and how
/// many of `sent` were lost, and how many arrivals were duplicates.
fn latencies(sent: &Sent, arrivals: &[(Uuid, Instant)]) -> (Vec<Duration>, usize, usize) {
    let mut seen = HashSet::new();
    let mut samples = Vec::new();
    let mut duplicates = 0;
    for (id, at) in arrivals {
        if !seen.insert(*id) {
            duplicates += 1;
            continue;
        }
        if let Some(t) = sent.get(id) {
            samples.push(at.saturating_duration_since(*t));
        }
    }
    let lost = sent.keys().filter(|id| !seen.contains(id)).count();
    (samples, lost, duplicates)
}

/// A system whose one dispatcher only stores (workers off), with 100
/// partners registered: the start of every scenario that fills a backlog.
async fn publishing_stack() -> anyhow::Result<(Stack, Vec<String>)> {
    let mut stack = Stack::start().await?;
    stack
        .add_dispatcher(DispatcherSettings {
            workers: false,
            ..Default::default()
        })
        .await?;
    let partners = stack.partners(100, "/p").await?;
    Ok((stack, partners))
}

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

/// Scenario 2: end-to-end deliveries per second from a backlog, then
/// while publishing.
pub async fn deliver(scale: Scale) -> anyhow::Result<Report> {
    let (mut stack, partners) = publishing_stack().await?;
    let mut report = Report::new(
        "2. deliver: end-to-end deliveries to 100 registrations",
        &[
            "phase",
            "deliveries",
            "seconds",
            "deliveries/s",
            "p50 ms",
            "p99 ms",
            "lost",
            "duplicated",
            "dispatchers CPU s/1k",
            "Postgres CPU s/1k",
        ],
    );
    let backlog = scale.count(100_000);
    let (published, fill) = prefill(&stack, &partners, backlog, 100, 8).await?;
    report.notes.push(format!(
        "Backlog of {backlog} filled in {fill:.1?} with PublishBatch (100 per call), then a CHECKPOINT."
    ));
    // Every run starts just after a checkpoint, so that no run has the
    // flush of a checkpoint that earlier runs' WAL set off land in its
    // window (and every run pays the full-page writes after one). No
    // VACUUM: a backlog left by an outage would not have had one.
    stack.checkpoint().await?;
    // The HTTP ceiling (scenario 6's first row) just before and just after
    // the backlog phase: this VM's speed drifts within minutes, so the
    // share of the ceiling is read against measurements next to it.
    let ceiling_window = scale.duration(Duration::from_secs(5));
    let (ceiling_before, request_before) = ceiling(ceiling_window, &stack).await?;

    // From the backlog: a dispatcher with workers starts on a full queue.
    let worker = stack.add_dispatcher(DispatcherSettings::default()).await?;
    let cpu = Cpu::start(dispatcher_pids(&stack));
    let started = Instant::now();
    let complete = stack
        .receiver
        .wait_for(backlog, Duration::from_secs(900))
        .await;
    let (row, delivery) = delivery_row("from a backlog", &stack, &published, started, &cpu, false);
    report.rows.push(row);
    anyhow::ensure!(complete, "the backlog was not delivered within 15 minutes");
    let rate: f64 = report.column("deliveries/s")[0].parse().unwrap_or(f64::NAN);
    let (ceiling_after, request_after) = ceiling(ceiling_window, &stack).await?;
    let ceiling_mean = (ceiling_before + ceiling_after) / 2.0;
    report.notes.push(format!(
        "HTTP ceiling (scenario 6's first row) measured just before and just after the backlog phase: {ceiling_before:.0} and {ceiling_after:.0} requests/s; deliveries from the backlog are {:.0} % of their mean.",
        100.0 * rate / ceiling_mean
    ));
    report.notes.push(machine_time(
        &delivery,
        &request_before,
        &request_after,
        ceiling_mean,
    ));

    // Publishing and delivering at once: through the dispatcher that
    // delivers (one node doing both; most deliveries are handed off without
    // a claim), then through the other one (an ingest tier apart: every
    // delivery is claimed).
    let more = scale.count(50_000);
    for (phase, via) in [
        ("while publishing to it", worker),
        ("while publishing to another dispatcher", 0),
    ] {
        stack.publish_via(via);
        let cpu = Cpu::start(dispatcher_pids(&stack));
        let started = Instant::now();
        let (published, _) = prefill(&stack, &partners, more, 100, 4).await?;
        let complete = stack
            .receiver
            .wait_for(more, Duration::from_secs(600))
            .await;
        let (row, _) = delivery_row(phase, &stack, &published, started, &cpu, true);
        report.rows.push(row);
        anyhow::ensure!(
            complete,
            "deliveries {phase} did not finish within 10 minutes"
        );
    }
    report.notes.push(
        "p50 and p99: publish (the call's send) to receipt, in the phases that publish; a backlog's deliveries wait by design. Those phases publish as fast as `PublishBatch` goes, faster than deliveries go, so most of their latency is the wait in the queue that builds.".into(),
    );
    report.notes.push(stack.peak_rss().note());
    Ok(report)
}

/// Requests per second of scenario 6's first row (a fresh receiver on the
/// bench runtime, hammered over 64 keep-alive connections for `window`),
/// and where the machine's time went per request (the stack's idle
/// dispatchers included).
async fn ceiling(window: Duration, stack: &Stack) -> anyhow::Result<(f64, Used)> {
    let receiver = crate::receiver::Receiver::start().await?;
    let cpu = Cpu::start(dispatcher_pids(stack));
    let (took, elapsed) = hammer(receiver.addr(), window).await?;
    let total = took.len();
    Ok((total as f64 / elapsed.as_secs_f64(), cpu.used(total)))
}

/// The share the target asks for, of the HTTP ceiling.
const TARGET_SHARE: f64 = 0.30;

/// A table of where the machine's time went for a delivery from the
/// backlog and for a plain request of the ceiling, and what a delivery may
/// cost at the target share: the gap to the target, part by part.
fn machine_time(delivery: &Used, before: &Used, after: &Used, ceiling: f64) -> String {
    let cores = measure::machine_cores();
    let header = [
        "µs of machine time",
        "dispatcher",
        "Postgres",
        "bench process (receiver)",
        "other busy (kernel, registry)",
        "idle",
        "total",
    ];
    let table = markdown_table(
        &header,
        &[
            delivery.row("per delivery from the backlog"),
            before.row("per plain request, ceiling before (bench process: client and receiver)"),
            after.row("per plain request, ceiling after"),
        ],
    );
    let budget = cores as f64 / (TARGET_SHARE * ceiling);
    format!(
        "Where the machine's time went ({cores} cores; each row adds up to the cores' time divided by the work):\n\n{table}\n\
         At {:.0} % of the ceiling's mean ({:.0} deliveries/s) a delivery may take {:.1} µs of machine time in all; from the backlog, Postgres alone took {:.1} µs and the dispatcher {:.1} µs.",
        TARGET_SHARE * 100.0,
        TARGET_SHARE * ceiling,
        budget * 1e6,
        delivery.postgres * 1e6,
        delivery.processes * 1e6,
    )
}

/// Every dispatcher of the stack: in the deliver scenario the publishing
/// one may not be the delivering one, and both work for the deliveries.
fn dispatcher_pids(stack: &Stack) -> Vec<u32> {
    (0..stack.dispatchers.len())
        .map(|i| stack.dispatcher_pid(i))
        .collect()
}

/// One row of the deliver scenario: what arrived of `published` since
/// `started`, with its latency if `timed`, and what it cost (also answered
/// per delivery, for the machine-time table).
fn delivery_row(
    phase: &str,
    stack: &Stack,
    published: &Sent,
    started: Instant,
    cpu: &Cpu,
    timed: bool,
) -> (Vec<String>, Used) {
    let elapsed = started.elapsed();
    let used = cpu.used(published.len());
    let (samples, lost, duplicated) = latencies(published, &stack.receiver.take());
    let (p50, p99) = if timed {
        let p = percentiles(samples);
        (ms(p.p50), ms(p.p99))
    } else {
        ("—".into(), "—".into())
    };
    let row = vec![
        phase.into(),
        published.len().to_string(),
        format!("{:.1}", elapsed.as_secs_f64()),
        format!("{:.0}", published.len() as f64 / elapsed.as_secs_f64()),
        p50,
        p99,
        lost.to_string(),
        duplicated.to_string(),
        per_thousand(used.processes),
        per_thousand(used.postgres),
    ];
    (row, used)
}

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

/// Deliveries made before latency is measured: enough history that the
/// statistics, and the plans made from them, are those of a running
/// system rather than of empty tables.
const WARM_UP: usize = 20_000;

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
async fn latency_samples(
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

/// 4. Healthy endpoints' latency with and without endpoints that hang.
///
/// A p99 of a few milliseconds from one 10-second window moves with the
/// VM's stalls: single runs of one build gave ratios from 0.6 to 2.1
/// (docs/benchmarks-history.md, "Eighth round"). So the scenario runs
/// `ISOLATION_RUNS` times, each on a fresh stack, and reads the p99 of
/// the runs' latencies together. Within a run the phases keep their order
/// (none, the control, the hanging last), so that no phase measures what
/// the hanging endpoints leave behind: retries, and deliveries their
/// parking sent back.
pub async fn isolation(scale: Scale) -> anyhow::Result<Report> {
    let mut report = Report::new(
        "4. isolation: 100 healthy endpoints at 1,000 events/s, alone, beside 10 more that answer, and beside 10 that hang",
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
    let mut phases: [Phase; 3] = Default::default();
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
        "{ISOLATION_RUNS} runs, each on a fresh stack after {} warm-up deliveries, VACUUM ANALYZE and a CHECKPOINT; the percentiles are of all runs' latencies together. Healthy p99 beside the hanging endpoints / with no extra load: {:.2}; / beside the control: {:.2}. CPU is per 1,000 healthy events, the side load's work included.",
        scale.count(WARM_UP),
        ratio(p99[2], p99[0]),
        ratio(p99[2], p99[1]),
    ));
    report.notes.push(peak_rss.note());
    Ok(report)
}

/// Fresh stacks the isolation scenario runs on, its latencies pooled.
const ISOLATION_RUNS: usize = 3;

/// The isolation scenario's phases, in the order each run measures them.
const ISOLATION_PHASES: [&str; 3] = [
    "none",
    "10 more that answer (100 events/s)",
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
async fn isolation_run(scale: Scale, phases: &mut [Phase; 3]) -> anyhow::Result<PeakRss> {
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
    let hanging = stack.partners(10, "/hang").await?;
    let window = scale.duration(Duration::from_secs(10));
    let all: Vec<String> = [&healthy[..], &others[..]].concat();
    stack.warm(&all, scale.count(WARM_UP)).await?;

    // 100 events/s more, to nobody, to 10 endpoints that answer (the
    // control: the same load, nothing hangs), and to 10 that hang until
    // the 5 s timeout.
    for (phase, side) in phases.iter_mut().zip([None, Some(&others), Some(&hanging)]) {
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

/// Publishes `rate` events/s round-robin to `partners` for `window`, one
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

/// The dispatcher's claim statement (`storage::queue::CLAIM`) of 128 with
/// the current backlog, from the cursor; run and rolled back, `rounds`
/// times: how long each took. The tables are analysed first, and the
/// session set up as the dispatcher's claim connection, so it plans as the
/// dispatcher's does.
async fn claim_cost(stack: &Stack, rounds: usize) -> anyhow::Result<Percentiles> {
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

/// Scenario 6: the machine's ceiling, the same receiver hammered by a
/// plain keep-alive hyper client in the bench process, no database: once
/// as scenario 2 runs it (on the bench's runtime), once on a thread of its
/// own (closer to the issue's reference, wrk against a one-thread server;
/// the client here is still hyper, in-process).
pub async fn limit(scale: Scale) -> anyhow::Result<Report> {
    let window = scale.duration(Duration::from_secs(5));
    let mut report = Report::new(
        "6. limit: plain HTTP to the same receiver, no database",
        &[
            "receiver",
            "connections",
            "requests",
            "requests/s",
            "p50 ms",
            "p99 ms",
        ],
    );
    let workers = tokio::runtime::Handle::current().metrics().num_workers();
    for (label, receiver) in [
        (
            format!("as in scenario 2 (on the bench runtime's {workers} threads)"),
            crate::receiver::Receiver::start().await?,
        ),
        (
            "on its own thread (client in-process)".to_owned(),
            crate::receiver::Receiver::start_on_one_thread()?,
        ),
    ] {
        let (took, elapsed) = hammer(receiver.addr(), window).await?;
        let total = took.len();
        let p = percentiles(took);
        report.rows.push(vec![
            label,
            "64".into(),
            total.to_string(),
            format!("{:.0}", total as f64 / elapsed.as_secs_f64()),
            ms(p.p50),
            ms(p.p99),
        ]);
    }
    Ok(report)
}

/// POSTs to `addr` over 64 keep-alive connections for `window`; answers
/// how long each request took, and the time taken in all.
async fn hammer(
    addr: std::net::SocketAddr,
    window: Duration,
) -> anyhow::Result<(Vec<Duration>, Duration)> {
    let started = Instant::now();
    let mut tasks = Vec::new();
    for _ in 0..64 {
        tasks.push(tokio::spawn(async move {
            let stream = tokio::net::TcpStream::connect(addr).await?;
            stream.set_nodelay(true)?;
            let (mut sender, connection) =
                hyper::client::conn::http1::handshake(TokioIo::new(stream)).await?;
            tokio::spawn(connection);
            let mut took = Vec::with_capacity(1 << 16);
            let body =
                Bytes::from_static(br#"{"processUniqueId":"limit","amount":1,"status":"settled"}"#);
            while started.elapsed() < window {
                let request = hyper::Request::post("/limit")
                    .header("host", "127.0.0.1")
                    .header("content-type", "application/json")
                    .header("webhook-id", Uuid::new_v4().to_string())
                    .body(Full::new(body.clone()))?;
                let sent = Instant::now();
                sender.ready().await?;
                let response = sender.send_request(request).await?;
                anyhow::ensure!(response.status() == 204, "unexpected {}", response.status());
                took.push(sent.elapsed());
            }
            Ok::<_, anyhow::Error>(took)
        }));
    }
    let mut took = Vec::new();
    for task in tasks {
        took.extend(task.await??);
    }
    Ok((took, started.elapsed()))
}
