//! A registration's retry policy: chosen by name or as the partner's own
//! waits, shown with the registration, handed to the dispatcher as waits,
//! and replaced like the rest of the registration.

use callbacks_proto::registry::v1 as pb;
use tonic::Code;

use crate::{TestRegistry, expect_code, expect_violation, upsert_request};

const URL: &str = "https://hooks.example.com/callbacks";

fn policy(name: &str, waits: &[u32]) -> Option<pb::RetryPolicy> {
    Some(pb::RetryPolicy {
        name: name.into(),
        schedule_seconds: waits.to_vec(),
    })
}

async fn resolved_waits(r: &mut TestRegistry, partner: &str) -> Vec<u32> {
    r.resolve(partner, 5).await.retry_schedule_seconds
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_policy_is_shown_resolved_and_replaced_like_the_rest() {
    let mut r = TestRegistry::start().await;
    let (partner, _) = r.partner("Acme").await;

    let created = r.upsert(&partner, 5, URL).await;
    let shown = created.registration.unwrap().retry_policy.unwrap();
    assert_eq!(shown.name, "default", "left out, it is the default");
    assert!(shown.schedule_seconds.is_empty());
    assert!(resolved_waits(&mut r, &partner).await.is_empty());

    let mut custom = upsert_request(&partner, 5, URL);
    custom.retry_policy = policy("custom", &[1, 60, 600]);
    let updated = r.client.upsert_callback(custom).await.unwrap().into_inner();
    let shown = updated.registration.unwrap().retry_policy.unwrap();
    assert_eq!(shown.name, "custom");
    assert_eq!(shown.schedule_seconds, [1, 60, 600]);
    assert_eq!(resolved_waits(&mut r, &partner).await, [1, 60, 600]);

    let mut short = upsert_request(&partner, 5, URL);
    short.retry_policy = policy("short", &[]);
    r.client.upsert_callback(short).await.unwrap();
    let got = r
        .client
        .get_callback(pb::GetCallbackRequest {
            partner_id: partner.clone(),
            notification_type: 5,
        })
        .await
        .unwrap()
        .into_inner();
    let shown = got.retry_policy.unwrap();
    assert_eq!(shown.name, "short");
    assert_eq!(shown.schedule_seconds, [5, 30, 120, 600, 1800, 3600]);
    assert_eq!(
        resolved_waits(&mut r, &partner).await,
        shown.schedule_seconds
    );

    // Left out again: back to the default, as a left-out merchant id clears.
    r.upsert(&partner, 5, URL).await;
    assert!(resolved_waits(&mut r, &partner).await.is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bad_policy_is_refused_by_field_and_changes_nothing() {
    let mut r = TestRegistry::start().await;
    let (partner, _) = r.partner("Acme").await;
    let mut custom = upsert_request(&partner, 5, URL);
    custom.retry_policy = policy("custom", &[30]);
    r.client.upsert_callback(custom).await.unwrap();

    for (name, waits, field, rule) in [
        (
            "weekly",
            &[][..],
            "retry_policy.name",
            "default, short, long or custom",
        ),
        (
            "short",
            &[5],
            "retry_policy.schedule_seconds",
            "only for the custom",
        ),
        (
            "custom",
            &[],
            "retry_policy.schedule_seconds",
            "1 to 20 waits",
        ),
        (
            "custom",
            &[0, 5],
            "retry_policy.schedule_seconds",
            "1 to 86400",
        ),
        (
            "custom",
            &[60; 21],
            "retry_policy.schedule_seconds",
            "1 to 20 waits",
        ),
    ] {
        let mut request = upsert_request(&partner, 5, URL);
        request.retry_policy = policy(name, waits);
        expect_violation(r.client.upsert_callback(request).await, field, rule);
    }
    // Reported together with the request's other mistakes.
    let mut request = upsert_request(&partner, 5, "http://not-https.example.com");
    request.retry_policy = policy("hourly", &[]);
    let status = expect_code(
        r.client.upsert_callback(request).await,
        Code::InvalidArgument,
    );
    let fields: Vec<String> = tonic_types::StatusExt::get_details_bad_request(&status)
        .unwrap()
        .field_violations
        .into_iter()
        .map(|v| v.field)
        .collect();
    assert!(fields.contains(&"callback_url".to_owned()), "{fields:?}");
    assert!(
        fields.contains(&"retry_policy.name".to_owned()),
        "{fields:?}"
    );

    assert_eq!(resolved_waits(&mut r, &partner).await, [30], "unchanged");
}
