//! The tenant isolation matrix, generated from the OpenAPI document: every
//! operation the gateway documents × every kind of caller, with partner
//! B's ids in every path. A new route joins the matrix by being documented;
//! a new path parameter or request body stops the test until it says
//! which of B's values fills it.
//!
//! What it shows: every refusal that is due happens, with the status the
//! contract names; no refused answer carries B's data; the refused calls
//! change no row of either database and send nothing to B's endpoint; and
//! the callers who are entitled are served.

use std::collections::BTreeMap;
use std::time::Duration;

use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

use crate::{ADMIN_KEY, Stack};

/// Who calls. B owns every id in the paths.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Caller {
    Own,
    OtherPartner,
    NoKey,
    BadKey,
    RevokedKey,
    Admin,
}

const CALLERS: [Caller; 6] = [
    Caller::Own,
    Caller::OtherPartner,
    Caller::NoKey,
    Caller::BadKey,
    Caller::RevokedKey,
    Caller::Admin,
];

/// The key an operation asks for, as its `security` says.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Security {
    Partner,
    Admin,
    Public,
}

/// One documented operation with B's values filled in.
#[derive(Debug)]
struct Operation {
    method: Method,
    template: String,
    path: String,
    security: Security,
    body: Option<Value>,
}

/// Partner B's world, and A's key.
struct World {
    b_key: String,
    a_key: String,
    revoked_key: String,
    /// Path parameter name → B's value.
    ids: BTreeMap<&'static str, String>,
    /// B's data that no answer to another caller may carry.
    secrets: Vec<String>,
}

/// The dispatcher's tables' checksums, but for the replicas' heartbeats,
/// which change every poll interval whatever the callers do.
async fn dispatcher_rows(db: &test_support::TestDb) -> std::collections::BTreeMap<String, String> {
    let mut rows = db.checksums().await.unwrap();
    rows.remove("dispatcher_replicas");
    rows
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_operation_refuses_every_caller_but_its_own() {
    let stack = Stack::with_delivery().await;
    let world = partner_b(&stack).await;
    let operations = documented_operations(&stack, &world).await;
    assert!(operations.len() >= 20, "{} operations", operations.len());
    let delivery = stack.delivery.as_ref().unwrap();

    let before = (
        stack.db.checksums().await.unwrap(),
        dispatcher_rows(&delivery.db).await,
    );
    let received = delivery.receiver.requests().len();
    let mut refused = 0;
    for operation in &operations {
        for caller in CALLERS {
            let Some(expected) = refusal(operation, caller) else {
                continue;
            };
            let (status, body) = call(&stack, &world, operation, caller).await;
            assert_eq!(
                status, expected,
                "{caller:?} on {} {}: {body}",
                operation.method, operation.template
            );
            assert!(
                body.contains("\"status\""),
                "{caller:?} on {} {}: a refusal is a problem document: {body}",
                operation.method,
                operation.template
            );
            for secret in &world.secrets {
                assert!(
                    !body.contains(secret.as_str()),
                    "{caller:?} on {} {} answered B's {secret:?}: {body}",
                    operation.method,
                    operation.template
                );
            }
            refused += 1;
        }
    }
    let after = (
        stack.db.checksums().await.unwrap(),
        dispatcher_rows(&delivery.db).await,
    );
    assert_eq!(
        before.0, after.0,
        "the registry's rows after {refused} refusals"
    );
    assert_eq!(
        before.1, after.1,
        "the dispatcher's rows after {refused} refusals"
    );
    assert_eq!(
        delivery.receiver.requests().len(),
        received,
        "a refused call sent something to B's endpoint"
    );
    println!(
        "isolation matrix: {} operations × {} callers, {refused} refusals, every one as due, \
         0 rows changed in {} tables",
        operations.len(),
        CALLERS.len(),
        before.0.len() + before.1.len()
    );

    // The entitled callers are served; destructive operations last, so
    // every operation finds B's things in place.
    let mut entitled: Vec<_> = operations
        .iter()
        .filter(|operation| operation.security != Security::Public)
        .collect();
    entitled.sort_by_key(|operation| operation.method == Method::DELETE);
    for operation in entitled {
        let caller = match operation.security {
            Security::Admin => Caller::Admin,
            _ => Caller::Own,
        };
        let (status, body) = call(&stack, &world, operation, caller).await;
        assert!(
            status.is_success(),
            "{caller:?} on {} {}: {status} {body}",
            operation.method,
            operation.template
        );
    }
}

/// The status a caller must be refused with, or `None` where it is served.
fn refusal(operation: &Operation, caller: Caller) -> Option<StatusCode> {
    match (operation.security, caller) {
        (Security::Public, _)
        | (Security::Partner, Caller::Own)
        | (Security::Admin, Caller::Admin) => None,
        // A's own key, on a path naming B, is told it is the wrong partner;
        // on a path naming only B's thing, it finds nothing (existence is
        // not disclosed).
        (Security::Partner, Caller::OtherPartner)
            if operation.template.contains("{partnerUniqueID}") =>
        {
            Some(StatusCode::FORBIDDEN)
        }
        (Security::Partner, Caller::OtherPartner) if operation.template.contains('{') => {
            Some(StatusCode::NOT_FOUND)
        }
        // What names none of B's things (the catalogue) is every partner's.
        (Security::Partner, Caller::OtherPartner) => None,
        _ => Some(StatusCode::UNAUTHORIZED),
    }
}

async fn call(
    stack: &Stack,
    world: &World,
    operation: &Operation,
    caller: Caller,
) -> (StatusCode, String) {
    let mut request = stack.request(operation.method.clone(), &operation.path);
    let key = match caller {
        Caller::Own => Some(world.b_key.as_str()),
        Caller::OtherPartner => Some(world.a_key.as_str()),
        Caller::NoKey => None,
        Caller::BadKey => Some("pcb_0000000000000000000000000000000000000000000"),
        Caller::RevokedKey => Some(world.revoked_key.as_str()),
        Caller::Admin => Some(ADMIN_KEY),
    };
    if let Some(key) = key {
        request = request.bearer_auth(key);
    }
    if let Some(body) = &operation.body {
        request = request.json(body);
    }
    let response = request.send().await.unwrap();
    let status = response.status();
    (status, response.text().await.unwrap())
}

/// Every operation of the served document, with B's ids in its path.
async fn documented_operations(stack: &Stack, world: &World) -> Vec<Operation> {
    let doc = json_of(stack.request(Method::GET, "/openapi.json")).await;
    let mut operations = Vec::new();
    for (template, item) in doc["paths"].as_object().unwrap() {
        for (method, operation) in item.as_object().unwrap() {
            let Ok(method) = method.to_uppercase().parse::<Method>() else {
                continue;
            };
            let security = operation["security"].to_string();
            let security = if security.contains("partnerApiKey") {
                Security::Partner
            } else if security.contains("adminApiKey") {
                Security::Admin
            } else {
                Security::Public
            };
            let body = operation.get("requestBody").map(|_| {
                request_body(&method, template).unwrap_or_else(|| {
                    panic!("{method} {template} takes a body: add one to request_body")
                })
            });
            operations.push(Operation {
                path: fill(template, &world.ids),
                method,
                template: template.clone(),
                security,
                body,
            });
        }
    }
    operations
}

/// `template` with each `{name}` replaced by B's value for it.
fn fill(template: &str, ids: &BTreeMap<&str, String>) -> String {
    let mut path = template.to_owned();
    while let Some(start) = path.find('{') {
        let end = start + path[start..].find('}').unwrap();
        let name = &path[start + 1..end];
        let value = ids
            .get(name)
            .unwrap_or_else(|| panic!("a new path parameter {{{name}}}: add B's value to `ids`"));
        path.replace_range(start..=end, value);
    }
    path
}

/// A valid body for each operation that takes one.
fn request_body(method: &Method, template: &str) -> Option<Value> {
    let body = match (method.as_str(), template) {
        ("PUT", "/{partnerUniqueID}/callbacks/{notificationType}") => {
            json!({"callBackUrl": "https://127.0.0.1:9/evil", "callBackUserName": "mallory", "callBackPassword": "stolen"})
        }
        ("POST", "/v1/callbacks/echo/{partnerUniqueID}/{notificationTypeID}") => {
            json!({"processUniqueId": "matrix-echo"})
        }
        ("POST", "/v1/admin/partners") => json!({"name": "Initech"}),
        ("POST", "/v1/admin/partners/{partnerUniqueID}/keys") => json!({"label": "matrix"}),
        ("POST", "/v1/admin/partners/{partnerUniqueID}/portal-links") => {
            json!({"expiresInSeconds": 600})
        }
        ("POST", "/v1/admin/notification-types") => {
            json!({"notificationTypeId": 78, "name": "matrix.created", "echoable": true})
        }
        ("PUT", "/v1/admin/notification-types/{notificationTypeId}/payload-schema") => {
            json!({"type": "object"})
        }
        ("POST", "/{partnerUniqueID}/callbacks/{notificationType}/pause") => {
            json!({"reason": "matrix"})
        }
        ("POST", "/{partnerUniqueID}/callbacks/{notificationType}/secret/rotate") => {
            json!({"previousExpiresInSeconds": 0})
        }
        ("POST", "/v1/callbacks/recoveries/{partnerUniqueID}") => {
            json!({"since": "2026-01-01T00:00:00Z", "until": "2026-01-02T00:00:00Z"})
        }
        _ => return None,
    };
    Some(body)
}

/// Partner B with a registration (password and secret), a delivered test
/// notification, a spare key and a revoked one; partner A with a key.
async fn partner_b(stack: &Stack) -> World {
    let receiver = &stack.delivery.as_ref().unwrap().receiver;
    let (_, a_key) = stack.partner("Acme Isolation").await;
    let (b, b_key) = stack.partner("Globex Isolation").await;
    let admin = |method: Method, path: String, body: Value| async move {
        let response = stack
            .as_key(ADMIN_KEY, method, &path)
            .json(&body)
            .send()
            .await
            .unwrap();
        assert!(
            response.status().is_success(),
            "{path}: {}",
            response.status()
        );
        response.json::<Value>().await.unwrap()
    };
    let keys = format!("/v1/admin/partners/{b}/keys");
    let spare = admin(Method::POST, keys.clone(), json!({"label": "spare"})).await;
    let revoked = admin(Method::POST, keys.clone(), json!({"label": "revoked"})).await;
    let revoked_id = revoked["keyId"].as_str().unwrap();
    let revoke = stack
        .as_key(ADMIN_KEY, Method::DELETE, &format!("{keys}/{revoked_id}"))
        .send()
        .await
        .unwrap();
    assert!(revoke.status().is_success());
    admin(
        Method::POST,
        "/v1/admin/notification-types".into(),
        json!({"notificationTypeId": 77, "name": "matrix.type", "echoable": true}),
    )
    .await;

    let url = receiver.url("/globex-isolation");
    let created = stack
        .put_callback(
            &b_key,
            &b,
            5,
            json!({"callBackUrl": url, "callBackUserName": "globex-user", "callBackPassword": "globex-password-42"}),
        )
        .await;
    assert_eq!(created.status(), StatusCode::CREATED);
    let registration: Value = created.json().await.unwrap();
    let secret =
        json_of(stack.as_key(&b_key, Method::GET, &format!("/{b}/callbacks/5/secret"))).await;
    let echo = json_of(
        stack
            .as_key(&b_key, Method::POST, &format!("/v1/callbacks/echo/{b}/5"))
            .json(&json!({"processUniqueId": "globex-process-314159"})),
    )
    .await;
    let delivery_id = echo["deliveryId"].as_str().unwrap().to_owned();
    // Delivered, so redelivering is allowed and nothing moves on its own.
    let delivered = test_support::eventually(
        "B's test notification delivered",
        Duration::from_secs(20),
        || async {
            let delivery: Value = stack
                .as_key(
                    &b_key,
                    Method::GET,
                    &format!("/v1/callbacks/deliveries/{delivery_id}"),
                )
                .send()
                .await
                .ok()?
                .json()
                .await
                .ok()?;
            (delivery["status"] == "delivered").then_some(delivery)
        },
    )
    .await
    .unwrap();

    let recovery = json_of(
        stack
            .as_key(
                &b_key,
                Method::POST,
                &format!("/v1/callbacks/recoveries/{b}"),
            )
            .json(&json!({"since": "2026-01-01T00:00:00Z", "until": "2026-01-02T00:00:00Z"})),
    )
    .await;

    let ids = BTreeMap::from([
        ("partnerUniqueID", b.clone()),
        (
            "recoveryId",
            recovery["recoveryId"].as_str().unwrap().to_owned(),
        ),
        ("notificationType", "5".to_owned()),
        ("notificationTypeID", "5".to_owned()),
        ("notificationTypeId", "77".to_owned()),
        (
            "registrationId",
            registration["registrationId"].as_str().unwrap().to_owned(),
        ),
        ("deliveryId", delivery_id),
        ("eventId", delivered["eventId"].as_str().unwrap().to_owned()),
        ("keyId", spare["keyId"].as_str().unwrap().to_owned()),
    ]);
    let secrets = vec![
        "Globex Isolation".to_owned(),
        url,
        "globex-user".to_owned(),
        "globex-password-42".to_owned(),
        "globex-process-314159".to_owned(),
        secret["secret"].as_str().unwrap().to_owned(),
        b_key.clone(),
        spare["token"].as_str().unwrap().to_owned(),
    ];
    World {
        b_key,
        a_key,
        revoked_key: revoked["token"].as_str().unwrap().to_owned(),
        ids,
        secrets,
    }
}

async fn json_of(request: reqwest::RequestBuilder) -> Value {
    request.send().await.unwrap().json().await.unwrap()
}
