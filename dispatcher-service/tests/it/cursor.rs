//! Claims read the due index from where the last one left off (`Head`):
//! past the dead entries earlier claims left at its start, and without
//! losing a row that became due behind it.

use std::time::Duration;

use diesel_async::AsyncPgConnection;
use dispatcher_service::storage;
use dispatcher_service::storage::queue::{self, Head};
use uuid::Uuid;

use crate::World;
use crate::plans::{Plan, due_deliveries, explain};

const LEASE: Duration = Duration::from_secs(30);

/// A fresh world with `n` deliveries due, one a second, the latest a
/// second ago; a connection to claim them on; and a head that reads the
/// whole queue only once (within a test).
async fn queue_of(n: i32) -> (World, AsyncPgConnection, Head) {
    let world = World::start().await;
    let pool = storage::connect(world.dispatch_db.url(), 4).await.unwrap();
    due_deliveries(&world, n).await;
    let conn = pool.dedicated_connection().await.unwrap();
    (world, conn, Head::new(Duration::from_secs(3600)))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_claim_goes_on_from_the_last_and_a_full_read_finds_what_became_due_behind() {
    // Due 1 to 20 seconds ago.
    let (world, mut conn, mut head) = queue_of(20).await;
    let first = queue::claim(&mut conn, 5, LEASE, &mut head).await.unwrap();
    assert_eq!(first.len(), 5);

    // A row due a minute ago appears: one whose publish committed long
    // after it began, say. It is behind the head.
    let db = world.dispatch_db.client().await.unwrap();
    let late = Uuid::new_v4();
    db.batch_execute(&format!(
        "INSERT INTO events (id, partner_id, notification_type, payload, has_subscriber, occurred_at)
         VALUES ('{late}', gen_random_uuid(), 5, '\\x7b7d', true, now());
         INSERT INTO deliveries (id, event_id, partner_id, notification_type, next_attempt_at)
         SELECT id, id, partner_id, 5, now() - interval '1 minute' FROM events WHERE id = '{late}';"
    ))
    .await
    .unwrap();

    // Claims from the head take the rest, oldest first, but not it...
    let rest = queue::claim(&mut conn, 100, LEASE, &mut head)
        .await
        .unwrap();
    assert_eq!(rest.len(), 15);
    assert!(rest.iter().all(|c| c.id != late));
    // ...which the next full read of the queue takes.
    let mut full = Head::new(Duration::ZERO);
    let found = queue::claim(&mut conn, 100, LEASE, &mut full)
        .await
        .unwrap();
    assert_eq!(found.iter().map(|c| c.id).collect::<Vec<_>>(), [late]);
}

/// The index pages a claim of 100 from `from` reads in the due index
/// (claimed and rolled back).
async fn due_index_pages_read(conn: &mut AsyncPgConnection, from: &str) -> u64 {
    let arguments = format!("100, 30000, '{}', '{from}'", Uuid::new_v4());
    let plan = explain(
        conn,
        queue::CLAIM,
        &arguments,
        Plan::Custom,
        "ANALYZE, BUFFERS, COSTS OFF, TIMING OFF",
    )
    .await;
    let scan = plan
        .iter()
        .position(|l| l.contains("Index Scan using deliveries_due_idx"))
        .unwrap_or_else(|| panic!("no scan of the due index:\n{}", plan.join("\n")));
    let buffers = plan[scan..]
        .iter()
        .find(|l| l.trim_start().starts_with("Buffers:"))
        .expect("the scan's buffers");
    buffers
        .split_whitespace()
        .filter_map(|part| part.split_once('='))
        .filter(|(kind, _)| ["hit", "read"].contains(kind))
        .map(|(_, n)| n.parse::<u64>().unwrap())
        .sum()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_claim_from_the_head_steps_over_no_earlier_claims_dead_entries() {
    let (world, mut conn, mut head) = queue_of(22_000).await;
    // Twenty thousand claimed in claims of 100: each row's old entry stays at
    // the start of the due index, dead, until a VACUUM (none runs here).
    for _ in 0..200 {
        let claimed = queue::claim(&mut conn, 100, LEASE, &mut head)
            .await
            .unwrap();
        assert_eq!(claimed.len(), 100);
    }

    // From the start, a claim reads every page of the dead entries first;
    // from the head (a little behind the latest due time taken) it reads
    // only the pages it takes its rows from.
    let from_start = due_index_pages_read(&mut conn, "1970-01-01Z").await;
    // Where the head is now: 100 ms behind the last row taken, due a
    // second before the first row left.
    let head_at: String = world
        .dispatch_db
        .client()
        .await
        .unwrap()
        .query_one(
            "SELECT (min(next_attempt_at) - interval '1.1 seconds')::text
             FROM deliveries WHERE status = 'pending' AND lease_token IS NULL",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    let from_head = due_index_pages_read(&mut conn, &head_at).await;
    // Twenty thousand dead entries fill some fifty pages.
    assert!(
        from_head <= 5 && from_start >= from_head + 30,
        "from the start {from_start} pages, from the head {from_head}"
    );
}
