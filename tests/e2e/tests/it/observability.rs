//! What SREs see. A real OTLP receiver in this process collects the spans
//! the three services export; their `/metrics` endpoints are scraped after
//! known traffic; their JSON logs are read back from files.

use std::collections::{HashMap, HashSet};
use std::time::Duration;

use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use test_support::{ExportedSpan, OtlpReceiver, Reply, eventually};

use crate::{ADMIN_KEY, ENCRYPTION_KEY, Options, System, metric, unkeyed};

const SERVER: i32 = 2;
const CLIENT: i32 = 3;

/// Every span of `trace_id`, keyed by span id, once `expected` have arrived.
async fn trace_of(
    otlp: &OtlpReceiver,
    trace_id: &str,
    expected: usize,
) -> HashMap<String, ExportedSpan> {
    eventually(
        &format!("{expected} spans of trace {trace_id}"),
        Duration::from_secs(15),
        || {
            let spans: Vec<ExportedSpan> = otlp
                .spans()
                .into_iter()
                .filter(|s| s.trace_id == trace_id)
                .collect();
            async move { (spans.len() >= expected).then_some(spans) }
        },
    )
    .await
    .unwrap()
    .into_iter()
    .map(|s| (s.span_id.clone(), s))
    .collect()
}

/// A system whose services export their spans to a fresh OTLP receiver.
async fn traced_system() -> (OtlpReceiver, System) {
    let otlp = OtlpReceiver::start().await.unwrap();
    let system = System::start_with(Options {
        otlp: Some(otlp.endpoint()),
        ..Options::default()
    })
    .await;
    (otlp, system)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_echo_is_one_trace_across_every_service() {
    let (otlp, system) = traced_system().await;
    let (partner, key) = system
        .partner_with_callback("/traced?token=query-secret")
        .await;
    let secret: Value = system
        .rest(&key, Method::GET, &format!("/{partner}/callbacks/5/secret"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let secret = secret["secret"].as_str().unwrap().to_owned();

    let echo = system
        .rest(
            &key,
            Method::POST,
            &format!("/v1/callbacks/echo/{partner}/5"),
        )
        .header("content-type", "application/json")
        .body(r#"{"processUniqueId":"traced-1"}"#)
        .send()
        .await
        .unwrap();
    assert_eq!(echo.status(), StatusCode::ACCEPTED);
    let delivery_id = echo.json::<Value>().await.unwrap()["deliveryId"]
        .as_str()
        .unwrap()
        .to_owned();

    // The gateway's span for the echo request roots the trace.
    let root = otlp
        .wait_for("the gateway's echo span", Duration::from_secs(15), |s| {
            s.service == "gateway"
                && s.attribute("http.route")
                    == Some("/v1/callbacks/echo/{partnerUniqueID}/{notificationTypeID}")
        })
        .await
        .unwrap();
    assert_eq!(root.kind, SERVER);
    assert_eq!(
        root.name,
        "POST /v1/callbacks/echo/{partnerUniqueID}/{notificationTypeID}"
    );
    assert_eq!(root.parent_span_id, "", "the partner sent no traceparent");
    assert_eq!(root.attribute("http.request.method"), Some("POST"));
    assert_eq!(root.attribute("http.response.status_code"), Some("202"));

    // And the outbound webhook request, later, in the same trace.
    let post = otlp
        .wait_for("the outbound POST span", Duration::from_secs(15), |s| {
            s.trace_id == root.trace_id && s.service == "dispatcher-service" && s.kind == CLIENT
        })
        .await
        .unwrap();
    // gateway http + registry (GetNotificationType, GetCallback) + dispatcher
    // SendTestNotification + registry ResolveCallback + POST; Authenticate too
    // unless cached.
    let trace = trace_of(&otlp, &root.trace_id, 6).await;
    let parent_of = |span: &ExportedSpan| trace.get(&span.parent_span_id).cloned();

    let grpc = |service: &str, method: &str| {
        trace
            .values()
            .find(|s| s.service == service && s.attribute("rpc.method") == Some(method))
            .unwrap_or_else(|| panic!("no {service} {method} span in {trace:#?}"))
            .clone()
    };
    for method in ["GetNotificationType", "GetCallback"] {
        let span = grpc("registry-service", method);
        assert_eq!(span.kind, SERVER);
        assert_eq!(
            span.name,
            format!("callbacks.registry.v1.RegistryService/{method}")
        );
        assert_eq!(span.attribute("rpc.system"), Some("grpc"));
        assert_eq!(
            span.attribute("rpc.service"),
            Some("callbacks.registry.v1.RegistryService")
        );
        assert_eq!(span.attribute("rpc.grpc.status_code"), Some("0"));
        assert_eq!(
            span.parent_span_id, root.span_id,
            "{method} is a child of the gateway span"
        );
    }
    let send = grpc("dispatcher-service", "SendTestNotification");
    assert_eq!(send.parent_span_id, root.span_id);
    assert_eq!(send.attribute("partner.id"), Some(partner.as_str()));
    let resolve = grpc("registry-service", "ResolveCallback");
    assert_eq!(
        resolve.parent_span_id, send.span_id,
        "the dispatcher's registry call joins its span"
    );

    // The delivery attempt is a child of the call that stored the event.
    assert_eq!(
        parent_of(&post).map(|p| p.span_id),
        Some(send.span_id.clone())
    );
    assert_eq!(post.name, "POST");
    assert_eq!(post.kind, 3, "SPAN_KIND_CLIENT");
    assert_eq!(post.attribute("http.request.method"), Some("POST"));
    assert_eq!(post.attribute("http.response.status_code"), Some("200"));
    assert_eq!(post.attribute("delivery.id"), Some(delivery_id.as_str()));
    assert_eq!(post.attribute("delivery.attempt"), Some("1"));
    assert_eq!(post.attribute("partner.id"), Some(partner.as_str()));
    assert_eq!(post.attribute("notification.type"), Some("5"));
    assert!(post.attribute("registration.id").is_some());
    assert_eq!(post.attribute("error.type"), None);
    let url = post.attribute("url.full").unwrap();
    assert!(url.ends_with("/traced"), "the query is stripped: {url}");
    let authority = format!(
        "{}:{}",
        post.attribute("server.address").unwrap(),
        post.attribute("server.port").unwrap()
    );
    assert!(url.contains(&authority), "{authority} is the URL's: {url}");

    // The webhook carried the attempt's context.
    let received = system
        .receiver
        .wait_for_requests(1, Duration::from_secs(5))
        .await
        .unwrap();
    let traceparent = received[0].header("traceparent").unwrap();
    assert_eq!(
        traceparent,
        format!("00-{}-{}-01", root.trace_id, post.span_id)
    );

    // No secret in any attribute of any span.
    let secrets = [
        key.as_str(),
        ADMIN_KEY,
        "pw",
        secret.as_str(),
        &secret[6..],
        ENCRYPTION_KEY,
        "query-secret",
    ];
    for span in otlp.spans() {
        for (name, value) in &span.attributes {
            for secret in secrets {
                assert!(
                    !(value.contains(secret) && secret.len() > 2) && value != "pw",
                    "span {} attribute {name} holds a secret: {value}",
                    span.name
                );
            }
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_publishers_traceparent_reaches_the_delivery() {
    let (otlp, system) = traced_system().await;
    let (partner, _) = system.partner_with_callback("/acme").await;

    let trace_id = "4bf92f3577b34da6a3ce929d0e0e4736";
    let caller_span = "00f067aa0ba902b7";
    let mut request = tonic::Request::new(unkeyed(&partner, "p-7"));
    request.metadata_mut().insert(
        "traceparent",
        format!("00-{trace_id}-{caller_span}-01").parse().unwrap(),
    );
    system.publisher().await.publish(request).await.unwrap();

    let post = otlp
        .wait_for(
            "the delivery span in the publisher's trace",
            Duration::from_secs(15),
            |s| s.trace_id == trace_id && s.kind == CLIENT,
        )
        .await
        .unwrap();
    let publish = otlp
        .spans()
        .into_iter()
        .find(|s| s.span_id == post.parent_span_id)
        .expect("the delivery's parent was exported");
    assert_eq!(publish.attribute("rpc.method"), Some("Publish"));
    assert_eq!(
        publish.parent_span_id, caller_span,
        "Publish joins the caller's span"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_attempt_span_says_why() {
    let (otlp, system) = traced_system().await;
    system.receiver.respond("/down", [Reply::status(503)]);
    let (partner, _) = system.partner_with_callback("/down").await;
    system
        .publisher()
        .await
        .publish(unkeyed(&partner, "p-8"))
        .await
        .unwrap();

    let post = otlp
        .wait_for("the failed attempt's span", Duration::from_secs(15), |s| {
            s.kind == CLIENT && s.attribute("error.type").is_some()
        })
        .await
        .unwrap();
    assert_eq!(post.name, "POST");
    assert_eq!(post.attribute("http.response.status_code"), Some("503"));
    assert_eq!(post.attribute("error.type"), Some("HTTP 503"));
    assert_eq!(
        post.status,
        (2, "HTTP 503".to_owned()),
        "status Error, with the reason"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_count_known_traffic() {
    let system = System::start().await;
    // One endpoint fails once, asking for a pause long enough to observe the
    // error state; the other answers at once.
    system
        .receiver
        .respond("/flaky", [Reply::status(500).header("retry-after", "2")]);
    let (ok_partner, ok_key) = system.partner_with_callback("/ok").await;
    let (flaky_partner, _) = system.partner_with_callback("/flaky").await;
    let (lonely, lonely_key) = system.partner_with_callback("/lonely").await;
    let deleted = system
        .rest(
            &lonely_key,
            Method::DELETE,
            &format!("/{lonely}/callbacks/5"),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(deleted.status(), StatusCode::NO_CONTENT);

    let mut publisher = system.publisher().await;
    let publish = |partner: &str| unkeyed(partner, "p-1");
    for _ in 0..3 {
        publisher.publish(publish(&ok_partner)).await.unwrap();
    }
    publisher.publish(publish(&flaky_partner)).await.unwrap();
    publisher.publish(publish(&lonely)).await.unwrap();

    // While the flaky endpoint waits out its Retry-After: one registration
    // in error state, one delivery pending.
    let (registry_admin, dispatcher_admin, http) =
        (system.registry_admin, system.dispatcher_admin, &system.http);
    eventually(
        "the registry to count one registration in error state",
        Duration::from_secs(10),
        || async move {
            (metric(
                http,
                registry_admin,
                "callbacks_registrations_in_error_state",
                &[],
            )
            .await
                == Some(1.0))
            .then_some(())
        },
    )
    .await
    .unwrap();
    assert_eq!(
        metric(http, dispatcher_admin, "callbacks_queue_pending", &[]).await,
        Some(1.0)
    );

    // Then everything is delivered, and the counters say exactly that.
    eventually(
        "four deliveries to finish",
        Duration::from_secs(15),
        || async move {
            (metric(
                http,
                dispatcher_admin,
                "callbacks_deliveries_finished_total",
                &[("status", "delivered")],
            )
            .await
                == Some(4.0))
            .then_some(())
        },
    )
    .await
    .unwrap();
    let dispatcher = |name: &'static str, labels: &'static [(&'static str, &'static str)]| {
        metric(http, dispatcher_admin, name, labels)
    };
    assert_eq!(
        dispatcher(
            "callbacks_events_published_total",
            &[("outcome", "delivery")]
        )
        .await,
        Some(4.0)
    );
    assert_eq!(
        dispatcher(
            "callbacks_events_published_total",
            &[("outcome", "no_subscriber")]
        )
        .await,
        Some(1.0)
    );
    assert_eq!(
        dispatcher(
            "callbacks_delivery_attempts_total",
            &[("outcome", "delivered")]
        )
        .await,
        Some(4.0)
    );
    assert_eq!(
        dispatcher(
            "callbacks_delivery_attempts_total",
            &[("outcome", "failed")]
        )
        .await,
        Some(1.0)
    );
    assert_eq!(dispatcher("callbacks_queue_pending", &[]).await, Some(0.0));
    assert_eq!(
        dispatcher("callbacks_delivery_attempt_duration_seconds_count", &[]).await,
        Some(5.0)
    );
    assert_eq!(
        dispatcher(
            "rpc_server_requests_total",
            &[
                ("rpc_service", "callbacks.dispatcher.v1.DispatcherService"),
                ("rpc_method", "Publish"),
                ("rpc_grpc_status_code", "0")
            ]
        )
        .await,
        Some(5.0)
    );
    eventually(
        "the error state to clear",
        Duration::from_secs(5),
        || async move {
            (metric(
                http,
                registry_admin,
                "callbacks_registrations_in_error_state",
                &[],
            )
            .await
                == Some(0.0))
            .then_some(())
        },
    )
    .await
    .unwrap();

    // The gateway counts its requests by route template, never by path.
    let created = metric(
        http,
        system.gateway.addr,
        "http_server_requests_total",
        &[
            ("http_request_method", "PUT"),
            (
                "http_route",
                "/{partnerUniqueID}/callbacks/{notificationType}",
            ),
            ("http_response_status_code", "201"),
        ],
    )
    .await;
    assert_eq!(created, Some(3.0));
    let text = http
        .get(format!("http://{}/metrics", system.gateway.addr))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    for id in [&ok_partner, &flaky_partner, &lonely] {
        assert!(!text.contains(id.as_str()), "an id became a label value");
    }
    let _ = ok_key;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn logs_carry_ids_and_never_secrets() {
    let dir = std::env::temp_dir().join(format!("e2e-logs-{}", uuid::Uuid::new_v4()));
    std::fs::create_dir_all(&dir).unwrap();
    let system = System::start_with(Options {
        logs: Some((dir.clone(), "debug")),
        ..Options::default()
    })
    .await;
    let (partner, key) = system.partner_with_callback("/acme").await;
    let password = "pw";
    let secret: Value = system
        .rest(
            &key,
            Method::GET,
            &format!("/{partner}/callbacks/5/secret/rotate"),
        )
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap_or(json!({}));
    let rotated: Value = system
        .rest(
            &key,
            Method::POST,
            &format!("/{partner}/callbacks/5/secret/rotate"),
        )
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let request_id = "9b2f3c4d-5e6f-4a1b-8c2d-3e4f5a6b7c8d";
    let echo = system
        .rest(
            &key,
            Method::POST,
            &format!("/v1/callbacks/echo/{partner}/5"),
        )
        .header("content-type", "application/json")
        .header("x-request-id", request_id)
        .body(r#"{"processUniqueId":"logged-1"}"#)
        .send()
        .await
        .unwrap();
    assert_eq!(echo.status(), StatusCode::ACCEPTED);
    system
        .receiver
        .wait_for_requests(1, Duration::from_secs(10))
        .await
        .unwrap();
    let basic = system.receiver.requests()[0]
        .header("authorization")
        .unwrap()
        .to_owned();
    let traceparent = system.receiver.requests()[0]
        .header("traceparent")
        .expect("the webhook carries the trace")
        .to_owned();
    // Let the services write their last lines.
    let mut system = system;
    system.gateway.stop().await.unwrap();
    system.dispatcher.stop().await.unwrap();
    system.registry.stop().await.unwrap();

    let mut all = String::new();
    for service in ["gateway", "registry-service", "dispatcher-service"] {
        all.push_str(&std::fs::read_to_string(dir.join(format!("{service}.log"))).unwrap());
    }
    let _ = std::fs::remove_dir_all(&dir);
    let current = rotated["secret"].as_str().unwrap();
    let previous = rotated["previousSecret"].as_str().unwrap();
    for (what, secret) in [
        ("the API key", key.as_str()),
        ("the admin key", ADMIN_KEY),
        ("the signing secret", current),
        ("the previous signing secret", previous),
        ("the secret's key material", &current[6..]),
        ("the basic-auth header", basic.trim_start_matches("Basic ")),
        ("the encryption key", ENCRYPTION_KEY),
    ] {
        assert!(!all.contains(secret), "{what} appears in the logs");
    }
    assert!(
        !all.contains(&format!("\"{password}\"")),
        "the callback password appears in the logs"
    );
    let _ = secret;

    // Every line is JSON; the gateway's access line for the echo carries the
    // request id and a trace id.
    let lines: Vec<Value> = all
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}")))
        .collect();
    assert!(lines.len() > 10);
    let access = lines
        .iter()
        .find(|l| l["message"] == "request" && l.to_string().contains(request_id))
        .expect("the echo's access log line");
    let ids: HashSet<&str> = ["request_id", "trace_id"]
        .into_iter()
        .filter(|k| access.to_string().contains(k))
        .collect();
    assert_eq!(ids.len(), 2, "{access}");

    // Nothing exports spans here, so no attempt span is made: the webhook
    // carries the context stored with the event, in the echo's trace, and
    // the attempt's log line names that trace.
    let parts: Vec<&str> = traceparent.split('-').collect();
    assert_eq!(parts.len(), 4, "{traceparent}");
    assert_eq!(
        (parts[0], parts[1].len(), parts[2].len(), parts[3]),
        ("00", 32, 16, "01"),
        "{traceparent}"
    );
    assert!(
        access.to_string().contains(parts[1]),
        "the echo's trace, {}: {access}",
        parts[1]
    );
    let attempt = lines
        .iter()
        .find(|l| l["message"] == "delivery attempt")
        .expect("the attempt's log line");
    assert_eq!(attempt["trace_id"], parts[1], "{attempt}");
    // A delivered attempt's line is for debugging; the attempt log, the
    // metrics and the traces hold it already.
    assert_eq!(
        (&attempt["outcome"], &attempt["level"]),
        (&json!("delivered"), &json!("DEBUG")),
        "{attempt}"
    );
}
