//! Issue 23, item 2: per-endpoint limits hold across dispatcher replicas.
//! A `Retry-After` one replica hears holds the endpoint on the others; two
//! replicas together stay within the endpoint's concurrency; an endpoint
//! throttled for long is announced once to its partner and the operators.

use std::time::{Duration, Instant};

use callbacks_proto::registry::v1 as rpb;
use test_support::{Reply, eventually};

use crate::{World, publish_one};

/// Waits until `replicas` replicas are alive and each has read the shared
/// tables a poll interval after `since` (a SQL expression for a time,
/// evaluated once): each has then adopted what was written before it.
async fn replicas_caught_up(db: &tokio_postgres::Client, replicas: i64, since: &str) {
    let since: String = db
        .query_one(&format!("SELECT ({since})::text"), &[])
        .await
        .unwrap()
        .get(0);
    let query = format!(
        "SELECT count(*) FILTER (WHERE seen_at > '{since}'::timestamptz + interval '250 milliseconds')
         FROM dispatcher_replicas"
    );
    eventually(
        "the replicas read the shared limits",
        Duration::from_secs(15),
        || {
            let query = query.clone();
            async move {
                let caught_up: i64 = db.query_one(&query, &[]).await.ok()?.get(0);
                (caught_up >= replicas).then_some(())
            }
        },
    )
    .await
    .unwrap();
}

/// Waits until `registration`'s hold is in `endpoint_limits`; answers the
/// SQL that reads when it was written.
pub(crate) async fn hold_shared(db: &tokio_postgres::Client, registration: &str) -> String {
    let written =
        format!("SELECT updated_at FROM endpoint_limits WHERE registration_id = '{registration}'");
    eventually("the hold shared", Duration::from_secs(10), || {
        let written = written.clone();
        async move { db.query_opt(&written, &[]).await.ok()?.map(|_| ()) }
    })
    .await
    .unwrap();
    written
}

/// Asserts that every request to `path` but the first (the throttled one,
/// at `throttled`) arrived at least `held` after it.
pub(crate) fn none_during_the_hold(world: &World, path: &str, throttled: Instant, held: Duration) {
    for request in &world.receiver.requests_to(path)[1..] {
        let after = request.received_at - throttled;
        assert!(
            after >= held,
            "attempted {after:?} after a 429 asking for {held:?}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_retry_after_heard_by_one_replica_holds_the_endpoint_on_the_other() {
    let mut world = World::start().await;
    world
        .receiver
        .respond("/busy", [Reply::status(429).header("retry-after", "4")]);
    let (partner, registration) = world
        .partner_with_callback(&world.receiver.url("/busy"), None)
        .await;
    let one = world.start_dispatcher(world.dispatcher_config()).await;
    let two = world.start_dispatcher(world.dispatcher_config()).await;
    let db = world.dispatch_db.client().await.unwrap();
    replicas_caught_up(&db, 2, "now()").await;

    publish_one(&one.client, &partner, r#"{"n":0}"#).await;
    let throttled = world
        .receiver
        .wait_for_requests_to("/busy", 1, Duration::from_secs(10))
        .await
        .unwrap()[0]
        .received_at;
    let written = hold_shared(&db, &registration).await;
    replicas_caught_up(&db, 2, &written).await;
    assert!(
        throttled.elapsed() < Duration::from_secs(3),
        "the hold was shared too late to test it: {:?}",
        throttled.elapsed()
    );

    // Published to the other replica, which attempts its own publishes at
    // once unless it holds the endpoint.
    for n in 1..5 {
        publish_one(&two.client, &partner, &format!(r#"{{"n":{n}}}"#)).await;
    }
    world
        .receiver
        .wait_for_requests_to("/busy", 6, Duration::from_secs(20))
        .await
        .unwrap();
    none_during_the_hold(&world, "/busy", throttled, Duration::from_millis(3900));
}

/// The most requests to `path` under way at once, for replies that each
/// take `reply_takes` (counted by arrival: a request is under way from its
/// arrival for that long).
fn most_at_once(world: &World, path: &str, reply_takes: Duration) -> usize {
    let arrivals: Vec<Instant> = world
        .receiver
        .requests_to(path)
        .iter()
        .map(|r| r.received_at)
        .collect();
    let window = reply_takes - Duration::from_millis(50);
    arrivals
        .iter()
        .map(|at| {
            arrivals
                .iter()
                .filter(|other| **other <= *at && *at - **other < window)
                .count()
        })
        .max()
        .unwrap_or(0)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_replicas_together_stay_within_the_endpoints_concurrency() {
    let mut world = World::start().await;
    let reply_takes = Duration::from_millis(600);
    world
        .receiver
        .set_default("/slow", Reply::ok().after(reply_takes));
    let (partner, _) = world
        .partner_with_callback(&world.receiver.url("/slow"), None)
        .await;
    let mut config = world.dispatcher_config();
    config.per_endpoint_concurrency = 4;
    config.lease = Duration::from_secs(20);
    let one = world.start_dispatcher(config.clone()).await;
    let two = world.start_dispatcher(config).await;
    let db = world.dispatch_db.client().await.unwrap();
    replicas_caught_up(&db, 2, "now()").await;

    for n in 0..24 {
        let client = if n % 2 == 0 { &one.client } else { &two.client };
        publish_one(client, &partner, &format!(r#"{{"n":{n}}}"#)).await;
    }
    world
        .receiver
        .wait_for_requests_to("/slow", 24, Duration::from_secs(60))
        .await
        .unwrap();
    let most = most_at_once(&world, "/slow", reply_takes);
    assert!(
        most <= 4,
        "{most} attempts at once to an endpoint allowed 4"
    );
    assert!(most >= 3, "only {most} at once: the replicas did not share");
}

async fn subscribe_to_health(world: &mut World, partner: &str, path: &str) {
    world
        .registry
        .upsert_callback(rpb::UpsertCallbackRequest {
            partner_id: partner.into(),
            notification_type: 900,
            callback_url: world.receiver.url(path),
            ..Default::default()
        })
        .await
        .unwrap();
}

/// The health notifications of `event` that reached `path`.
fn notices(world: &World, path: &str, event: &str) -> Vec<serde_json::Value> {
    world
        .receiver
        .requests_to(path)
        .iter()
        .map(|r| serde_json::from_slice::<serde_json::Value>(&r.body).unwrap())
        .filter(|body| body["event"] == event)
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_endpoint_throttled_for_long_is_announced_once_to_partner_and_operators() {
    let mut world = World::start().await;
    world
        .receiver
        .set_default("/busy", Reply::status(429).header("retry-after", "1"));
    let (partner, registration) = world
        .partner_with_callback(&world.receiver.url("/busy"), None)
        .await;
    subscribe_to_health(&mut world, &partner, "/health").await;
    let operators = world.partner().await;
    subscribe_to_health(&mut world, &operators, "/ops").await;
    let mut config = world.dispatcher_config();
    config.retry_schedule = "500ms,500ms,500ms,500ms,500ms,500ms,500ms,500ms".into();
    config.throttled_notice_after = Duration::from_secs(2);
    config.health_operator_partner = Some(operators.parse().unwrap());
    let one = world.start_dispatcher(config.clone()).await;
    let _two = world.start_dispatcher(config).await;

    publish_one(&one.client, &partner, r#"{"n":1}"#).await;
    eventually("the throttled notices", Duration::from_secs(30), || {
        let both = !notices(&world, "/health", "throttled").is_empty()
            && !notices(&world, "/ops", "throttled").is_empty();
        async move { both.then_some(()) }
    })
    .await
    .unwrap();
    let notice = &notices(&world, "/health", "throttled")[0];
    assert_eq!(notice["registrationId"], registration.as_str());
    assert_eq!(notice["partnerUniqueId"], partner.as_str());
    assert!(
        notice["reason"]
            .as_str()
            .unwrap()
            .starts_with("throttled since"),
        "{notice}"
    );
    // Both replicas' relays have looked again since the notice was taken.
    let db = world.dispatch_db.client().await.unwrap();
    let noticed =
        format!("SELECT noticed_at FROM endpoint_limits WHERE registration_id = '{registration}'");
    replicas_caught_up(&db, 2, &format!("({noticed}) + interval '1 second'")).await;
    assert_eq!(notices(&world, "/health", "throttled").len(), 1);
    assert_eq!(notices(&world, "/ops", "throttled").len(), 1);
}
