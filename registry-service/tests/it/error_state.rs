//! The error-state rules of seed 003, through RecordDeliveryOutcome: a
//! failure sets it, a success clears it, a URL change resets it; stale and
//! out-of-order reports change nothing; 410 Gone deactivates.

use callbacks_proto::registry::v1 as pb;
use pb::record_delivery_outcome_request::Outcome;
use prost_types::Timestamp;
use tonic::Code;

use crate::{TestRegistry, expect_code, expect_violation};

const URL: &str = "https://hooks.example.com/callbacks";

fn at(seconds: i64) -> Option<Timestamp> {
    Some(Timestamp {
        seconds: 1_900_000_000 + seconds,
        nanos: 0,
    })
}

fn failed(reason: &str) -> Outcome {
    Outcome::Failed(pb::DeliveryFailed {
        reason: reason.into(),
    })
}

async fn report(
    r: &mut TestRegistry,
    registration_id: &str,
    url: &str,
    when: i64,
    outcome: Outcome,
) -> pb::RecordDeliveryOutcomeResponse {
    r.client
        .record_delivery_outcome(pb::RecordDeliveryOutcomeRequest {
            registration_id: registration_id.into(),
            callback_url: url.into(),
            occurred_at: at(when),
            outcome: Some(outcome),
        })
        .await
        .unwrap()
        .into_inner()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failure_sets_success_clears_url_change_resets() {
    let mut r = TestRegistry::start().await;
    let (partner, _) = r.partner("Acme").await;
    let id = r
        .upsert(&partner, 5, URL)
        .await
        .registration
        .unwrap()
        .registration_id;

    // Failure sets the state with its reason and the start of the streak.
    let first = report(&mut r, &id, URL, 0, failed("HTTP 500")).await;
    assert!(first.applied);
    let reg = first.registration.unwrap();
    assert!(reg.is_in_error_state);
    assert_eq!(reg.error_state_reason.as_deref(), Some("HTTP 500"));
    assert_eq!(reg.detected_error_state_at, at(0));

    // A further failure keeps the streak start, takes the newest reason.
    let second = report(&mut r, &id, URL, 30, failed("timeout after 15 s")).await;
    let reg = second.registration.unwrap();
    assert_eq!(
        reg.error_state_reason.as_deref(),
        Some("timeout after 15 s")
    );
    assert_eq!(reg.detected_error_state_at, at(0));

    // The partner sees it through GetCallback too.
    let seen = r
        .client
        .get_callback(pb::GetCallbackRequest {
            partner_id: partner.clone(),
            notification_type: 5,
        })
        .await
        .unwrap()
        .into_inner();
    assert!(seen.is_in_error_state);

    // Success clears it.
    let cleared = report(
        &mut r,
        &id,
        URL,
        60,
        Outcome::Succeeded(pb::DeliverySucceeded {}),
    )
    .await;
    let reg = cleared.registration.unwrap();
    assert!(!reg.is_in_error_state);
    assert!(reg.error_state_reason.is_none() && reg.detected_error_state_at.is_none());

    // Failing again, then the partner changes the URL: reset.
    report(&mut r, &id, URL, 90, failed("HTTP 503")).await;
    let same_url = r.upsert(&partner, 5, URL).await.registration.unwrap();
    assert!(
        same_url.is_in_error_state,
        "re-sending the same URL keeps the state"
    );
    let moved = r
        .upsert(&partner, 5, "https://hooks.example.com/new")
        .await
        .registration
        .unwrap();
    assert!(!moved.is_in_error_state);
    assert!(moved.error_state_reason.is_none() && moved.detected_error_state_at.is_none());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stale_and_out_of_order_reports_are_ignored() {
    let mut r = TestRegistry::start().await;
    let (partner, _) = r.partner("Acme").await;
    let id = r
        .upsert(&partner, 5, URL)
        .await
        .registration
        .unwrap()
        .registration_id;
    r.upsert(&partner, 5, "https://hooks.example.com/new").await;

    // An attempt against the old URL says nothing about the new one.
    let stale = report(&mut r, &id, URL, 0, failed("HTTP 500")).await;
    assert!(!stale.applied);
    assert!(!stale.registration.unwrap().is_in_error_state);

    let new_url = "https://hooks.example.com/new";
    report(
        &mut r,
        &id,
        new_url,
        100,
        Outcome::Succeeded(pb::DeliverySucceeded {}),
    )
    .await;
    // A failure that happened before the success arrives late: ignored.
    let late = report(&mut r, &id, new_url, 50, failed("HTTP 500")).await;
    assert!(!late.applied);
    assert!(!late.registration.unwrap().is_in_error_state);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn gone_deactivates() {
    let mut r = TestRegistry::start().await;
    let (partner, _) = r.partner("Acme").await;
    let id = r
        .upsert(&partner, 5, URL)
        .await
        .registration
        .unwrap()
        .registration_id;
    let gone = report(
        &mut r,
        &id,
        URL,
        0,
        Outcome::Gone(pb::EndpointGone {
            reason: "HTTP 410".into(),
        }),
    )
    .await;
    assert!(gone.applied);
    let reg = gone.registration.unwrap();
    assert!(!reg.is_active && reg.deactivated_at.is_some());
    assert!(reg.deactivation_reason.unwrap().contains("410 Gone"));
    expect_code(
        r.client
            .resolve_callback(pb::ResolveCallbackRequest {
                partner_id: partner,
                notification_type: 5,
            })
            .await,
        Code::NotFound,
    );
    // Reports for an inactive registration change nothing.
    let after = report(
        &mut r,
        &id,
        URL,
        10,
        Outcome::Succeeded(pb::DeliverySucceeded {}),
    )
    .await;
    assert!(!after.applied);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn malformed_reports_are_refused() {
    let mut r = TestRegistry::start().await;
    let missing = pb::RecordDeliveryOutcomeRequest {
        registration_id: "x".into(),
        callback_url: String::new(),
        occurred_at: None,
        outcome: None,
    };
    expect_violation(
        r.client.record_delivery_outcome(missing.clone()).await,
        "registration_id",
        "GUID",
    );
    expect_violation(
        r.client.record_delivery_outcome(missing.clone()).await,
        "callback_url",
        "required",
    );
    expect_violation(
        r.client.record_delivery_outcome(missing.clone()).await,
        "occurred_at",
        "required",
    );
    expect_violation(
        r.client.record_delivery_outcome(missing).await,
        "outcome",
        "required",
    );
    expect_code(
        r.client
            .record_delivery_outcome(pb::RecordDeliveryOutcomeRequest {
                registration_id: uuid::Uuid::new_v4().to_string(),
                callback_url: URL.into(),
                occurred_at: at(0),
                outcome: Some(failed("HTTP 500")),
            })
            .await,
        Code::NotFound,
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn operators_list_registrations_in_error_state() {
    let mut r = TestRegistry::start().await;
    let (acme, _) = r.partner("Acme").await;
    let (globex, _) = r.partner("Globex").await;
    let (initech, _) = r.partner("Initech").await;
    let acme_id = r
        .upsert(&acme, 5, URL)
        .await
        .registration
        .unwrap()
        .registration_id;
    let globex_id = r
        .upsert(&globex, 5, URL)
        .await
        .registration
        .unwrap()
        .registration_id;
    r.upsert(&initech, 5, URL).await;
    // Globex began failing first, then Acme; Initech is healthy.
    report(&mut r, &globex_id, URL, 0, failed("HTTP 502")).await;
    report(&mut r, &acme_id, URL, 10, failed("HTTP 500")).await;

    let listed = r
        .client
        .list_error_states(pb::ListErrorStatesRequest { page: None })
        .await
        .unwrap()
        .into_inner();
    let ids: Vec<_> = listed
        .registrations
        .iter()
        .map(|x| x.registration_id.clone())
        .collect();
    assert_eq!(
        ids,
        [globex_id.clone(), acme_id],
        "longest failing first, healthy ones left out"
    );

    let one = r
        .client
        .list_error_states(pb::ListErrorStatesRequest {
            page: Some(pb::PageRequest {
                page_number: 1,
                page_size: 1,
            }),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(one.registrations[0].registration_id, globex_id);
    assert!(one.page.unwrap().has_next_page);
}

/// Issue 23, item 2: each change of the error state is one health event,
/// written with the change, numbered in order; failures that change
/// nothing make none.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_change_of_the_error_state_is_one_health_event() {
    let mut r = TestRegistry::start().await;
    let (partner, _) = r.partner("Acme").await;
    let id = r
        .upsert(&partner, 5, URL)
        .await
        .registration
        .unwrap()
        .registration_id;
    report(&mut r, &id, URL, 0, failed("HTTP 500")).await;
    report(&mut r, &id, URL, 1, failed("HTTP 502")).await;
    report(
        &mut r,
        &id,
        URL,
        2,
        Outcome::Succeeded(pb::DeliverySucceeded {}),
    )
    .await;
    report(
        &mut r,
        &id,
        URL,
        3,
        Outcome::Succeeded(pb::DeliverySucceeded {}),
    )
    .await;

    let events = r.health_after(0, 0).await;
    let kinds: Vec<&str> = events.iter().map(|e| e.kind.as_str()).collect();
    assert_eq!(kinds, ["error_state_entered", "recovered"]);
    assert_eq!(events[0].reason.as_deref(), Some("HTTP 500"));
    assert_eq!(
        (
            events[0].registration_id.as_str(),
            events[0].partner_id.as_str()
        ),
        (id.as_str(), partner.as_str())
    );
    assert_eq!(events[0].occurred_at, at(0));
    assert!(events[0].id < events[1].id);
    let rest = r.health_after(events[0].id, 1).await;
    assert_eq!(rest.len(), 1);
    assert_eq!(rest[0].id, events[1].id);
    expect_violation(
        r.client
            .list_health_events(pb::ListHealthEventsRequest {
                after_id: 0,
                limit: 1001,
            })
            .await,
        "limit",
        "0 to 1000",
    );
}
