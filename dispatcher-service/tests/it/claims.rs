//! How a claim reads the queue: from either end of the due deliveries, and
//! through the due index whatever the table's statistics say.

use std::collections::HashSet;
use std::time::Duration;

use diesel::QueryableByName;
use diesel::sql_types::{Int4, Text, Uuid as SqlUuid};
use diesel_async::{AsyncPgConnection, RunQueryDsl};
use dispatcher_service::storage::{self, queue, queue::ClaimEnd};
use uuid::Uuid;

use crate::World;

/// Stores `n` events, each with a pending delivery, due one second apart
/// (the first the longest due); answers the delivery ids, oldest first.
/// Nothing analyses the tables afterwards.
async fn due_deliveries(world: &World, n: i32) -> Vec<Uuid> {
    let db = world.dispatch_db.client().await.unwrap();
    db.batch_execute(&format!(
        "INSERT INTO events (id, partner_id, notification_type, payload, has_subscriber, occurred_at)
         SELECT gen_random_uuid(), gen_random_uuid(), 5, '\\x7b7d', true, now()
         FROM generate_series(1, {n});
         INSERT INTO deliveries (id, event_id, partner_id, notification_type, next_attempt_at)
         SELECT gen_random_uuid(), e.id, e.partner_id, 5,
                now() - make_interval(secs => row_number() OVER (ORDER BY e.id))
         FROM events e;
         UPDATE events e SET delivery_id = d.id FROM deliveries d WHERE d.event_id = e.id;"
    ))
    .await
    .unwrap();
    db.query("SELECT id FROM deliveries ORDER BY next_attempt_at", &[])
        .await
        .unwrap()
        .iter()
        .map(|row| row.get(0))
        .collect()
}

fn ids(claimed: &[queue::Claimed]) -> HashSet<Uuid> {
    claimed.iter().map(|c| c.id).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn claims_from_the_two_ends_take_the_oldest_and_the_newest() {
    let world = World::start().await;
    let pool = storage::connect(world.dispatch_db.url(), 4).await.unwrap();
    let due = due_deliveries(&world, 30).await;
    let mut conn = pool.get().await.unwrap();
    let lease = Duration::from_secs(30);

    let oldest = queue::claim(&mut conn, 10, lease, ClaimEnd::Oldest)
        .await
        .unwrap();
    let newest = queue::claim(&mut conn, 10, lease, ClaimEnd::Newest)
        .await
        .unwrap();
    assert_eq!(ids(&oldest), due[..10].iter().copied().collect());
    assert_eq!(ids(&newest), due[20..].iter().copied().collect());

    // What is left is the middle, from either end.
    let rest = queue::claim(&mut conn, 30, lease, ClaimEnd::Newest)
        .await
        .unwrap();
    assert_eq!(ids(&rest), due[10..20].iter().copied().collect());
}

#[derive(QueryableByName)]
struct PlanLine {
    #[diesel(sql_type = Text)]
    #[diesel(column_name = "QUERY PLAN")]
    line: String,
}

/// The plan `conn` makes for a claim of 128 from `end`.
async fn claim_plan(conn: &mut AsyncPgConnection, end: ClaimEnd) -> String {
    diesel::sql_query(format!("EXPLAIN {}", end.sql()))
        .bind::<Int4, _>(128)
        .bind::<Int4, _>(30_000)
        .bind::<SqlUuid, _>(Uuid::new_v4())
        .load::<PlanLine>(conn)
        .await
        .unwrap()
        .into_iter()
        .map(|l| l.line)
        .collect::<Vec<_>>()
        .join("\n")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_claim_reads_the_due_index_even_on_tables_never_analysed() {
    let world = World::start().await;
    let pool = storage::connect(world.dispatch_db.url(), 4).await.unwrap();
    due_deliveries(&world, 20_000).await;

    // The hazard: on tables never analysed, the planner guesses a few
    // hundred due rows and reads and sorts every one of them.
    let mut plain = pool.dedicated_connection().await.unwrap();
    let plan = claim_plan(&mut plain, ClaimEnd::Oldest).await;
    assert!(plan.contains("Sort"), "the hazard did not show:\n{plan}");

    // A connection set up for claims reads the first rows of the due index.
    let mut claiming = pool.dedicated_connection().await.unwrap();
    queue::prepare_for_claims(&mut claiming).await.unwrap();
    for end in [ClaimEnd::Oldest, ClaimEnd::Newest] {
        let plan = claim_plan(&mut claiming, end).await;
        assert!(!plan.contains("Sort"), "{end:?} sorts:\n{plan}");
        assert!(
            plan.contains("Index Scan") && plan.contains("deliveries_due_idx"),
            "{end:?} does not read the due index:\n{plan}"
        );
        let claimed = queue::claim(&mut claiming, 128, Duration::from_secs(30), end)
            .await
            .unwrap();
        assert_eq!(claimed.len(), 128);
    }
}
