//! A claim reads the first rows of the due index, whatever the size of the
//! backlog and whatever the table's statistics say.

use std::time::Duration;

use diesel::QueryableByName;
use diesel::sql_types::{Int4, Text, Uuid as SqlUuid};
use diesel_async::{AsyncPgConnection, RunQueryDsl};
use dispatcher_service::storage::{self, queue};
use uuid::Uuid;

use crate::World;

/// Stores `n` events, each with a pending delivery due one second after
/// the one before, and analyses nothing.
async fn due_deliveries(world: &World, n: i32) {
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
}

#[derive(QueryableByName)]
struct PlanLine {
    #[diesel(sql_type = Text)]
    #[diesel(column_name = "QUERY PLAN")]
    line: String,
}

/// The plan `conn` makes for a claim of 128.
async fn claim_plan(conn: &mut AsyncPgConnection) -> String {
    diesel::sql_query(format!("EXPLAIN {}", queue::CLAIM))
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

#[derive(QueryableByName)]
struct Setting {
    #[diesel(sql_type = Text)]
    synchronous_commit: String,
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_claim_reads_the_due_index_even_on_tables_never_analysed() {
    let world = World::start().await;
    let pool = storage::connect(world.dispatch_db.url(), 4).await.unwrap();
    due_deliveries(&world, 20_000).await;

    // The hazard: on tables never analysed, the planner guesses about a
    // hundred due rows and reads and sorts every one of them.
    let mut plain = pool.dedicated_connection().await.unwrap();
    let plan = claim_plan(&mut plain).await;
    assert!(plan.contains("Sort"), "the hazard did not show:\n{plan}");

    // A connection set up for claims reads the head of the due index.
    let mut claiming = pool.dedicated_connection().await.unwrap();
    queue::prepare_for_claims(&mut claiming).await.unwrap();
    let plan = claim_plan(&mut claiming).await;
    assert!(!plan.contains("Sort"), "the claim sorts:\n{plan}");
    assert!(
        plan.contains("Index Scan using deliveries_due_idx"),
        "the claim does not read the due index:\n{plan}"
    );
    // Its commits do not wait for the flush (see `prepare_for_claims`).
    let setting = diesel::sql_query("SHOW synchronous_commit")
        .get_result::<Setting>(&mut claiming)
        .await
        .unwrap();
    assert_eq!(setting.synchronous_commit, "off");
    let claimed = queue::claim(&mut claiming, 128, Duration::from_secs(30))
        .await
        .unwrap();
    assert_eq!(claimed.len(), 128);
}
