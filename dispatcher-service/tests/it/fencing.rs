//! The lease fences a worker that lost its claim: after its lease expired
//! and another worker claimed the delivery, its outcome write changes
//! nothing, and the outcome recorded is the new owner's.

use std::time::Duration;

use chrono::Utc;
use dispatcher_service::domain::DeliveryStatus;
use dispatcher_service::storage::models::{Lease, NewEvent};
use dispatcher_service::storage::queue::{Claimed, Head};
use dispatcher_service::storage::{self, queue};
use uuid::Uuid;

use crate::World;

fn attempt(status: i32) -> queue::AttemptRecord {
    queue::AttemptRecord {
        registration_id: Uuid::new_v4(),
        started_at: Utc::now(),
        duration_ms: 5,
        response_status: Some(status),
        response_excerpt: String::new(),
    }
}

/// A claim of up to `limit`, reading the whole due index.
async fn claim(conn: &mut diesel_async::AsyncPgConnection, limit: u32) -> Vec<Claimed> {
    queue::claim(
        conn,
        limit,
        Duration::from_secs(30),
        &mut Head::new(Duration::ZERO),
    )
    .await
    .unwrap()
}

/// Makes every lease run out now, rather than waiting for it.
async fn expire_leases(world: &World) {
    let db = world.dispatch_db.client().await.unwrap();
    db.execute(
        "UPDATE deliveries SET next_attempt_at = now() - interval '1 second'",
        &[],
    )
    .await
    .unwrap();
}

/// An attempt's outcome (HTTP `code`) written under `lease_token`.
fn outcome(
    delivery_id: Uuid,
    lease_token: Uuid,
    status: DeliveryStatus,
    code: i32,
) -> queue::Completion {
    queue::Completion {
        delivery_id,
        lease_token,
        status,
        next_attempt_at: Utc::now(),
        attempt: Some(attempt(code)),
        error: None,
    }
}

/// Stores one event with a subscriber (its delivery leased at insert, with
/// `lease`); answers its delivery's id.
async fn one_delivery(conn: &mut diesel_async::AsyncPgConnection, lease: Option<Lease>) -> Uuid {
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
    };
    storage::events::insert(conn, &[event]).await.unwrap()[0]
        .delivery_id
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_expired_lease_cannot_overwrite_the_new_owners_outcome() {
    let world = World::start().await;
    let pool = storage::connect(world.dispatch_db.url(), 4).await.unwrap();
    let mut conn = pool.get().await.unwrap();
    let delivery_id = one_delivery(&mut conn, None).await;

    // Worker A claims it.
    let a = claim(&mut conn, 10).await;
    assert_eq!(a.len(), 1);
    // While claimed, nobody else gets it.
    assert!(claim(&mut conn, 10).await.is_empty());

    // A stalls past its lease (made to expire here rather than waited for).
    expire_leases(&world).await;

    // Worker B takes over, with a new token, and records success.
    let b = claim(&mut conn, 10).await;
    assert_eq!(b.len(), 1);
    assert_ne!(b[0].lease_token, a[0].lease_token);
    let b_done = outcome(
        delivery_id,
        b[0].lease_token,
        DeliveryStatus::Delivered,
        200,
    );
    assert_eq!(
        queue::complete(&mut conn, &[b_done]).await.unwrap(),
        [(delivery_id, b[0].lease_token)]
    );

    // A finally answers with a failure: its write changes 0 rows.
    let a_done = queue::Completion {
        error: Some("HTTP 500".into()),
        ..outcome(delivery_id, a[0].lease_token, DeliveryStatus::Pending, 500)
    };
    assert!(
        queue::complete(&mut conn, &[a_done])
            .await
            .unwrap()
            .is_empty()
    );

    let db = world.dispatch_db.client().await.unwrap();
    let row = db
        .query_one(
            "SELECT status, attempt_count, last_error FROM deliveries WHERE id = $1",
            &[&delivery_id],
        )
        .await
        .unwrap();
    assert_eq!(row.get::<_, String>(0), "delivered");
    assert_eq!(row.get::<_, i32>(1), 1);
    assert_eq!(row.get::<_, Option<String>>(2), None);
    let attempts: Vec<i32> = db
        .query(
            "SELECT response_status FROM attempts WHERE delivery_id = $1",
            &[&delivery_id],
        )
        .await
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect();
    assert_eq!(attempts, [200], "only the owner's attempt is logged");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_old_claim_and_its_successor_in_one_batch() {
    let world = World::start().await;
    let pool = storage::connect(world.dispatch_db.url(), 4).await.unwrap();
    let mut conn = pool.get().await.unwrap();
    let delivery_id = one_delivery(&mut conn, None).await;
    let old = claim(&mut conn, 1).await.remove(0);
    expire_leases(&world).await;
    let new = claim(&mut conn, 1).await.remove(0);

    // Both outcomes reach the completer together (one process, both claims).
    let applied = queue::complete(
        &mut conn,
        &[
            outcome(delivery_id, old.lease_token, DeliveryStatus::Pending, 500),
            outcome(delivery_id, new.lease_token, DeliveryStatus::Delivered, 200),
        ],
    )
    .await
    .unwrap();
    assert_eq!(
        applied,
        [(delivery_id, new.lease_token)],
        "only the current claim's outcome lands"
    );
    let db = world.dispatch_db.client().await.unwrap();
    let logged: Vec<i32> = db
        .query(
            "SELECT response_status FROM attempts WHERE delivery_id = $1",
            &[&delivery_id],
        )
        .await
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect();
    assert_eq!(
        logged,
        [200],
        "the fenced-off attempt is not logged in its place"
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
        claim(&mut conn, 10).await.is_empty(),
        "a handed-off delivery must not be claimed while its lease runs"
    );

    // The publishing process dies before attempting it: once the lease has
    // run out (made to here), a claim takes it with a token of its own...
    expire_leases(&world).await;
    let claimed = claim(&mut conn, 10).await;
    assert_eq!(claimed.len(), 1);
    assert_eq!(claimed[0].id, delivery_id);
    assert_eq!(&claimed[0].payload[..], b"{}");
    assert_ne!(claimed[0].lease_token, handed_off.token);

    // ...and the first lease can no longer write an outcome.
    let late = outcome(
        delivery_id,
        handed_off.token,
        DeliveryStatus::Delivered,
        200,
    );
    assert!(
        queue::complete(&mut conn, &[late])
            .await
            .unwrap()
            .is_empty()
    );
    let on_time = outcome(
        delivery_id,
        claimed[0].lease_token,
        DeliveryStatus::Delivered,
        200,
    );
    assert_eq!(
        queue::complete(&mut conn, &[on_time]).await.unwrap(),
        [(delivery_id, claimed[0].lease_token)]
    );
}
