//! The change log behind `ListChanges`: every change that makes a kept
//! answer stale is listed, in version order, once; a reader too far behind
//! is told to forget everything.

use callbacks_proto::registry::v1 as pb;
use pb::registry_change::Kind;

use crate::TestRegistry;

async fn changes_after(registry: &mut TestRegistry, after: u64) -> pb::ListChangesResponse {
    registry
        .client
        .list_changes(pb::ListChangesRequest {
            after_version: after,
        })
        .await
        .unwrap()
        .into_inner()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_change_that_stales_an_answer_is_listed_in_order() {
    let mut registry = TestRegistry::start().await;
    let start = changes_after(&mut registry, 0).await.version;
    let (partner, _) = registry.partner("Acme").await;
    assert_eq!(
        changes_after(&mut registry, start).await.version,
        start,
        "a new partner stales nothing"
    );

    registry
        .upsert(&partner, 5, "https://hooks.example.com/a")
        .await;
    registry
        .upsert(&partner, 5, "https://hooks.example.com/b")
        .await;
    registry
        .client
        .rotate_signing_secret(pb::RotateSigningSecretRequest {
            partner_id: partner.clone(),
            notification_type: 5,
            previous_expires_in_seconds: None,
        })
        .await
        .unwrap();
    registry
        .client
        .delete_callback(pb::DeleteCallbackRequest {
            partner_id: partner.clone(),
            notification_type: 5,
        })
        .await
        .unwrap();
    let keys = registry
        .client
        .list_api_keys(pb::ListApiKeysRequest {
            partner_id: partner.clone(),
            include_revoked: false,
        })
        .await
        .unwrap()
        .into_inner()
        .keys;
    registry
        .client
        .revoke_api_key(pb::RevokeApiKeyRequest {
            partner_id: partner.clone(),
            key_id: keys[0].key_id.clone(),
        })
        .await
        .unwrap();
    registry
        .client
        .disable_partner(pb::DisablePartnerRequest {
            partner_id: partner.clone(),
        })
        .await
        .unwrap();

    let listed = changes_after(&mut registry, start).await;
    assert!(listed.complete);
    let kinds: Vec<Kind> = listed.changes.iter().map(|c| c.kind()).collect();
    assert_eq!(
        kinds,
        [
            Kind::Callback, // created
            Kind::Callback, // new URL
            Kind::Callback, // secret rotated
            Kind::Callback, // deleted
            Kind::ApiKey,
            Kind::Partner,
        ]
    );
    let versions: Vec<u64> = listed.changes.iter().map(|c| c.version).collect();
    assert_eq!(versions, (start + 1..=start + 6).collect::<Vec<_>>());
    assert_eq!(listed.version, start + 6);
    assert!(listed.changes.iter().all(|c| c.partner_id == partner));
    assert_eq!(listed.changes[0].notification_type, 5);
    assert_eq!(listed.changes[4].api_key_id, keys[0].key_id);

    // From the middle: only what came after; at the head: nothing.
    let tail = changes_after(&mut registry, start + 4).await;
    assert_eq!(tail.changes.len(), 2);
    let none = changes_after(&mut registry, listed.version).await;
    assert!(none.complete && none.changes.is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reader_behind_what_is_kept_forgets_everything() {
    let mut registry = TestRegistry::start().await;
    let (partner, _) = registry.partner("Acme").await;
    registry
        .upsert(&partner, 5, "https://hooks.example.com/a")
        .await;
    registry
        .upsert(&partner, 6, "https://hooks.example.com/a")
        .await;
    // The oldest changes pruned, as an hour's retention would.
    let db = registry.db.client().await.unwrap();
    db.execute(
        "DELETE FROM registry_changes WHERE version = (SELECT min(version) FROM registry_changes)",
        &[],
    )
    .await
    .unwrap();
    let behind = changes_after(&mut registry, 0).await;
    assert!(!behind.complete, "{behind:?}");
    assert!(behind.changes.is_empty());
    assert!(changes_after(&mut registry, behind.version).await.complete);
}
