//! The standard gRPC services beside ours: health and reflection (what
//! `grpcurl list` uses).

use crate::TestRegistry;
use tokio_stream::StreamExt;
use tonic_health::pb::HealthCheckRequest;
use tonic_health::pb::health_check_response::ServingStatus;
use tonic_health::pb::health_client::HealthClient;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn health_reports_serving() {
    let registry = TestRegistry::start().await;
    let mut health = HealthClient::new(registry.channel.clone());
    let response = health
        .check(HealthCheckRequest {
            service: "callbacks.registry.v1.RegistryService".into(),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(response.status(), ServingStatus::Serving);
}

/// The services that reflection `version` (a module of
/// `tonic_reflection::pb`) lists.
macro_rules! listed_services {
    ($channel:expr, $version:ident) => {{
        use tonic_reflection::pb::$version::ServerReflectionRequest;
        use tonic_reflection::pb::$version::server_reflection_client::ServerReflectionClient;
        use tonic_reflection::pb::$version::server_reflection_request::MessageRequest;
        use tonic_reflection::pb::$version::server_reflection_response::MessageResponse;
        let request = ServerReflectionRequest {
            host: String::new(),
            message_request: Some(MessageRequest::ListServices(String::new())),
        };
        let mut responses = ServerReflectionClient::new($channel)
            .server_reflection_info(tokio_stream::iter([request]))
            .await
            .unwrap()
            .into_inner();
        let response = responses.next().await.expect("one response").unwrap();
        let Some(MessageResponse::ListServicesResponse(list)) = response.message_response else {
            panic!("unexpected reflection response: {response:?}");
        };
        list.service.into_iter().map(|s| s.name).collect::<Vec<_>>()
    }};
}

/// Both versions: `v1alpha` is what grpcurl 1.8 and other older tools ask.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reflection_lists_the_registry_service_in_both_versions() {
    let registry = TestRegistry::start().await;
    let listed = [
        listed_services!(registry.channel.clone(), v1),
        listed_services!(registry.channel.clone(), v1alpha),
    ];
    for names in listed {
        assert!(
            names
                .iter()
                .any(|n| n == "callbacks.registry.v1.RegistryService"),
            "{names:?}"
        );
        assert!(
            names.iter().any(|n| n == "grpc.health.v1.Health"),
            "{names:?}"
        );
    }
}
