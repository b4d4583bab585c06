//! The queue's statements use the queue's indexes whatever the tables'
//! statistics say: a claim reads the head of the due index, a completion
//! finds each row by its primary key. Each runs on a `QueueConnection`
//! set up for it; a plain connection shows the hazard it is set up against.

use std::time::Duration;

use diesel::QueryableByName;
use diesel::sql_types::Text;
use diesel_async::{AsyncPgConnection, RunQueryDsl, SimpleAsyncConnection};
use dispatcher_service::storage::queue::{self, QueueConnection, Role};
use dispatcher_service::storage::{self, DbPool};
use uuid::Uuid;

use crate::World;

/// Stores `n` events, each with a pending delivery due one second after
/// the one before, and analyses nothing.
pub(crate) async fn due_deliveries(world: &World, n: i32) {
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

/// Which of a prepared statement's plans to explain.
#[derive(Clone, Copy)]
pub(crate) enum Plan {
    /// The one made for each of its first executions, with their values.
    Custom,
    /// The one Postgres keeps once it settles on one, whatever the values.
    Generic,
}

/// What `EXPLAIN ({options})` says of `sql`, prepared on `conn` and
/// executed with `arguments` under `plan`, line by line; in a transaction
/// rolled back, since an `ANALYZE` runs the statement.
pub(crate) async fn explain(
    conn: &mut AsyncPgConnection,
    sql: &str,
    arguments: &str,
    plan: Plan,
    options: &str,
) -> Vec<String> {
    let mode = match plan {
        Plan::Custom => "force_custom_plan",
        Plan::Generic => "force_generic_plan",
    };
    conn.batch_execute(&format!(
        "BEGIN; SET LOCAL plan_cache_mode = {mode}; PREPARE explained AS {sql}"
    ))
    .await
    .unwrap();
    let lines = diesel::sql_query(format!(
        "EXPLAIN ({options}) EXECUTE explained({arguments})"
    ))
    .load::<PlanLine>(conn)
    .await
    .unwrap();
    // A prepared statement outlives the transaction.
    conn.batch_execute("ROLLBACK; DEALLOCATE explained")
        .await
        .unwrap();
    lines.into_iter().map(|l| l.line).collect()
}

/// The plan `conn` makes for `sql` prepared and executed with `arguments`.
async fn plan(conn: &mut AsyncPgConnection, sql: &str, arguments: &str, plan: Plan) -> String {
    explain(conn, sql, arguments, plan, "COSTS")
        .await
        .join("\n")
}

/// The plan `conn` makes for a claim of 128.
async fn claim_plan(conn: &mut AsyncPgConnection, which: Plan) -> String {
    let arguments = format!("128, 30000, '{}'", Uuid::new_v4());
    plan(conn, queue::CLAIM, &arguments, which).await
}

/// The generic plan `conn` makes for a completion (of nothing: the plan
/// does not depend on the batch).
async fn completion_plan(conn: &mut AsyncPgConnection) -> String {
    plan(
        conn,
        queue::COMPLETE,
        &["'{}'"; 14].join(", "),
        Plan::Generic,
    )
    .await
}

async fn plain(pool: &DbPool) -> AsyncPgConnection {
    pool.dedicated_connection().await.unwrap()
}

#[derive(QueryableByName)]
struct Setting {
    #[diesel(sql_type = Text)]
    value: String,
}

/// The session's value of the setting `name`.
async fn setting(conn: &mut AsyncPgConnection, name: &str) -> String {
    diesel::sql_query("SELECT current_setting($1) AS value")
        .bind::<Text, _>(name)
        .get_result::<Setting>(conn)
        .await
        .unwrap()
        .value
}

async fn synchronous_commit(conn: &mut AsyncPgConnection) -> String {
    setting(conn, "synchronous_commit").await
}

const TIMEOUT: Duration = Duration::from_secs(30);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_claim_reads_the_due_index_even_on_tables_never_analysed() {
    let world = World::start().await;
    let pool = storage::connect(world.dispatch_db.url(), 4).await.unwrap();
    due_deliveries(&world, 20_000).await;

    // The hazard: on tables never analysed, the planner guesses about a
    // hundred due rows after the cursor (a place it cannot know when
    // planning), and reads and sorts every one of them.
    let plan = claim_plan(&mut plain(&pool).await, Plan::Custom).await;
    assert!(
        plan.contains("Sort Key: deliveries.next_attempt_at, deliveries.id"),
        "the hazard did not show (if this Postgres no longer plans so, this check can go):\n{plan}"
    );

    let mut claims = QueueConnection::new(pool.clone(), Role::Claims, TIMEOUT);
    for which in [Plan::Custom, Plan::Generic] {
        let plan = claims
            .run(async |conn| Ok(claim_plan(conn, which).await))
            .await
            .unwrap();
        assert!(!plan.contains("Sort"), "the claim sorts:\n{plan}");
        assert!(
            plan.contains("Index Scan using deliveries_due_idx"),
            "the claim does not read the due index:\n{plan}"
        );
    }
    // Its commits do not wait for the flush (see `Role::Claims`).
    let setting = claims
        .run(async |conn| Ok(synchronous_commit(conn).await))
        .await
        .unwrap();
    assert_eq!(setting, "off");
    let claimed = claims
        .run(async |conn| queue::claim(conn, 128, Duration::from_secs(30)).await)
        .await
        .unwrap();
    assert_eq!(claimed.len(), 128);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_completion_finds_its_rows_by_key_even_when_planned_on_an_empty_table() {
    let world = World::start().await;
    let pool = storage::connect(world.dispatch_db.url(), 4).await.unwrap();

    // The hazard: planned on an empty table, the completion scans
    // `deliveries` whole for every batch, however large it grows.
    let mut conn = plain(&pool).await;
    // Every pooled session is ended by the server if it idles inside a
    // transaction (a service cut off mid-transaction keeps no lock).
    assert_eq!(
        setting(&mut conn, "idle_in_transaction_session_timeout").await,
        "30s"
    );
    let plan = completion_plan(&mut conn).await;
    assert!(
        plan.contains("Seq Scan on deliveries"),
        "the hazard did not show (if this Postgres no longer plans so, this check can go):\n{plan}"
    );

    let mut completions = QueueConnection::new(pool.clone(), Role::Completions, TIMEOUT);
    let plan = completions
        .run(async |conn| Ok(completion_plan(conn).await))
        .await
        .unwrap();
    assert!(
        !plan.contains("Seq Scan on deliveries"),
        "the completion scans deliveries:\n{plan}"
    );
    assert!(
        plan.contains("Index Scan using deliveries_pkey"),
        "the completion does not use the primary key:\n{plan}"
    );
    // Outcomes stay durable.
    let setting = completions
        .run(async |conn| Ok(synchronous_commit(conn).await))
        .await
        .unwrap();
    assert_eq!(setting, "on");
}
