//! Claims go on from the cursor, the exact place where the last one
//! stopped: past every delivery in flight, never taking one twice, across
//! replicas; and what lands behind the cursor (a late commit, a crashed
//! worker's batch) is taken by a sweep.

use std::collections::HashSet;
use std::time::Duration;

use diesel_async::AsyncPgConnection;
use dispatcher_service::domain::DeliveryStatus;
use dispatcher_service::domain::queue::{Claim, Outcome};
use dispatcher_service::storage;
use dispatcher_service::storage::queue::{self, QueueConnection, Role};
use uuid::Uuid;

use crate::World;
use crate::fencing::{claim, expire_batches, one_delivery, sweep};
use crate::plans::{Plan, due_deliveries, explain};

/// A fresh world with `n` deliveries due, one a second, the latest a
/// second ago, and a connection to claim them on.
async fn queue_of(n: i32) -> (World, AsyncPgConnection) {
    let world = World::start().await;
    let pool = storage::connect(world.dispatch_db.url(), 4).await.unwrap();
    due_deliveries(&world, n).await;
    let conn = pool.dedicated_connection().await.unwrap();
    (world, conn)
}

fn ids(claimed: &[Claim]) -> Vec<Uuid> {
    claimed.iter().map(|c| c.id).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_claim_goes_on_from_the_cursor_and_a_sweep_takes_what_committed_behind_it() {
    // Due 1 to 20 seconds ago.
    let (world, mut conn) = queue_of(20).await;
    let first = claim(&mut conn, 5).await;
    assert_eq!(first.len(), 5);

    // A row due a minute ago appears: one whose publish committed long
    // after it began, say. It is behind the cursor.
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

    // Claims from the cursor take the rest, oldest first, but not it...
    let rest = claim(&mut conn, 100).await;
    assert_eq!(rest.len(), 15);
    assert!(!ids(&rest).contains(&late));
    let all: Vec<Uuid> = ids(&first).into_iter().chain(ids(&rest)).collect();
    let in_due_order: Vec<Uuid> = db
        .query(
            "SELECT id FROM deliveries WHERE id <> $1 ORDER BY next_attempt_at, id",
            &[&late],
        )
        .await
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect();
    assert_eq!(all, in_due_order);
    assert!(claim(&mut conn, 100).await.is_empty());

    // ...which a sweep takes: not one from after its due time, but one from
    // it on, and leaves every delivery in flight alone.
    let micros: i64 = db
        .query_one(
            "SELECT (extract(epoch FROM next_attempt_at) * 1000000)::bigint FROM deliveries WHERE id = $1",
            &[&late],
        )
        .await
        .unwrap()
        .get(0);
    let due = chrono::DateTime::from_timestamp_micros(micros).unwrap();
    let after = queue::sweep(
        &mut conn,
        100,
        Duration::from_secs(30),
        due + chrono::Duration::milliseconds(1),
    )
    .await
    .unwrap();
    assert!(after.is_empty());
    let found = queue::sweep(&mut conn, 100, Duration::from_secs(30), due)
        .await
        .unwrap();
    assert_eq!(ids(&found), [late]);
    assert!(sweep(&mut conn, 100).await.is_empty());
}

/// The index pages that `sql`, run with `arguments` (and rolled back),
/// reads in the due index.
async fn due_index_pages_read(conn: &mut AsyncPgConnection, sql: &str, arguments: &str) -> u64 {
    let plan = explain(
        conn,
        sql,
        arguments,
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
async fn a_claim_steps_over_no_delivery_in_flight() {
    let (world, mut conn) = queue_of(22_000).await;
    // Twenty thousand in flight, claimed in claims of 100. They stay
    // pending in the due index, in front of what is left.
    for _ in 0..200 {
        assert_eq!(claim(&mut conn, 100).await.len(), 100);
    }
    // A claim reads only the pages it takes its rows from; a sweep of
    // everything behind the cursor reads past all twenty thousand. Both
    // as the dispatcher runs them, on a connection for claims.
    let pool = storage::connect(world.dispatch_db.url(), 1).await.unwrap();
    let mut claims = QueueConnection::new(pool, Role::Claims, Duration::from_secs(30));
    let token = Uuid::new_v4();
    let (from_cursor, behind) = claims
        .run(async |conn| {
            let claim = format!("100, 30000, '{token}'");
            let sweep = format!("100, 30000, '{token}', '1970-01-01Z'");
            Ok((
                due_index_pages_read(conn, queue::CLAIM, &claim).await,
                due_index_pages_read(conn, queue::SWEEP, &sweep).await,
            ))
        })
        .await
        .unwrap();
    // Twenty thousand entries fill some eighty index pages; a hundred rows
    // lie on a few heap pages.
    assert!(
        from_cursor <= 10 && behind >= from_cursor + 50,
        "from the cursor {from_cursor} pages, behind it {behind}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_crashed_workers_batch_is_taken_over_for_what_it_left_pending() {
    let (_world, mut conn) = queue_of(10).await;
    let crashed = claim(&mut conn, 10).await;
    assert_eq!(crashed.len(), 10);
    // Before it crashed, its worker wrote four outcomes: two delivered,
    // two to retry in an hour.
    let written: Vec<Outcome> = crashed[..4]
        .iter()
        .enumerate()
        .map(|(n, c)| Outcome {
            delivery_id: c.id,
            hold: c.hold,
            status: if n < 2 {
                DeliveryStatus::Delivered
            } else {
                DeliveryStatus::Pending
            },
            next_attempt_at: chrono::Utc::now() + chrono::Duration::hours(1),
            attempt: None,
            error: None,
            ends_lane_turn: None,
        })
        .collect();
    assert_eq!(
        queue::complete(&mut conn, &written, &[])
            .await
            .unwrap()
            .len(),
        4
    );
    // Until its lease ends, nothing is taken over.
    assert!(sweep(&mut conn, 100).await.is_empty());
    expire_batches(&_world).await;
    let taken: HashSet<Uuid> = ids(&sweep(&mut conn, 100).await).into_iter().collect();
    assert_eq!(taken, ids(&crashed[4..]).into_iter().collect());
    assert!(sweep(&mut conn, 100).await.is_empty(), "taken over once");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replicas_claiming_and_sweeping_while_events_are_published_take_each_once() {
    let (world, _) = queue_of(3_000).await;
    let pool = storage::connect(world.dispatch_db.url(), 8).await.unwrap();
    // Publishes go on meanwhile, each in a transaction of its own: some
    // commit after a claim has passed their due time.
    let publisher = {
        let pool = pool.clone();
        tokio::spawn(async move {
            let mut conn = pool.get().await.unwrap();
            let mut published = Vec::new();
            for _ in 0..300 {
                published.push(one_delivery(&mut conn, None).await);
            }
            published
        })
    };
    // Two replicas, each claiming and now and then sweeping, until the
    // publisher is done and a round finds nothing.
    let replica =
        |pool: storage::DbPool, publisher_done: std::sync::Arc<std::sync::atomic::AtomicBool>| {
            tokio::spawn(async move {
                let mut conn = pool.dedicated_connection().await.unwrap();
                let mut taken = Vec::new();
                for round in 0.. {
                    let done = publisher_done.load(std::sync::atomic::Ordering::SeqCst);
                    let claimed = claim(&mut conn, 50).await;
                    let swept = if round % 4 == 0 || done {
                        sweep(&mut conn, 50).await
                    } else {
                        Vec::new()
                    };
                    let empty = claimed.is_empty() && swept.is_empty();
                    taken.extend(ids(&claimed));
                    taken.extend(ids(&swept));
                    if done && empty {
                        break;
                    }
                }
                taken
            })
        };
    let done = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let a = replica(pool.clone(), done.clone());
    let b = replica(pool.clone(), done.clone());
    let published = tokio::time::timeout(Duration::from_secs(120), publisher)
        .await
        .expect("publishing took over two minutes")
        .unwrap();
    done.store(true, std::sync::atomic::Ordering::SeqCst);
    let mut taken = a.await.unwrap();
    taken.extend(b.await.unwrap());

    let db = world.dispatch_db.client().await.unwrap();
    let every: HashSet<Uuid> = db
        .query("SELECT id FROM deliveries", &[])
        .await
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect();
    assert_eq!(every.len(), 3_300);
    assert!(published.iter().all(|id| every.contains(id)));
    let unique: HashSet<Uuid> = taken.iter().copied().collect();
    assert_eq!(unique.len(), taken.len(), "a delivery was taken twice");
    assert_eq!(unique, every, "a delivery was never taken");
}

/// A dispatcher cut off from its database in the middle of a sweep leaves
/// its transaction open, holding the cursor's row lock, on a server that
/// cannot tell it is gone. The server ends that session once it has idled
/// for the connection's timeout, and the other replicas' claims go on.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sweep_cut_off_holding_the_cursor_stalls_claims_only_for_its_timeout() {
    use diesel_async::RunQueryDsl;
    let (world, _) = queue_of(10).await;
    let pool = storage::connect(world.dispatch_db.url(), 2).await.unwrap();
    let timeout = Duration::from_secs(1);
    let mut cut_off = QueueConnection::new(pool.clone(), Role::Claims, timeout);
    cut_off
        .run(async |conn| {
            // What a sweep sends before its statement; no `COMMIT` follows.
            diesel::sql_query("BEGIN").execute(conn).await?;
            diesel::sql_query("SELECT 1 FROM queue_cursor FOR UPDATE")
                .execute(conn)
                .await?;
            Ok(())
        })
        .await
        .unwrap();
    // Each try waits for the lock for up to the timeout; the first ones
    // find it held.
    let mut other = QueueConnection::new(pool, Role::Claims, timeout);
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    loop {
        let tried = other
            .run(async |conn| queue::claim(conn, 100, Duration::from_secs(30)).await)
            .await;
        match tried {
            Ok(_) => break,
            Err(error) if std::time::Instant::now() < deadline => {
                eprintln!("claim refused while the cursor is held: {error}")
            }
            Err(error) => panic!("the cursor stayed held: {error}"),
        }
    }
    // A try that timed out may still have claimed once the lock was free
    // (its statement had reached the server): every delivery is in a
    // batch, whichever.
    let db = world.dispatch_db.client().await.unwrap();
    let batched: i64 = db
        .query_one(
            "SELECT count(DISTINCT id) FROM claims, unnest(ids) AS id",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(batched, 10);
}
