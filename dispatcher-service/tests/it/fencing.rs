//! What a claim holds fences the outcome written for it: after a worker's
//! batch ran out and a sweep took its delivery over, its outcome write
//! changes nothing, and the outcome recorded is the new owner's; an outcome
//! written twice counts once; and a hand-off's holder loses the delivery
//! to a claim once its lease ends.

use std::time::Duration;

use chrono::Utc;
use diesel_async::AsyncPgConnection;
use dispatcher_service::domain::DeliveryStatus;
use dispatcher_service::domain::queue::{AttemptRecord, Claim, Hold, Outcome};
use dispatcher_service::storage::models::{Lease, NewEvent};
use dispatcher_service::storage::{self, queue};
use uuid::Uuid;

use crate::World;

const LEASE: Duration = Duration::from_secs(30);

fn attempt(status: i32) -> AttemptRecord {
    AttemptRecord {
        registration_id: Uuid::new_v4(),
        started_at: Utc::now(),
        duration_ms: 5,
        response_status: Some(status),
        response_excerpt: String::new(),
        failure: None,
    }
}

/// A claim of up to `limit` from the cursor.
pub(crate) async fn claim(conn: &mut AsyncPgConnection, limit: u32) -> Vec<Claim> {
    queue::claim(conn, limit, LEASE).await.unwrap()
}

/// A sweep of everything behind the cursor.
pub(crate) async fn sweep(conn: &mut AsyncPgConnection, limit: u32) -> Vec<Claim> {
    queue::sweep(conn, limit, LEASE, chrono::DateTime::UNIX_EPOCH)
        .await
        .unwrap()
}

/// Makes every batch's lease run out now, rather than waiting for it.
pub(crate) async fn expire_batches(world: &World) {
    let db = world.dispatch_db.client().await.unwrap();
    db.execute("UPDATE claims SET until = now() - interval '1 second'", &[])
        .await
        .unwrap();
}

/// An attempt's outcome (HTTP `code`) written for `claimed`.
fn outcome(claimed: &Claim, status: DeliveryStatus, code: i32) -> Outcome {
    Outcome {
        delivery_id: claimed.id,
        hold: claimed.hold,
        status,
        next_attempt_at: Utc::now(),
        attempt: Some(attempt(code)),
        error: None,
        ends_lane_turn: None,
    }
}

/// Writes `claimed`'s outcome (HTTP `code`) and deletes the batches
/// `finished`; answers the outcomes that applied.
async fn write_outcome(
    conn: &mut AsyncPgConnection,
    claimed: &Claim,
    status: DeliveryStatus,
    code: i32,
    finished: &[Uuid],
) -> Vec<(Uuid, Uuid)> {
    queue::complete(conn, &[outcome(claimed, status, code)], finished)
        .await
        .unwrap()
}

/// Stores one event with a subscriber (its delivery leased at insert, with
/// `lease`); answers its delivery's id.
pub(crate) async fn one_delivery(conn: &mut AsyncPgConnection, lease: Option<Lease>) -> Uuid {
    let event = NewEvent {
        id: Uuid::now_v7(),
        partner_id: Uuid::new_v4(),
        notification_type: 5,
        payload: b"{}".to_vec().into(),
        idempotency_key: None,
        is_test: false,
        has_subscriber: true,
        occurred_at: Utc::now(),
        trace_context: None,
        lease,
        ordering_key: None,
    };
    storage::events::insert(conn, &[event]).await.unwrap()[0]
        .delivery_id
        .unwrap()
}

/// A fresh world with one delivery, claimed from the cursor, and a
/// connection.
async fn one_claimed() -> (World, AsyncPgConnection, Claim) {
    let world = World::start().await;
    let pool = storage::connect(world.dispatch_db.url(), 1).await.unwrap();
    let mut conn = pool.dedicated_connection().await.unwrap();
    let delivery_id = one_delivery(&mut conn, None).await;
    let mut claimed = claim(&mut conn, 10).await;
    assert_eq!(claimed.len(), 1);
    assert_eq!(claimed[0].id, delivery_id);
    (world, conn, claimed.remove(0))
}

/// The delivery's status, attempt count and logged response statuses.
async fn recorded(world: &World, id: Uuid) -> (String, i32, Vec<i32>) {
    let db = world.dispatch_db.client().await.unwrap();
    let row = db
        .query_one(
            "SELECT status, attempt_count FROM deliveries WHERE id = $1",
            &[&id],
        )
        .await
        .unwrap();
    let logged = db
        .query(
            "SELECT response_status FROM attempts WHERE delivery_id = $1 ORDER BY attempt_number",
            &[&id],
        )
        .await
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect();
    (row.get(0), row.get(1), logged)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_expired_lease_cannot_overwrite_the_new_owners_outcome() {
    // Worker A claims it.
    let (world, mut conn, a) = one_claimed().await;
    let delivery_id = a.id;
    // While A's batch is live, neither a claim nor a sweep takes it.
    assert!(claim(&mut conn, 10).await.is_empty());
    assert!(sweep(&mut conn, 10).await.is_empty());

    // A stalls past its lease (made to end here rather than waited for).
    expire_batches(&world).await;

    // A sweep takes it over for worker B, with a new token, and B records
    // success.
    let b = sweep(&mut conn, 10).await;
    assert_eq!(b.len(), 1);
    assert_eq!(b[0].id, delivery_id);
    assert_ne!(b[0].hold.token, a.hold.token);
    assert_eq!(
        write_outcome(&mut conn, &b[0], DeliveryStatus::Delivered, 200, &[]).await,
        [(delivery_id, b[0].hold.token)]
    );

    // A finally answers with a failure: its write changes 0 rows.
    let a_done = Outcome {
        error: Some("HTTP 500".into()),
        ..outcome(&a, DeliveryStatus::Pending, 500)
    };
    assert!(
        queue::complete(&mut conn, &[a_done], &[])
            .await
            .unwrap()
            .is_empty()
    );
    assert_eq!(
        recorded(&world, delivery_id).await,
        ("delivered".to_owned(), 1, vec![200]),
        "only the owner's attempt is logged"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_old_claim_and_its_successor_in_one_batch() {
    let (world, mut conn, old) = one_claimed().await;
    let delivery_id = old.id;
    expire_batches(&world).await;
    let new = sweep(&mut conn, 1).await.remove(0);

    // Both outcomes reach the completer together (one process, both claims).
    let applied = queue::complete(
        &mut conn,
        &[
            outcome(&old, DeliveryStatus::Pending, 500),
            outcome(&new, DeliveryStatus::Delivered, 200),
        ],
        &[],
    )
    .await
    .unwrap();
    assert_eq!(
        applied,
        [(delivery_id, new.hold.token)],
        "only the current claim's outcome lands"
    );
    assert_eq!(
        recorded(&world, delivery_id).await.2,
        [200],
        "the fenced-off attempt is not logged in its place"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stalled_worker_whose_outcome_lands_first_keeps_it() {
    let (world, mut conn, a) = one_claimed().await;
    let delivery_id = a.id;
    expire_batches(&world).await;

    // A's lease has ended, but nobody has taken the delivery over yet: its
    // outcome, a real attempt, lands.
    assert_eq!(
        write_outcome(&mut conn, &a, DeliveryStatus::Delivered, 200, &[]).await,
        [(delivery_id, a.hold.token)]
    );
    // The sweep that follows finds nothing to take over, and deletes the
    // ended batch.
    assert!(sweep(&mut conn, 10).await.is_empty());
    let db = world.dispatch_db.client().await.unwrap();
    let batches: i64 = db
        .query_one("SELECT count(*) FROM claims", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(batches, 0);
    assert_eq!(
        recorded(&world, delivery_id).await,
        ("delivered".to_owned(), 1, vec![200])
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_outcome_written_twice_counts_once_and_its_batch_goes_with_it() {
    let (world, mut conn, claimed) = one_claimed().await;
    let delivery_id = claimed.id;
    let db = world.dispatch_db.client().await.unwrap();
    let batches = async || -> i64 {
        db.query_one("SELECT count(*) FROM claims", &[])
            .await
            .unwrap()
            .get(0)
    };
    assert_eq!(batches().await, 1);

    // A retry to come: the outcome lands once and finishes the batch...
    let failed = outcome(&claimed, DeliveryStatus::Pending, 500);
    let token = [claimed.hold.token];
    assert_eq!(
        queue::complete(&mut conn, std::slice::from_ref(&failed), &token)
            .await
            .unwrap(),
        [(delivery_id, claimed.hold.token)]
    );
    assert_eq!(batches().await, 0);
    // ...and written again (the completer retrying a write whose answer
    // it lost), it changes nothing.
    assert!(
        queue::complete(&mut conn, &[failed], &token)
            .await
            .unwrap()
            .is_empty()
    );
    assert_eq!(
        recorded(&world, delivery_id).await,
        ("pending".to_owned(), 1, vec![500])
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_delivery_leased_at_publish_is_claimed_only_when_its_lease_ends() {
    let world = World::start().await;
    let pool = storage::connect(world.dispatch_db.url(), 4).await.unwrap();
    let mut conn = pool.get().await.unwrap();
    // Stored leased to the publishing process (its hand-off).
    let handed_off = Lease {
        token: Uuid::new_v4(),
        length: Duration::from_secs(30),
    };
    let delivery_id = one_delivery(&mut conn, Some(handed_off)).await;
    assert!(
        claim(&mut conn, 10).await.is_empty() && sweep(&mut conn, 10).await.is_empty(),
        "a handed-off delivery must not be claimed while its lease runs"
    );

    // The publishing process dies before attempting it: once the lease has
    // run out (made to here), a claim takes it with a token of its own...
    let db = world.dispatch_db.client().await.unwrap();
    db.execute(
        "UPDATE deliveries SET next_attempt_at = now() - interval '1 second'",
        &[],
    )
    .await
    .unwrap();
    let claimed = claim(&mut conn, 10).await;
    assert_eq!(claimed.len(), 1);
    assert_eq!(claimed[0].id, delivery_id);
    assert_eq!(&claimed[0].payload[..], b"{}");
    assert_ne!(claimed[0].hold.token, handed_off.token);

    // ...and the first lease can no longer write an outcome.
    let late = Outcome {
        hold: Hold::handed_off(handed_off.token),
        ..outcome(&claimed[0], DeliveryStatus::Delivered, 200)
    };
    assert!(
        queue::complete(&mut conn, &[late], &[])
            .await
            .unwrap()
            .is_empty()
    );
    assert_eq!(
        write_outcome(&mut conn, &claimed[0], DeliveryStatus::Delivered, 200, &[]).await,
        [(delivery_id, claimed[0].hold.token)]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hand_off_whose_holder_answers_during_the_claim_is_left_out_of_it() {
    use diesel_async::SimpleAsyncConnection;
    let world = World::start().await;
    let pool = storage::connect(world.dispatch_db.url(), 4).await.unwrap();
    let mut conn = pool.dedicated_connection().await.unwrap();
    let token = Uuid::new_v4();
    let lease = Lease {
        token,
        length: Duration::from_secs(30),
    };
    let delivery_id = one_delivery(&mut conn, Some(lease)).await;
    // Its lease has ended (made to here), so a claim may take it...
    let db = world.dispatch_db.client().await.unwrap();
    db.execute(
        "UPDATE deliveries SET next_attempt_at = now() - interval '1 second'",
        &[],
    )
    .await
    .unwrap();
    // ...but its holder, late, is writing its outcome: a retry in five
    // minutes, not committed yet.
    let mut holder = pool.dedicated_connection().await.unwrap();
    holder.batch_execute("BEGIN").await.unwrap();
    let retry = Outcome {
        delivery_id,
        hold: Hold::handed_off(token),
        status: DeliveryStatus::Pending,
        next_attempt_at: Utc::now() + chrono::Duration::minutes(5),
        attempt: Some(attempt(500)),
        error: None,
        ends_lane_turn: None,
    };
    assert_eq!(
        queue::complete(&mut holder, &[retry], &[]).await.unwrap(),
        [(delivery_id, token)]
    );

    // The claim reads the row as still due and waits for the holder's lock.
    let claiming = tokio::spawn(async move { claim(&mut conn, 10).await });
    test_support::eventually(
        "the claim to wait on the row",
        Duration::from_secs(20),
        || async {
            let waiting: i64 = db
                .query_one(
                    "SELECT count(*) FROM pg_stat_activity
                 WHERE datname = current_database() AND wait_event_type = 'Lock'",
                    &[],
                )
                .await
                .unwrap()
                .get(0);
            (waiting == 1).then_some(())
        },
    )
    .await
    .unwrap();
    holder.batch_execute("COMMIT").await.unwrap();

    // Once the outcome lands, the claim leaves the delivery out: it has
    // changed since the claim read it.
    assert!(claiming.await.unwrap().is_empty());
    assert_eq!(
        recorded(&world, delivery_id).await,
        ("pending".to_owned(), 1, vec![500])
    );
    let batches: i64 = db
        .query_one("SELECT count(*) FROM claims", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(batches, 0, "an empty claim makes no batch");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sweep_passes_over_a_delivery_whose_outcome_is_being_written() {
    use diesel_async::SimpleAsyncConnection;
    let (world, mut conn, stalled) = one_claimed().await;
    expire_batches(&world).await;
    // The stalled worker writes its outcome, a release due at once, and
    // has not committed yet.
    let pool = storage::connect(world.dispatch_db.url(), 1).await.unwrap();
    let mut holder = pool.dedicated_connection().await.unwrap();
    holder.batch_execute("BEGIN").await.unwrap();
    let release = Outcome {
        attempt: None,
        ..outcome(&stalled, DeliveryStatus::Pending, 0)
    };
    assert_eq!(
        queue::complete(&mut holder, &[release], &[]).await.unwrap(),
        [(stalled.id, stalled.hold.token)]
    );
    // A sweep does not wait for it (it holds the cursor, and every claim
    // would wait with it): it takes nothing this time...
    let swept = tokio::time::timeout(Duration::from_secs(10), sweep(&mut conn, 10))
        .await
        .expect("the sweep waited for the row being written");
    assert!(swept.is_empty());
    holder.batch_execute("COMMIT").await.unwrap();
    // ...and, released due now, ahead of the cursor, the delivery goes to
    // the next claim.
    assert!(sweep(&mut conn, 10).await.is_empty());
    assert_eq!(
        claim(&mut conn, 10)
            .await
            .iter()
            .map(|c| c.id)
            .collect::<Vec<_>>(),
        [stalled.id]
    );
}

/// A claim lost in a database crash (claims commit asynchronously): its
/// `claims` row is gone and the cursor is back where it was, so the
/// delivery is claimed again at the same due time. The lost claim's holder
/// no longer holds it: its outcome changes nothing, and the new holder's
/// is the one recorded. (Found by the queue's model: without the check of
/// the batch's row, the lost claim's outcome landed over the new holder's
/// hold; `docs/decisions/0004-the-delivery-queue-is-model-checked.md`.)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_claim_lost_in_a_database_crash_fences_its_holder() {
    let (world, mut conn, lost) = one_claimed().await;
    let delivery_id = lost.id;
    // What a crash before the WAL flush leaves: no batch, the cursor back.
    let db = world.dispatch_db.client().await.unwrap();
    db.batch_execute(
        "DELETE FROM claims;
         UPDATE queue_cursor SET due = '-infinity', id = '00000000-0000-0000-0000-000000000000'",
    )
    .await
    .unwrap();

    let again = claim(&mut conn, 10).await;
    assert_eq!(again.len(), 1);
    assert_eq!(again[0].id, delivery_id);
    assert_eq!(again[0].hold.was_due, lost.hold.was_due);

    // The lost claim's holder answers first, and is fenced off...
    assert!(
        write_outcome(
            &mut conn,
            &lost,
            DeliveryStatus::Failed,
            500,
            &[lost.hold.token]
        )
        .await
        .is_empty()
    );
    // ...the new holder's outcome lands.
    assert_eq!(
        write_outcome(
            &mut conn,
            &again[0],
            DeliveryStatus::Delivered,
            200,
            &[again[0].hold.token]
        )
        .await,
        [(delivery_id, again[0].hold.token)]
    );
    assert_eq!(
        recorded(&world, delivery_id).await,
        ("delivered".to_owned(), 1, vec![200])
    );
}
