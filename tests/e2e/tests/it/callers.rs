//! Issue 19, item 5: the internal gRPC APIs answer only the callers they
//! were configured with, each within its role; the system works end to end
//! with those tokens (every other test here runs with them).

use callbacks_proto::dispatcher::v1 as dpb;
use callbacks_proto::registry::v1 as rpb;
use tonic::Code;

use crate::{System, tokens, unkeyed};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_internal_caller_gets_its_role_and_strangers_nothing() {
    let system = System::start().await;
    let (partner, _) = system.partner_with_callback("/hooks").await;
    let resolve = || rpb::ResolveCallbackRequest {
        partner_id: partner.clone(),
        notification_type: 5,
    };

    // Decrypted secrets: the dispatcher's alone.
    for (token, expected) in [
        (None, Code::Unauthenticated),
        (
            Some("not-a-configured-token-0123456789"),
            Code::Unauthenticated,
        ),
        (Some(tokens::GATEWAY_TO_REGISTRY), Code::PermissionDenied),
        (Some(tokens::OPERATOR_TO_REGISTRY), Code::PermissionDenied),
    ] {
        let refused = system
            .registry_as(token)
            .await
            .resolve_callback(resolve())
            .await
            .unwrap_err();
        assert_eq!(refused.code(), expected, "{token:?}: {refused:?}");
    }
    let resolved = system
        .registry_as(Some(tokens::DISPATCHER_TO_REGISTRY))
        .await
        .resolve_callback(resolve())
        .await
        .unwrap()
        .into_inner();
    assert!(resolved.signing_secrets[0].starts_with("whsec_"));

    // Nobody but the gateway and operators creates partners; the
    // dispatcher's token does not.
    let create = rpb::CreatePartnerRequest {
        name: "Mallory".into(),
        key_label: String::new(),
    };
    let refused = system
        .registry_as(Some(tokens::DISPATCHER_TO_REGISTRY))
        .await
        .create_partner(create.clone())
        .await
        .unwrap_err();
    assert_eq!(refused.code(), Code::PermissionDenied);
    system
        .registry_as(Some(tokens::OPERATOR_TO_REGISTRY))
        .await
        .create_partner(create)
        .await
        .unwrap();

    // Publishing needs the publisher's token.
    let publish = || unkeyed(&partner, "p-1");
    let refused = system
        .dispatcher_as(None)
        .await
        .publish(publish())
        .await
        .unwrap_err();
    assert_eq!(refused.code(), Code::Unauthenticated);
    let delivery_id = system
        .publisher()
        .await
        .publish(publish())
        .await
        .unwrap()
        .into_inner()
        .delivery_id
        .unwrap();

    // A delivery read without its partner is any partner's: operators
    // only. The gateway always names the partner.
    let unscoped = || dpb::GetDeliveryRequest {
        delivery_id: delivery_id.clone(),
        partner_id: None,
    };
    let refused = system
        .dispatcher_as(Some(tokens::GATEWAY_TO_DISPATCHER))
        .await
        .get_delivery(unscoped())
        .await
        .unwrap_err();
    assert_eq!(refused.code(), Code::PermissionDenied);
    system
        .dispatcher_as(Some(tokens::GATEWAY_TO_DISPATCHER))
        .await
        .get_delivery(dpb::GetDeliveryRequest {
            delivery_id: delivery_id.clone(),
            partner_id: Some(partner.clone()),
        })
        .await
        .unwrap();
    system
        .dispatcher_as(Some(tokens::OPERATOR_TO_DISPATCHER))
        .await
        .get_delivery(unscoped())
        .await
        .unwrap();
    let refused = system
        .dispatcher_as(Some(tokens::PUBLISHER))
        .await
        .get_delivery(unscoped())
        .await
        .unwrap_err();
    assert_eq!(refused.code(), Code::PermissionDenied);
}

/// The real binary, as an operator might start it in production: with no
/// key of its own, it refuses to start and says why.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_registry_without_a_key_of_its_own_refuses_to_start() {
    let db = test_support::TestDb::new().await.unwrap();
    let binary = test_support::process::binary("registry-service").unwrap();
    let output = tokio::process::Command::new(binary)
        .env_clear()
        .env("REGISTRY_LISTEN", "127.0.0.1:0")
        .env("REGISTRY_ADMIN_LISTEN", "127.0.0.1:0")
        .env("REGISTRY_DATABASE_URL", db.url())
        .env("REGISTRY_OPEN_GRPC", "true")
        .output()
        .await
        .unwrap();
    assert!(!output.status.success());
    let said = String::from_utf8_lossy(&output.stderr);
    assert!(said.contains("REGISTRY_ENCRYPTION_KEY is unset"), "{said}");
}
