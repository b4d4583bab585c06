//! The harness must not rot: a small delivery scenario runs in the test
//! suite and must count every delivery, none lost.

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
