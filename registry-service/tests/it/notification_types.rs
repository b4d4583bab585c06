//! The notification-type catalogue: seeded with 5, 6, 7 (echo-able);
//! operators add more.

use callbacks_proto::registry::v1 as pb;
use tonic::Code;

use crate::{TestRegistry, expect_code, expect_violation};

fn new_type(id: i32, name: &str) -> pb::CreateNotificationTypeRequest {
    pb::CreateNotificationTypeRequest {
        notification_type_id: id,
        name: name.into(),
        description: "Settlement finished".into(),
        echoable: false,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn seeded_types_are_echoable() {
    let mut r = TestRegistry::start().await;
    let types = r
        .client
        .list_notification_types(pb::ListNotificationTypesRequest {})
        .await
        .unwrap()
        .into_inner()
        .notification_types;
    let seeded: Vec<_> = types
        .iter()
        .map(|t| (t.notification_type_id, t.echoable))
        .collect();
    assert_eq!(seeded, [(5, true), (6, true), (7, true)]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn operators_add_types() {
    let mut r = TestRegistry::start().await;
    let created = r
        .client
        .create_notification_type(new_type(12, "settlement.completed"))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(
        (created.notification_type_id, created.echoable),
        (12, false)
    );
    let fetched = r
        .client
        .get_notification_type(pb::GetNotificationTypeRequest {
            notification_type_id: 12,
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(fetched.name, "settlement.completed");

    // A registration for the new type is accepted.
    let (partner, _) = r.partner("Acme").await;
    assert!(
        r.upsert(&partner, 12, "https://hooks.example.com/settlements")
            .await
            .created
    );

    expect_code(
        r.client
            .create_notification_type(new_type(12, "other.name"))
            .await,
        Code::AlreadyExists,
    );
    expect_code(
        r.client
            .create_notification_type(new_type(13, "settlement.completed"))
            .await,
        Code::AlreadyExists,
    );
    expect_violation(
        r.client.create_notification_type(new_type(0, "zero")).await,
        "notification_type_id",
        "positive",
    );
    expect_violation(
        r.client
            .create_notification_type(new_type(14, "Has Spaces"))
            .await,
        "name",
        "lowercase",
    );
    expect_code(
        r.client
            .get_notification_type(pb::GetNotificationTypeRequest {
                notification_type_id: 999,
            })
            .await,
        Code::NotFound,
    );
}
