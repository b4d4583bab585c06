//! The harness must not rot: every scenario runs here at a small scale
//! and must count every delivery (or stored event), none lost, and report
//! what the issue asks of each run.

// A failed unwrap is a failed test, which is what a test wants.
#![allow(clippy::unwrap_used)]

use bench::scenarios::{self, Report, Scale};

/// The cells of `name` as numbers, each checked to be one.
fn numbers(report: &Report, name: &str) -> Vec<f64> {
    let cells = report.column(name);
    assert_eq!(cells.len(), report.rows.len(), "no column {name:?}");
    cells
        .iter()
        .map(|c| {
            c.parse()
                .unwrap_or_else(|_| panic!("{name}: {c:?} is not a number"))
        })
        .collect()
}

/// What the issue asks of every run: nothing lost or duplicated, the CPU
/// per 1,000 of the dispatcher (column `dispatcher`) and of Postgres, and
/// each service's peak RSS.
fn reports_what_the_issue_asks(report: &Report, dispatcher: &str) {
    nothing_lost(report);
    cpu_reported(report, dispatcher);
    peak_rss_reported(report);
}

/// Every row lost nothing and duplicated nothing (where the report counts
/// duplicates).
fn nothing_lost(report: &Report) {
    assert!(
        numbers(report, "lost").iter().all(|l| *l == 0.0),
        "{}",
        report.markdown()
    );
    if report.header.contains(&"duplicated") {
        assert!(
            numbers(report, "duplicated").iter().all(|d| *d == 0.0),
            "{}",
            report.markdown()
        );
    }
}

/// The report names each service's peak RSS, and each is above nothing.
fn peak_rss_reported(report: &Report) {
    let note = report
        .notes
        .iter()
        .find_map(|n| n.strip_prefix("Peak RSS: dispatcher "))
        .unwrap_or_else(|| panic!("no peak RSS in {:?}", report.notes));
    let mib: Vec<f64> = note
        .split(|c: char| !c.is_ascii_digit())
        .filter_map(|n| n.parse().ok())
        .collect();
    assert_eq!(mib.len(), 2, "dispatcher and registry: {note}");
    assert!(mib.iter().all(|m| *m > 0.0), "{note}");
}

/// Dispatcher and Postgres CPU per 1,000 were read (not negative; Postgres
/// always works for a delivery or a publish).
fn cpu_reported(report: &Report, dispatcher: &str) {
    assert!(numbers(report, dispatcher).iter().all(|c| *c >= 0.0));
    assert!(
        numbers(report, "Postgres CPU s/1k")
            .iter()
            .all(|c| *c > 0.0)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_small_ingest_run_stores_every_acknowledged_event() {
    let report = scenarios::ingest(Scale(0.01)).await.unwrap();
    assert_eq!(report.rows.len(), 4, "Publish at 1, 16, 64; PublishBatch");
    assert!(numbers(&report, "events/s").iter().all(|r| *r > 0.0));
    assert!(numbers(&report, "call p99 ms").iter().all(|p| *p > 0.0));
    reports_what_the_issue_asks(&report, "dispatcher CPU s/1k");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_small_latency_run_counts_every_delivery() {
    // Windows of one second at 100, 1,000 and 5,000 events/s.
    let report = scenarios::latency(Scale(0.01)).await.unwrap();
    assert_eq!(
        report.column("events"),
        ["100", "1000", "5000"],
        "{}",
        report.markdown()
    );
    let (p50, p99) = (numbers(&report, "p50 ms"), numbers(&report, "p99 ms"));
    assert!(p50.iter().zip(&p99).all(|(a, b)| *a > 0.0 && a <= b));
    reports_what_the_issue_asks(&report, "dispatcher CPU s/1k");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_small_backlog_run_delivers_all_of_both_backlogs() {
    // 100 waiting twice, 10,000, and 100 twice again.
    let report = scenarios::backlog(Scale(0.01)).await.unwrap();
    assert_eq!(
        report.column("waiting"),
        ["100", "100", "10000", "100", "100"]
    );
    assert_eq!(
        report.column("delivered (all)"),
        ["100", "100", "10000", "100", "100"]
    );
    // Deliveries 11 to 90 of each small backlog, 11 to 1,000 of the large
    // one: the dispatcher's start and a backlog's last deliveries left out.
    assert_eq!(
        report.column("delivered (measured)"),
        ["80", "80", "990", "80", "80"]
    );
    assert!(
        report
            .notes
            .iter()
            .any(|n| n.starts_with("With 10000 waiting, the rate is ")),
        "{:?}",
        report.notes
    );
    assert!(
        numbers(&report, "claim of 128 max ms")
            .iter()
            .all(|c| *c > 0.0)
    );
    reports_what_the_issue_asks(&report, "dispatcher CPU s/1k");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_small_delivery_run_counts_every_delivery() {
    // 1% of the full run: 1,000 events from a backlog, 500 while publishing
    // to the delivering dispatcher (handed off), 500 through another one.
    let report = scenarios::deliver(Scale(0.01)).await.unwrap();
    assert_eq!(report.column("deliveries"), ["1000", "500", "500"]);
    assert!(numbers(&report, "deliveries/s").iter().all(|r| *r > 0.0));
    reports_what_the_issue_asks(&report, "dispatchers CPU s/1k");
    // Publish-to-receipt latency where something is published; a backlog
    // waits by design.
    assert_eq!(report.column("p99 ms")[0], "—");
    for (p50, p99) in report
        .column("p50 ms")
        .iter()
        .zip(report.column("p99 ms"))
        .skip(1)
    {
        let (p50, p99): (f64, f64) = (p50.parse().unwrap(), p99.parse().unwrap());
        assert!(p50 > 0.0 && p50 <= p99, "{}", report.markdown());
    }
    let table = report.markdown();
    assert!(table.contains("| from a backlog | 1000 |"), "{table}");
    assert!(
        table.contains("| while publishing to it | 500 |"),
        "{table}"
    );
    // The share of the HTTP ceiling measured around the backlog phase.
    let share = report
        .notes
        .iter()
        .find_map(|n| n.split("backlog are ").nth(1))
        .and_then(|rest| rest.split(' ').next())
        .and_then(|n| n.parse::<f64>().ok())
        .unwrap_or_else(|| panic!("no share of the ceiling in {:?}", report.notes));
    assert!(share > 0.0 && share < 100.0, "{share}");
    // Where the machine's time went: no part is negative but "other busy"
    // (two clocks read apart), and the cores' time over the phase, which
    // always moves, is spent somewhere.
    let machine = report
        .notes
        .iter()
        .find(|n| n.starts_with("Where the machine's time went"))
        .unwrap_or_else(|| panic!("no machine-time table in {:?}", report.notes));
    let delivery: Vec<f64> = machine
        .lines()
        .find(|l| l.starts_with("| per delivery from the backlog |"))
        .unwrap_or_else(|| panic!("no delivery row in {machine}"))
        .split('|')
        .skip(2)
        .filter_map(|cell| cell.trim().parse().ok())
        .collect();
    assert_eq!(delivery.len(), 6, "{machine}");
    let (dispatcher, postgres, bench, idle, total) = (
        delivery[0],
        delivery[1],
        delivery[2],
        delivery[4],
        delivery[5],
    );
    assert!(
        dispatcher >= 0.0 && postgres >= 0.0 && bench >= 0.0 && idle >= 0.0,
        "{machine}"
    );
    assert!(total > 0.0, "{machine}");
    assert!(machine.contains("a delivery may take"), "{machine}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_http_ceiling_is_measured() {
    let report = scenarios::limit(Scale(0.1)).await.unwrap();
    assert_eq!(report.rows.len(), 2, "both receivers are measured");
    assert!(numbers(&report, "requests/s").iter().all(|r| *r > 0.0));
    let (p50, p99) = (numbers(&report, "p50 ms"), numbers(&report, "p99 ms"));
    assert!(
        p50.iter().zip(&p99).all(|(a, b)| a <= b && *b > 0.0),
        "{}",
        report.markdown()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_small_isolation_run_pools_every_run_and_loses_nothing() {
    // Windows of one second: 1,000 healthy events per phase and run, three
    // runs on fresh stacks, pooled.
    let report = scenarios::isolation(Scale(0.01)).await.unwrap();
    assert_eq!(
        report.rows.len(),
        5,
        "none, the control, the throttling, the failing, the hanging"
    );
    assert_eq!(
        report.column("healthy events"),
        ["3000"; 5],
        "three runs' healthy events"
    );
    reports_what_the_issue_asks(&report, "dispatcher CPU s/1k");
    for (p99, runs) in numbers(&report, "p99 ms")
        .into_iter()
        .zip(report.column("p99 ms of each run"))
    {
        let runs: Vec<f64> = runs.split(", ").map(|p| p.parse().unwrap()).collect();
        assert_eq!(runs.len(), 3, "each run's p99: {runs:?}");
        // The pooled p99 lies within the runs' (to the table's rounding).
        let (low, high) = runs
            .iter()
            .fold((f64::MAX, 0.0_f64), |(l, h), p| (l.min(*p), h.max(*p)));
        assert!(p99 >= low - 0.05 && p99 <= high + 0.05, "{p99} {runs:?}");
    }
    assert!(
        report.notes[0].contains("with no extra load / beside the throttling endpoints: "),
        "{:?}",
        report.notes
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_small_publish_loop_delivers_every_published_event() {
    // A window of 6 s (the smallest: a tenth of the full minute) after 200
    // warm-up deliveries.
    let report = scenarios::publish_loop(Scale(0.01)).await.unwrap();
    assert_eq!(report.column("publishers"), ["64"], "{}", report.markdown());
    let (published, delivered) = (
        numbers(&report, "published")[0],
        numbers(&report, "delivered")[0],
    );
    assert!(
        published > 0.0 && delivered == published,
        "{}",
        report.markdown()
    );
    assert!(numbers(&report, "delivered/s")[0] > 0.0);
    for (p50, p99) in [("p50 ms", "p99 ms"), ("call p50 ms", "call p99 ms")] {
        let (p50, p99) = (numbers(&report, p50)[0], numbers(&report, p99)[0]);
        assert!(p50 > 0.0 && p50 <= p99, "{}", report.markdown());
    }
    reports_what_the_issue_asks(&report, "dispatcher CPU s/1k");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_small_https_hosts_run_counts_handshakes_and_reuse() {
    // 1,000 deliveries a phase: one to each registration, plain, HTTPS,
    // HTTPS, plain.
    let report = scenarios::https_hosts(Scale(0.01)).await.unwrap();
    assert_eq!(
        report.column("phase"),
        ["plain HTTP", "HTTPS", "HTTPS", "plain HTTP"],
        "{}",
        report.markdown()
    );
    assert_eq!(report.column("hosts"), ["1", "100", "100", "1"]);
    assert_eq!(report.column("deliveries"), ["1000"; 4]);
    reports_what_the_issue_asks(&report, "dispatcher CPU s/1k");
    let connections = numbers(&report, "new connections");
    let reused = numbers(&report, "connections reused");
    for (row, kind) in report.column("phase").iter().enumerate() {
        // Every request came on a new connection or an old one (a
        // connection may also have been opened and never used).
        assert!(connections[row] > 0.0, "{}", report.markdown());
        assert!(
            connections[row] + reused[row] >= 1000.0,
            "{}",
            report.markdown()
        );
        let handshakes: f64 = report.column("TLS handshakes (resumed)")[row]
            .split(' ')
            .next()
            .unwrap()
            .parse()
            .unwrap();
        // A handshake per HTTPS connection (but one the client dropped
        // half-way); none for plain HTTP.
        if *kind == "HTTPS" {
            assert!(handshakes > 0.0 && handshakes <= connections[row]);
        } else {
            assert_eq!(handshakes, 0.0, "{}", report.markdown());
        }
    }
    assert!(
        report
            .notes
            .iter()
            .any(|n| n.contains("of plain HTTP's rate")),
        "{:?}",
        report.notes
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_small_retention_run_samples_the_tables_and_the_claim() {
    let report = scenarios::retention(Scale(0.01)).await.unwrap();
    assert_eq!(report.rows.len(), 1, "{}", report.markdown());
    nothing_lost(&report);
    peak_rss_reported(&report);
    assert!(numbers(&report, "events").iter().all(|e| *e > 0.0));
    assert!(numbers(&report, "tables MiB").iter().all(|m| *m > 0.0));
    assert!(
        numbers(&report, "claim of 128 p50 ms")
            .iter()
            .all(|c| *c > 0.0)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_small_ordering_run_delivers_every_lane_in_order() {
    let report = scenarios::ordering(Scale(0.01)).await.unwrap();
    assert_eq!(report.rows.len(), 3, "1, 10 and 100 lanes");
    nothing_lost(&report);
    peak_rss_reported(&report);
    assert!(
        numbers(&report, "out of order").iter().all(|o| *o == 0.0),
        "{}",
        report.markdown()
    );
    assert!(numbers(&report, "deliveries/s").iter().all(|r| *r > 0.0));
}
