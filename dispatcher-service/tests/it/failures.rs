//! When the endpoint does not confirm: error state set and cleared (seed
//! 003), timeouts and refused connections retried and recorded with their
//! reasons, Retry-After honoured, the schedule ending in `failed`, and 410
//! Gone deactivating the registration.

use std::time::Duration;

use callbacks_proto::dispatcher::v1 as dpb;
use test_support::{Reply, eventually};

use crate::{World, delivery_with_status, publish, publish_one, registration_when};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_500_sets_the_error_state_and_a_success_clears_it() {
    let mut world = World::start().await;
    world
        .receiver
        .respond("/flaky", [Reply::status(500).body("database down")]);
    let url = world.receiver.url("/flaky");
    let (partner, _) = world.partner_with_callback(&url, None).await;
    let mut config = world.dispatcher_config();
    // Long enough a pause to see the error state before the retry.
    config.retry_schedule = "1500ms".into();
    // The URL changes below must be seen by the very next publish.
    config.registry_cache_ttl = Duration::ZERO;
    let dispatcher = world.start_dispatcher(config).await;
    let id = dispatcher
        .client
        .clone()
        .publish(publish(&partner, r#"{"n":1}"#))
        .await
        .unwrap()
        .into_inner()
        .delivery_id
        .unwrap();

    let failing =
        registration_when(&world, &partner, "the error state", |r| r.is_in_error_state).await;
    assert_eq!(failing.error_state_reason.as_deref(), Some("HTTP 500"));
    assert!(failing.detected_error_state_at.is_some());

    let delivery = delivery_with_status(
        &dispatcher.client,
        &id,
        dpb::DeliveryStatus::Delivered,
        Duration::from_secs(10),
    )
    .await;
    assert_eq!(delivery.attempts.len(), 2);
    assert_eq!(delivery.attempts[0].response_status, Some(500));
    assert_eq!(delivery.attempts[0].error.as_deref(), Some("HTTP 500"));
    assert_eq!(delivery.attempts[0].response_excerpt, "database down");
    assert_eq!(
        delivery.attempts[0].failure_kind.as_deref(),
        Some("http_status")
    );
    assert_eq!(delivery.attempts[1].response_status, Some(200));
    assert_eq!(
        delivery.attempts[1].failure_kind, None,
        "a success has no kind"
    );
    registration_when(&world, &partner, "the error state to clear", |r| {
        !r.is_in_error_state && r.error_state_reason.is_none()
    })
    .await;

    // Failing again, then a new URL: reset at once.
    world.receiver.set_default("/broken", Reply::status(503));
    let broken = world.receiver.url("/broken");
    world.set_callback(&partner, &broken, None).await;
    dispatcher
        .client
        .clone()
        .publish(publish(&partner, r#"{"n":2}"#))
        .await
        .unwrap();
    world
        .receiver
        .wait_for_requests_to("/broken", 1, Duration::from_secs(5))
        .await
        .unwrap();
    registration_when(&world, &partner, "the error state again", |r| {
        r.is_in_error_state
    })
    .await;
    let fixed = world.receiver.url("/fixed");
    world.set_callback(&partner, &fixed, None).await;
    assert!(
        !world
            .registration(&partner)
            .await
            .unwrap()
            .is_in_error_state,
        "a new URL resets the error state"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn timeouts_and_refused_connections_are_retried_and_recorded() {
    let mut world = World::start().await;
    world.receiver.set_default("/slow", Reply::hang());
    let slow = world.receiver.url("/slow");
    let (slow_partner, _) = world.partner_with_callback(&slow, None).await;
    // A port nothing listens on.
    let closed = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap();
    let (refused_partner, _) = world
        .partner_with_callback(&format!("https://{closed}/cb"), None)
        .await;
    let dispatcher = world.start_dispatcher(world.dispatcher_config()).await;
    let client = dispatcher.client.clone();
    let slow_id = publish_one(&client, &slow_partner, "{}").await;
    let refused_id = publish_one(&client, &refused_partner, "{}").await;

    // Schedule "200ms,200ms": three attempts, then failed.
    let slow = delivery_with_status(
        &client,
        &slow_id,
        dpb::DeliveryStatus::Failed,
        Duration::from_secs(15),
    )
    .await;
    assert_eq!(slow.attempts.len(), 3);
    for attempt in &slow.attempts {
        assert_eq!(attempt.error.as_deref(), Some("timeout after 1 s"));
        assert_eq!(attempt.failure_kind.as_deref(), Some("timeout"));
        assert!(attempt.duration_ms >= 900, "{attempt:?}");
    }
    assert_eq!(
        world.receiver.requests_to("/slow").len(),
        3,
        "each attempt reached the endpoint"
    );

    let refused = delivery_with_status(
        &client,
        &refused_id,
        dpb::DeliveryStatus::Failed,
        Duration::from_secs(10),
    )
    .await;
    assert_eq!(refused.attempts.len(), 3);
    assert!(
        refused
            .attempts
            .iter()
            .all(|a| a.error.as_deref() == Some("connection refused")
                && a.failure_kind.as_deref() == Some("connection_refused")
                && a.response_status.is_none())
    );
    let registration = world.registration(&refused_partner).await.unwrap();
    assert_eq!(
        registration.error_state_reason.as_deref(),
        Some("connection refused")
    );
    // The attempt log keeps each failure's kind, as a stable code.
    let db = world.dispatch_db.client().await.unwrap();
    for (id, kind) in [(&slow_id, "timeout"), (&refused_id, "connection_refused")] {
        let kinds: Vec<Option<String>> = db
            .query(
                "SELECT failure_kind FROM attempts WHERE delivery_id = $1::text::uuid",
                &[id],
            )
            .await
            .unwrap()
            .iter()
            .map(|row| row.get(0))
            .collect();
        assert_eq!(kinds, vec![Some(kind.to_owned()); 3], "{id}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retry_after_is_honoured() {
    let mut world = World::start().await;
    world
        .receiver
        .respond("/busy", [Reply::status(429).header("retry-after", "2")]);
    let url = world.receiver.url("/busy");
    let (partner, _) = world.partner_with_callback(&url, None).await;
    let dispatcher = world.start_dispatcher(world.dispatcher_config()).await;
    dispatcher
        .client
        .clone()
        .publish(publish(&partner, "{}"))
        .await
        .unwrap();
    let requests = world
        .receiver
        .wait_for_requests(2, Duration::from_secs(10))
        .await
        .unwrap();
    let gap = requests[1].received_at - requests[0].received_at;
    // The schedule alone would retry after 200 ms.
    assert!(gap >= Duration::from_millis(1900), "retried after {gap:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_schedule_ends_in_failed() {
    let mut world = World::start().await;
    world.receiver.set_default("/down", Reply::status(500));
    let url = world.receiver.url("/down");
    let (partner, _) = world.partner_with_callback(&url, None).await;
    let dispatcher = world.start_dispatcher(world.dispatcher_config()).await;
    let id = publish_one(&dispatcher.client, &partner, "{}").await;
    let failed = delivery_with_status(
        &dispatcher.client,
        &id,
        dpb::DeliveryStatus::Failed,
        Duration::from_secs(10),
    )
    .await;
    assert_eq!(failed.attempt_count, 3);
    assert!(failed.next_attempt_at.is_none());
    // No attempt after the last one.
    assert_eq!(world.receiver.requests_to("/down").len(), 3);
    let registration = world.registration(&partner).await.unwrap();
    assert!(registration.is_in_error_state);
    assert!(
        registration.is_active,
        "the error state never stops a registration"
    );
}

/// Issue 23, item 4: a registration's own retry policy replaces the
/// dispatcher's schedule, and a change to it applies from the next event.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_registrations_retry_policy_replaces_the_schedule() {
    use callbacks_proto::registry::v1 as rpb;
    let mut world = World::start().await;
    world.receiver.set_default("/down", Reply::status(500));
    let url = world.receiver.url("/down");
    let (partner, _) = world.partner_with_callback(&url, None).await;
    let mut custom = rpb::UpsertCallbackRequest {
        partner_id: partner.clone(),
        notification_type: crate::TYPE,
        callback_url: url.clone(),
        ..Default::default()
    };
    custom.retry_policy = Some(rpb::RetryPolicy {
        name: "custom".into(),
        schedule_seconds: vec![1, 1, 1],
    });
    world.registry.upsert_callback(custom).await.unwrap();
    let dispatcher = world.start_dispatcher(world.dispatcher_config()).await;

    let id = publish_one(&dispatcher.client, &partner, "{}").await;
    let failed = delivery_with_status(
        &dispatcher.client,
        &id,
        dpb::DeliveryStatus::Failed,
        Duration::from_secs(15),
    )
    .await;
    assert_eq!(failed.attempt_count, 4, "one attempt more than its 3 waits");
    let requests = world.receiver.requests_to("/down");
    assert_eq!(requests.len(), 4);
    for pair in requests.windows(2) {
        let gap = pair[1].received_at - pair[0].received_at;
        // The dispatcher's own schedule would retry after 200 ms.
        assert!(gap >= Duration::from_millis(900), "retried after {gap:?}");
    }

    // Back to the default: the next event follows the dispatcher's schedule.
    world.set_callback(&partner, &url, None).await;
    let next = publish_one(&dispatcher.client, &partner, "{}").await;
    let failed = delivery_with_status(
        &dispatcher.client,
        &next,
        dpb::DeliveryStatus::Failed,
        Duration::from_secs(10),
    )
    .await;
    assert_eq!(
        failed.attempt_count, 3,
        "the schedule's 2 waits, then failed"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn gone_deactivates_the_registration() {
    let mut world = World::start().await;
    world.receiver.set_default("/gone", Reply::status(410));
    let url = world.receiver.url("/gone");
    let (partner, _) = world.partner_with_callback(&url, None).await;
    let dispatcher = world.start_dispatcher(world.dispatcher_config()).await;
    let id = publish_one(&dispatcher.client, &partner, "{}").await;
    let cancelled = delivery_with_status(
        &dispatcher.client,
        &id,
        dpb::DeliveryStatus::Cancelled,
        Duration::from_secs(10),
    )
    .await;
    assert_eq!(cancelled.attempt_count, 1, "no retries after 410");
    eventually(
        "the registration to be deactivated",
        Duration::from_secs(5),
        || {
            let mut registry = world.registry.clone();
            let partner = partner.clone();
            async move {
                let page = registry
                    .list_callbacks(callbacks_proto::registry::v1::ListCallbacksRequest {
                        partner_id: partner,
                        is_active: Some(false),
                        registration_id: None,
                        page: None,
                        merchant_id: None,
                    })
                    .await
                    .ok()?
                    .into_inner();
                page.registrations
                    .first()
                    .filter(|r| {
                        r.deactivation_reason
                            .as_deref()
                            .is_some_and(|why| why.contains("410"))
                    })
                    .map(|_| ())
            }
        },
    )
    .await
    .unwrap();
}

/// Issue 19, item 4: a NUL byte in what an endpoint answers (gzip,
/// UTF-16 and protobuf bodies hold them) is stored as U+FFFD, so its
/// outcome is written like any other and costs the healthy deliveries
/// finished beside it nothing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_nul_byte_in_an_answer_fails_only_its_own_delivery_on_schedule() {
    let mut world = World::start().await;
    world
        .receiver
        .set_default("/nul", Reply::status(500).body(&b"x\0y"[..]));
    let nul = world.receiver.url("/nul");
    let (nul_partner, _) = world.partner_with_callback(&nul, None).await;
    let mut healthy = Vec::new();
    for i in 0..20 {
        let url = world.receiver.url(&format!("/ok-{i}"));
        healthy.push(world.partner_with_callback(&url, None).await.0);
    }
    let dispatcher = world.start_dispatcher(world.dispatcher_config()).await;
    let client = dispatcher.client.clone();
    // Published together, so that their outcomes are written together.
    let publishes = healthy
        .iter()
        .chain([&nul_partner])
        .map(|partner| publish_one(&client, partner, "{}"));
    let ids = futures_util::future::join_all(publishes).await;

    let failed = delivery_with_status(
        &client,
        ids.last().unwrap(),
        dpb::DeliveryStatus::Failed,
        Duration::from_secs(10),
    )
    .await;
    assert_eq!(failed.attempt_count, 3, "each attempt recorded: {failed:?}");
    for attempt in &failed.attempts {
        assert_eq!(attempt.response_status, Some(500));
        assert_eq!(attempt.response_excerpt, "x\u{FFFD}y");
    }
    assert!(
        world
            .registration(&nul_partner)
            .await
            .unwrap()
            .is_in_error_state
    );
    for id in &ids[..healthy.len()] {
        delivery_with_status(
            &client,
            id,
            dpb::DeliveryStatus::Delivered,
            Duration::from_secs(5),
        )
        .await;
    }
    for i in 0..healthy.len() {
        assert_eq!(
            world.receiver.requests_to(&format!("/ok-{i}")).len(),
            1,
            "a healthy endpoint receives its event once"
        );
    }
    assert_eq!(world.receiver.requests_to("/nul").len(), 3);
}
