//! Scenario 2, deliver: end-to-end deliveries to 100 registrations, with
//! the share of the HTTP ceiling and where the machine's time went.

use super::limit::hammer;
use super::*;

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
