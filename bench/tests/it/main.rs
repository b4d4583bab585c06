//! The harness must not rot: small delivery and isolation scenarios run
//! in the test suite and must count every delivery, none lost.

// A failed unwrap is a failed test, which is what a test wants.
#![allow(clippy::unwrap_used)]

use bench::scenarios::{self, Scale};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_small_delivery_run_counts_every_delivery() {
    // 1% of the full run: 1,000 events from a backlog, 500 while publishing
    // to the delivering dispatcher (handed off), 500 through another one.
    let report = scenarios::deliver(Scale(0.01)).await.unwrap();
    assert_eq!(report.rows.len(), 3);
    for row in &report.rows {
        // deliveries, lost, duplicated
        assert!(row[1] == "1000" || row[1] == "500", "{row:?}");
        assert_eq!(row[4], "0", "lost deliveries: {row:?}");
        assert!(row[3].parse::<f64>().unwrap() > 0.0);
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
    for row in &report.rows {
        let rate: f64 = row[3].parse().unwrap();
        assert!(rate > 0.0, "{row:?}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_small_isolation_run_pools_every_run_and_loses_nothing() {
    // Windows of one second: 1,000 healthy events per phase and run, three
    // runs on fresh stacks, pooled.
    let report = scenarios::isolation(Scale(0.01)).await.unwrap();
    assert_eq!(report.rows.len(), 3, "none, the control, the hanging");
    for row in &report.rows {
        assert_eq!(row[1], "3000", "three runs' healthy events: {row:?}");
        assert_eq!(row[5], "0", "lost deliveries: {row:?}");
        let p99: f64 = row[3].parse().unwrap();
        let runs: Vec<f64> = row[6].split(", ").map(|p| p.parse().unwrap()).collect();
        assert_eq!(runs.len(), 3, "each run's p99: {row:?}");
        // The pooled p99 lies within the runs' (to the table's rounding).
        let (low, high) = runs
            .iter()
            .fold((f64::MAX, 0.0_f64), |(l, h), p| (l.min(*p), h.max(*p)));
        assert!(p99 >= low - 0.05 && p99 <= high + 0.05, "{row:?}");
    }
    assert!(
        report.notes[0].contains("beside the hanging endpoints / with no extra load: "),
        "{:?}",
        report.notes
    );
}
