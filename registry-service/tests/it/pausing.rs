//! Pausing a registration and resuming it: both recorded in the change
//! log, shown with the registration and handed to the dispatcher; pausing
//! twice or resuming what is not paused is refused, and changes nothing.

use callbacks_proto::registry::v1 as pb;
use tonic::Code;

use crate::{TestRegistry, expect_code, expect_violation};

const URL: &str = "https://hooks.example.com/callbacks";

fn pause(partner: &str, reason: Option<&str>) -> pb::PauseCallbackRequest {
    pb::PauseCallbackRequest {
        partner_id: partner.into(),
        notification_type: 5,
        reason: reason.map(Into::into),
    }
}

fn resume(partner: &str) -> pb::ResumeCallbackRequest {
    pb::ResumeCallbackRequest {
        partner_id: partner.into(),
        notification_type: 5,
    }
}

async fn resolved_paused(r: &mut TestRegistry, partner: &str) -> bool {
    r.resolve(partner, 5).await.paused
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pause_is_shown_resolved_and_lifted() {
    let mut r = TestRegistry::start().await;
    let (partner, _) = r.partner("Acme").await;
    let registered = r.upsert(&partner, 5, URL).await.registration.unwrap();
    assert!(!resolved_paused(&mut r, &partner).await);

    let before = r.changes_version().await;
    let paused = r
        .client
        .pause_callback(pause(&partner, Some("maintenance")))
        .await
        .unwrap()
        .into_inner();
    assert!(paused.paused_at.is_some());
    assert_eq!(paused.pause_reason.as_deref(), Some("maintenance"));
    assert_eq!(paused.registration_id, registered.registration_id);
    assert!(paused.is_active, "a pause is not a delete");
    assert!(
        r.changes_version().await > before,
        "the dispatchers hear of it"
    );
    assert!(resolved_paused(&mut r, &partner).await);

    // A new URL or policy leaves the pause as it was.
    r.upsert(&partner, 5, "https://hooks.example.com/v2").await;
    assert!(resolved_paused(&mut r, &partner).await);

    let before = r.changes_version().await;
    let resumed = r.client.resume_callback(resume(&partner)).await.unwrap();
    let resumed = resumed.into_inner();
    assert!(resumed.paused_at.is_none() && resumed.pause_reason.is_none());
    assert!(r.changes_version().await > before);
    assert!(!resolved_paused(&mut r, &partner).await);

    let unexplained = r.client.pause_callback(pause(&partner, None)).await;
    assert_eq!(
        unexplained.unwrap().into_inner().pause_reason.as_deref(),
        Some("paused")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pausing_twice_resuming_the_unpaused_and_bad_reasons_are_refused() {
    let mut r = TestRegistry::start().await;
    let (partner, _) = r.partner("Acme").await;
    r.upsert(&partner, 5, URL).await;

    let not_paused = expect_code(
        r.client.resume_callback(resume(&partner)).await,
        Code::FailedPrecondition,
    );
    assert!(
        not_paused.message().contains("is not paused"),
        "{not_paused:?}"
    );

    r.client
        .pause_callback(pause(&partner, Some("first")))
        .await
        .unwrap();
    let twice = expect_code(
        r.client
            .pause_callback(pause(&partner, Some("second")))
            .await,
        Code::FailedPrecondition,
    );
    assert!(
        twice.message().contains("already paused (since"),
        "{twice:?}"
    );
    let shown = r
        .client
        .get_callback(pb::GetCallbackRequest {
            partner_id: partner.clone(),
            notification_type: 5,
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(
        shown.pause_reason.as_deref(),
        Some("first"),
        "the first reason stays"
    );

    let long = "x".repeat(501);
    expect_violation(
        r.client.pause_callback(pause(&partner, Some(&long))).await,
        "reason",
        "at most 500 characters",
    );
    let (stranger, _) = r.partner("Globex").await;
    expect_code(
        r.client.pause_callback(pause(&stranger, None)).await,
        Code::NotFound,
    );
    expect_violation(
        r.client.pause_callback(pause("not-a-guid", None)).await,
        "partner_id",
        "",
    );
}

/// An outcome report of a failure `seconds` after `start`.
async fn failure_at(
    r: &mut TestRegistry,
    registration_id: &str,
    start: i64,
    seconds: i64,
) -> pb::Registration {
    use pb::record_delivery_outcome_request::Outcome;
    r.client
        .record_delivery_outcome(pb::RecordDeliveryOutcomeRequest {
            registration_id: registration_id.into(),
            callback_url: URL.into(),
            occurred_at: Some(prost_types::Timestamp {
                seconds: start + seconds,
                nanos: 0,
            }),
            outcome: Some(Outcome::Failed(pb::DeliveryFailed {
                reason: "HTTP 503".into(),
            })),
        })
        .await
        .unwrap()
        .into_inner()
        .registration
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_registration_failing_for_too_long_is_paused_and_resumes_with_a_new_streak() {
    let mut r = TestRegistry::start_with(|config| {
        config.auto_pause_after = Some(std::time::Duration::from_secs(60));
    })
    .await;
    let (partner, _) = r.partner("Acme").await;
    let id = r
        .upsert(&partner, 5, URL)
        .await
        .registration
        .unwrap()
        .registration_id;
    let start = chrono::Utc::now().timestamp() - 600;

    assert!(failure_at(&mut r, &id, start, 0).await.paused_at.is_none());
    assert!(failure_at(&mut r, &id, start, 59).await.paused_at.is_none());
    let before = r.changes_version().await;
    let paused = failure_at(&mut r, &id, start, 60).await;
    assert!(paused.paused_at.is_some(), "failing for 60 s: {paused:?}");
    let reason = paused.pause_reason.unwrap();
    assert!(
        reason.starts_with("paused automatically: failing since"),
        "{reason}"
    );
    assert!(reason.contains("longer than 1m"), "{reason}");
    assert!(paused.is_active, "paused, not deleted: nothing is lost");
    assert!(
        r.changes_version().await > before,
        "the dispatchers hear of it"
    );
    let health = r.health_after(0, 0).await;
    let kinds: Vec<&str> = health.iter().map(|e| e.kind.as_str()).collect();
    assert_eq!(kinds, ["error_state_entered", "disabled"], "announced");
    assert_eq!(health[1].reason.as_deref(), Some(reason.as_str()));
    assert!(r.resolve(&partner, 5).await.paused);

    // Resumed, the streak starts again: the next failure does not pause it.
    let resumed = r.client.resume_callback(resume(&partner)).await.unwrap();
    let resumed = resumed.into_inner();
    assert!(resumed.is_in_error_state, "still failing until a success");
    let now = chrono::Utc::now().timestamp();
    let again = failure_at(&mut r, &id, now, 1).await;
    assert!(again.paused_at.is_none(), "{again:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn auto_pause_can_be_turned_off() {
    let mut r = TestRegistry::start_with(|config| config.auto_pause_after = None).await;
    let (partner, _) = r.partner("Acme").await;
    let id = r
        .upsert(&partner, 5, URL)
        .await
        .registration
        .unwrap()
        .registration_id;
    let start = chrono::Utc::now().timestamp() - 30 * 86_400;
    failure_at(&mut r, &id, start, 0).await;
    let weeks_later = failure_at(&mut r, &id, start, 21 * 86_400).await;
    assert!(weeks_later.paused_at.is_none());
}
