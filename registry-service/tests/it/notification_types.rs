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
        payload_schema_json: None,
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
    // 900 is the health notifications' type, which nobody echoes.
    assert_eq!(seeded, [(5, true), (6, true), (7, true), (900, false)]);
    // Each seed type carries the seeds' rule: exactly one of the two ids.
    for t in types.iter().filter(|t| t.echoable) {
        let schema: serde_json::Value =
            serde_json::from_str(t.payload_schema_json.as_deref().unwrap()).unwrap();
        assert_eq!(schema["oneOf"][0]["required"][0], "processUniqueId");
        assert_eq!(schema["oneOf"][1]["required"][0], "simulationUniqueId");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn operators_set_replace_and_remove_a_payload_schema() {
    let mut r = TestRegistry::start().await;
    let set = |schema: Option<&str>| pb::SetPayloadSchemaRequest {
        notification_type_id: 12,
        payload_schema_json: schema.map(str::to_owned),
    };
    expect_code(r.client.set_payload_schema(set(None)).await, Code::NotFound);
    let mut with_schema = new_type(12, "settlement.completed");
    with_schema.payload_schema_json = Some(r#"{"type": "object", "required": ["amount"]}"#.into());
    let created = r
        .client
        .create_notification_type(with_schema)
        .await
        .unwrap()
        .into_inner();
    // Kept as compact JSON.
    assert_eq!(
        created.payload_schema_json.as_deref(),
        Some(r#"{"required":["amount"],"type":"object"}"#)
    );
    let version = r.changes_version().await;

    let replaced = r
        .client
        .set_payload_schema(set(Some(r#"{"type": "array"}"#)))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(
        replaced.payload_schema_json.as_deref(),
        Some(r#"{"type":"array"}"#)
    );
    assert!(r.changes_version().await > version, "caches learn of it");

    for (bad, says) in [
        ("{", "not valid JSON"),
        (r#"{"type": "objects"}"#, "not a valid JSON Schema"),
        (
            r#"{"$ref": "https://example.com/remote.json"}"#,
            "cannot be compiled",
        ),
    ] {
        expect_violation(
            r.client.set_payload_schema(set(Some(bad))).await,
            "payload_schema_json",
            says,
        );
    }
    let mut bad_create = new_type(13, "other.type");
    bad_create.payload_schema_json = Some("[]".into());
    expect_violation(
        r.client.create_notification_type(bad_create).await,
        "payload_schema_json",
        "JSON object",
    );

    let removed = r
        .client
        .set_payload_schema(set(None))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(removed.payload_schema_json, None);
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
