//! The operator CLI, run as the real binary against a real registry and
//! dispatcher (fresh databases), with `callbacksctl receive` as the webhook
//! endpoint.

// A failed unwrap is a failed test, which is what a test wants.
#![allow(clippy::unwrap_used)]

use std::process::Stdio;
use std::time::Duration;

use serde_json::Value;
use test_support::TestDb;
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::Command;
use tokio::sync::oneshot;

struct Services {
    registry: String,
    dispatcher: String,
    _dbs: (TestDb, TestDb),
    _stops: Vec<oneshot::Sender<()>>,
}

async fn services() -> Services {
    let registry_db = TestDb::new().await.unwrap();
    let dispatch_db = TestDb::new().await.unwrap();
    let mut config = registry_service::Config::for_database(registry_db.url());
    config.allow_http_callbacks = true;
    config.allowed_callback_networks = vec!["127.0.0.0/8".parse().unwrap()];
    let registry = registry_service::Application::build(config).await.unwrap();
    let registry_url = format!("http://{}", registry.local_addr());
    let (stop_registry, stopped) = oneshot::channel::<()>();
    tokio::spawn(registry.run_until_stopped(async {
        let _ = stopped.await;
    }));
    let mut config = dispatcher_service::Config::for_database(dispatch_db.url(), &registry_url);
    config.allow_http_callbacks = true;
    config.allowed_callback_networks = vec!["127.0.0.0/8".parse().unwrap()];
    config.retry_schedule = "100ms".into();
    config.connect_timeout = Duration::from_millis(500);
    config.response_timeout = Duration::from_secs(1);
    config.lease = Duration::from_secs(5);
    config.registry_cache_ttl = Duration::ZERO;
    let dispatcher = dispatcher_service::Application::build(config)
        .await
        .unwrap();
    let dispatcher_url = format!("http://{}", dispatcher.local_addr());
    let (stop_dispatcher, stopped) = oneshot::channel::<()>();
    tokio::spawn(dispatcher.run_until_stopped(async {
        let _ = stopped.await;
    }));
    Services {
        registry: registry_url,
        dispatcher: dispatcher_url,
        _dbs: (registry_db, dispatch_db),
        _stops: vec![stop_registry, stop_dispatcher],
    }
}

/// Runs `callbacksctl <args>`; returns (success, stdout, stderr).
async fn ctl(services: &Services, args: &[&str]) -> (bool, String, String) {
    let output = Command::new(env!("CARGO_BIN_EXE_callbacksctl"))
        .args([
            "--registry",
            &services.registry,
            "--dispatcher",
            &services.dispatcher,
        ])
        .args(args)
        .output()
        .await
        .unwrap();
    (
        output.status.success(),
        String::from_utf8(output.stdout).unwrap(),
        String::from_utf8(output.stderr).unwrap(),
    )
}

async fn ctl_json(services: &Services, args: &[&str]) -> Value {
    let mut all = vec!["--json"];
    all.extend_from_slice(args);
    let (ok, stdout, stderr) = ctl(services, &all).await;
    assert!(ok, "callbacksctl {args:?} failed: {stderr}");
    serde_json::from_str(&stdout).unwrap_or_else(|e| panic!("not JSON ({e}): {stdout}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn partners_keys_and_types() {
    let s = services().await;
    let created = ctl_json(
        &s,
        &["partner", "create", "Acme Payments", "--key-label", "prod"],
    )
    .await;
    let partner = created[0]["partner"].as_str().unwrap().to_owned();
    assert!(created[0]["api_key"].as_str().unwrap().starts_with("pcb_"));

    // Tables for people.
    let (ok, table, _) = ctl(&s, &["partner", "list"]).await;
    assert!(ok);
    assert!(table.starts_with("PARTNER"), "{table}");
    assert!(table.contains("Acme Payments"));

    let issued = ctl_json(&s, &["key", "issue", &partner, "--label", "ci"]).await;
    let key_id = issued[0]["key"].as_str().unwrap().to_owned();
    let listed = ctl_json(&s, &["key", "list", &partner]).await;
    assert_eq!(listed.as_array().unwrap().len(), 2);
    let revoked = ctl_json(&s, &["key", "revoke", &partner, &key_id]).await;
    assert!(revoked[0]["revoked"].is_string());
    assert_eq!(
        ctl_json(&s, &["key", "list", &partner])
            .await
            .as_array()
            .unwrap()
            .len(),
        1
    );
    assert_eq!(
        ctl_json(&s, &["key", "list", &partner, "--all"])
            .await
            .as_array()
            .unwrap()
            .len(),
        2
    );

    let types = ctl_json(&s, &["types", "list"]).await;
    let ids: Vec<i64> = types
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["type"].as_i64().unwrap())
        .collect();
    assert_eq!(ids, [5, 6, 7, 900]);
    let added = ctl_json(
        &s,
        &[
            "types",
            "add",
            "12",
            "settlement.completed",
            "--description",
            "Settled",
        ],
    )
    .await;
    assert_eq!(added[0]["echoable"], false);
    assert_eq!(added[0]["payload_schema"], Value::Null);
    assert_eq!(types[0]["payload_schema"]["type"], "object", "seeded");

    // A payload schema from a file, then removed; a bad one is refused.
    let file =
        std::env::temp_dir().join(format!("callbacksctl-schema-{}.json", std::process::id()));
    std::fs::write(&file, r#"{"type": "object", "required": ["settlementId"]}"#).unwrap();
    let set = ctl_json(&s, &["types", "schema", "12", file.to_str().unwrap()]).await;
    assert_eq!(set[0]["payload_schema"]["required"][0], "settlementId");
    std::fs::write(&file, r#"{"type": "objects"}"#).unwrap();
    let (ok, _, stderr) = ctl(&s, &["types", "schema", "12", file.to_str().unwrap()]).await;
    assert!(
        !ok && stderr.contains("not a valid JSON Schema"),
        "{stderr}"
    );
    std::fs::remove_file(&file).unwrap();
    let cleared = ctl_json(&s, &["types", "schema", "12", "--clear"]).await;
    assert_eq!(cleared[0]["payload_schema"], Value::Null);
    let (ok, _, stderr) = ctl(&s, &["types", "schema", "12"]).await;
    assert!(!ok && stderr.contains("<FILE>"), "{stderr}");

    // Mistakes are reported as the service phrased them, with exit code 1.
    let (ok, _, stderr) = ctl(&s, &["partner", "show", &uuid_like()]).await;
    assert!(!ok);
    assert!(stderr.contains("NotFound"), "{stderr}");
    let (ok, _, stderr) = ctl(&s, &["partner", "show", "nope"]).await;
    assert!(!ok && stderr.contains("must be a GUID"), "{stderr}");
}

fn uuid_like() -> String {
    "00000000-0000-4000-8000-000000000000".to_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn publish_receive_inspect_and_redeliver() {
    let s = services().await;
    let partner = ctl_json(&s, &["partner", "create", "Acme"]).await[0]["partner"]
        .as_str()
        .unwrap()
        .to_owned();

    // A callback to a local `callbacksctl receive`.
    let port = test_support::process::free_port().unwrap();
    let mut registry =
        callbacks_proto::registry::v1::registry_service_client::RegistryServiceClient::connect(
            s.registry.clone(),
        )
        .await
        .unwrap();
    registry
        .upsert_callback(callbacks_proto::registry::v1::UpsertCallbackRequest {
            partner_id: partner.clone(),
            notification_type: 5,
            callback_url: format!("http://127.0.0.1:{port}/hooks"),
            callback_user_name: None,
            callback_password: None,
            merchant_id: None,
            retry_policy: None,
            signature_scheme: None,
        })
        .await
        .unwrap();
    let secret = registry
        .get_signing_secret(callbacks_proto::registry::v1::GetSigningSecretRequest {
            partner_id: partner.clone(),
            notification_type: 5,
        })
        .await
        .unwrap()
        .into_inner()
        .current;
    let mut receiver = Command::new(env!("CARGO_BIN_EXE_callbacksctl"))
        .args([
            "receive",
            "--listen",
            &format!("127.0.0.1:{port}"),
            "--secret",
            &secret,
        ])
        .stdout(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(receiver.stdout.take().unwrap()).lines();
    let first = tokio::time::timeout(Duration::from_secs(10), lines.next_line())
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    assert!(first.starts_with("listening on"), "{first}");

    let published = ctl_json(
        &s,
        &["publish", &partner, "5", r#"{"processUniqueId":"p-9"}"#],
    )
    .await;
    let delivery = published[0]["delivery"].as_str().unwrap().to_owned();

    // The receiver prints the delivery and a valid signature.
    let mut printed = String::new();
    let saw = tokio::time::timeout(Duration::from_secs(10), async {
        while let Ok(Some(line)) = lines.next_line().await {
            printed.push_str(&line);
            printed.push('\n');
            if line.contains("body:") {
                return;
            }
        }
    })
    .await;
    assert!(saw.is_ok(), "nothing arrived: {printed}");
    assert!(
        printed.contains(&format!("webhook-id: {delivery}")),
        "{printed}"
    );
    assert!(printed.contains("signature: valid"), "{printed}");
    assert!(
        printed.contains(r#"body: {"processUniqueId":"p-9"}"#),
        "{printed}"
    );

    // The delivery, inspected and redelivered.
    let shown = test_support::eventually(
        "the delivery to be delivered",
        Duration::from_secs(5),
        || {
            let s = &s;
            let delivery = delivery.clone();
            async move {
                let shown = ctl_json(s, &["delivery", "show", &delivery]).await;
                (shown["status"] == "delivered").then_some(shown)
            }
        },
    )
    .await
    .unwrap();
    assert_eq!(shown["attempts_log"][0]["status"], 204);
    let again = ctl_json(&s, &["redeliver", &delivery]).await;
    assert_eq!(again[0]["status"], "pending");
    let listed = ctl_json(&s, &["delivery", "list", &partner, "--type", "5"]).await;
    assert_eq!(listed[0]["delivery"], delivery.as_str());

    // A receiver that is gone puts the registration in the error list.
    receiver.start_kill().unwrap();
    receiver.wait().await.unwrap();
    ctl_json(
        &s,
        &[
            "publish",
            &partner,
            "5",
            r#"{"processUniqueId":"p-10"}"#,
            "--ordering-key",
            "order-1",
        ],
    )
    .await;
    let (ok, _, stderr) = ctl(
        &s,
        &[
            "publish",
            &partner,
            "5",
            r#"{"processUniqueId":"p-11"}"#,
            "--ordering-key",
            "",
        ],
    )
    .await;
    assert!(!ok && stderr.contains("ordering_key"), "{stderr}");
    let errors = test_support::eventually(
        "the registration to be in error state",
        Duration::from_secs(10),
        || {
            let s = &s;
            async move {
                let errors = ctl_json(s, &["errors"]).await;
                (errors.as_array()?.len() == 1).then_some(errors)
            }
        },
    )
    .await
    .unwrap();
    assert_eq!(errors[0]["partner"], partner.as_str());
    assert_eq!(errors[0]["error"], "connection refused");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_operator_pauses_and_resumes_a_callback() {
    let s = services().await;
    let partner = ctl_json(&s, &["partner", "create", "Acme"]).await[0]["partner"]
        .as_str()
        .unwrap()
        .to_owned();
    let mut registry =
        callbacks_proto::registry::v1::registry_service_client::RegistryServiceClient::connect(
            s.registry.clone(),
        )
        .await
        .unwrap();
    registry
        .upsert_callback(callbacks_proto::registry::v1::UpsertCallbackRequest {
            partner_id: partner.clone(),
            notification_type: 5,
            callback_url: "http://127.0.0.1:9/hooks".into(),
            ..Default::default()
        })
        .await
        .unwrap();

    let paused = ctl_json(&s, &["pause", &partner, "5", "--reason", "incident 42"]).await;
    assert_eq!(paused[0]["paused"], "incident 42");
    let (ok, _, stderr) = ctl(&s, &["pause", &partner, "5"]).await;
    assert!(!ok && stderr.contains("already paused"), "{stderr}");
    let listed = ctl_json(&s, &["callbacks", &partner]).await;
    assert_eq!(listed[0]["paused"], "incident 42");

    let resumed = ctl_json(&s, &["resume", &partner, "5"]).await;
    assert!(resumed[0]["paused"].is_null(), "{resumed}");
    let (ok, _, stderr) = ctl(&s, &["resume", &partner, "5"]).await;
    assert!(!ok && stderr.contains("not paused"), "{stderr}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_operator_plans_and_runs_a_recovery() {
    let s = services().await;
    let partner = ctl_json(&s, &["partner", "create", "Acme"]).await[0]["partner"]
        .as_str()
        .unwrap()
        .to_owned();
    let range = [
        "--since",
        "2026-01-01T00:00:00Z",
        "--until",
        "2026-01-02T00:00:00Z",
    ];
    let mut dry = vec!["recover", partner.as_str(), "--type", "5", "--dry-run"];
    dry.extend(range);
    let planned = ctl_json(&s, &dry).await;
    assert_eq!(planned[0]["state"], "planned");
    assert_eq!(planned[0]["total"], 0);

    let mut run = vec!["recover", partner.as_str()];
    run.extend(range);
    let started = ctl_json(&s, &run).await;
    let id = started[0]["recovery"].as_str().unwrap().to_owned();
    let read = ctl_json(&s, &["recovery", &id]).await;
    assert_eq!(read[0]["state"], "done");

    let (ok, _, stderr) = ctl(
        &s,
        &[
            "recover",
            &partner,
            "--since",
            "2026-01-02T00:00:00Z",
            "--until",
            "2026-01-01T00:00:00Z",
        ],
    )
    .await;
    assert!(!ok && stderr.contains("the range is empty"), "{stderr}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_operator_erases_payloads() {
    let s = services().await;
    let partner = ctl_json(&s, &["partner", "create", "Acme"]).await[0]["partner"]
        .as_str()
        .unwrap()
        .to_owned();
    let published = ctl_json(
        &s,
        &["publish", &partner, "5", r#"{"processUniqueId":"p-9"}"#],
    )
    .await;
    let event = published[0]["event"].as_str().unwrap().to_owned();

    let erased = ctl_json(&s, &["erase-event", &event]).await;
    assert_eq!(erased[0]["erased_events"], 1);
    let again = ctl_json(&s, &["erase-payloads", &partner]).await;
    assert_eq!(again[0]["erased_events"], 0, "erased already");
    let unknown = "01a25000-0000-7000-8000-000000000000";
    let (ok, _, stderr) = ctl(&s, &["erase-event", unknown]).await;
    assert!(!ok && stderr.contains("NotFound"), "{stderr}");
}
