//! The contract's callback rows: PUT (201/200), GET one, GET list with
//! filters and paging, DELETE (soft), the signing secret, and every way a
//! request can be malformed.

use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

use crate::{Stack, URL, expect_invalid, expect_problem};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn put_creates_then_updates_and_get_reads() {
    let stack = Stack::start().await;
    let (partner, key) = stack.partner("Acme").await;

    let created = stack
        .put_callback(&key, &partner, 5, json!({"callBackUrl": URL}))
        .await;
    assert_eq!(created.status(), StatusCode::CREATED);
    let first: Value = created.json().await.unwrap();
    assert_eq!(first["callBackUrl"], URL);
    assert_eq!(first["partnerUniqueId"], partner.as_str());
    assert_eq!(first["notificationType"], 5);
    assert_eq!(first["isActive"], true);
    assert_eq!(first["isInErrorState"], false);
    assert_eq!(first["hasPassword"], false);
    for field in ["registrationId", "createdAt", "updatedAt"] {
        assert!(first[field].is_string(), "{field}");
    }
    for field in [
        "deactivatedAt",
        "errorStateReason",
        "detectedErrorStateAt",
        "callBackUserName",
    ] {
        assert!(first[field].is_null(), "{field}");
    }

    let updated = stack
        .put_callback(
            &key,
            &partner,
            5,
            json!({"callBackUrl": "https://hooks.example.com/v2", "callBackUserName": "acme", "callBackPassword": "pw-123"}),
        )
        .await;
    assert_eq!(updated.status(), StatusCode::OK);
    let text = updated.text().await.unwrap();
    assert!(!text.contains("pw-123"), "the password is never returned");
    let second: Value = serde_json::from_str(&text).unwrap();
    assert_eq!(second["registrationId"], first["registrationId"]);
    assert_eq!(second["hasPassword"], true);
    assert_eq!(second["callBackUserName"], "acme");

    let got = stack
        .as_key(&key, Method::GET, &format!("/{partner}/callbacks/5"))
        .send()
        .await
        .unwrap();
    assert_eq!(got.status(), StatusCode::OK);
    let got: Value = got.json().await.unwrap();
    assert_eq!(got["callBackUrl"], "https://hooks.example.com/v2");

    let missing = stack
        .as_key(&key, Method::GET, &format!("/{partner}/callbacks/6"))
        .send()
        .await
        .unwrap();
    expect_problem(missing, StatusCode::NOT_FOUND).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn delete_is_soft_and_is_active_filters() {
    let stack = Stack::start().await;
    let (partner, key) = stack.partner("Acme").await;
    stack
        .put_callback(&key, &partner, 5, json!({"callBackUrl": URL}))
        .await;
    stack
        .put_callback(&key, &partner, 6, json!({"callBackUrl": URL}))
        .await;

    let path = format!("/{partner}/callbacks/5");
    let deleted = stack
        .as_key(&key, Method::DELETE, &path)
        .send()
        .await
        .unwrap();
    assert_eq!(deleted.status(), StatusCode::NO_CONTENT);
    assert!(deleted.bytes().await.unwrap().is_empty());
    let again = stack
        .as_key(&key, Method::DELETE, &path)
        .send()
        .await
        .unwrap();
    expect_problem(again, StatusCode::NOT_FOUND).await;
    let get = stack.as_key(&key, Method::GET, &path).send().await.unwrap();
    expect_problem(get, StatusCode::NOT_FOUND).await;

    let list = |query: &str| {
        stack
            .as_key(&key, Method::GET, &format!("/{partner}/callbacks{query}"))
            .send()
    };
    // Seed 000: the list is of the currently active subscriptions.
    for query in ["", "?isActive=true"] {
        let active: Value = list(query).await.unwrap().json().await.unwrap();
        let active = active["results"].as_array().unwrap();
        assert_eq!(active.len(), 1, "{query}");
        assert_eq!(active[0]["notificationType"], 6);
    }
    let all: Value = list("?isActive=all").await.unwrap().json().await.unwrap();
    assert_eq!(all["results"].as_array().unwrap().len(), 2);
    let inactive: Value = list("?isActive=false").await.unwrap().json().await.unwrap();
    let inactive = inactive["results"].as_array().unwrap();
    assert_eq!(inactive.len(), 1);
    assert_eq!(inactive[0]["isActive"], false);
    assert!(inactive[0]["deactivatedAt"].is_string());

    let id = inactive[0]["registrationId"].as_str().unwrap();
    let by_id: Value = list(&format!("?registrationId={id}"))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(by_id["results"].as_array().unwrap().len(), 1);
    assert_eq!(by_id["results"][0]["registrationId"], id);

    // Seed 003: read by its id, deactivated or not; another partner's id
    // is not found.
    let one = stack
        .as_key(
            &key,
            Method::GET,
            &format!("/v1/callbacks/registrations/{id}"),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(one.status(), StatusCode::OK);
    let one: Value = one.json().await.unwrap();
    assert_eq!(one["registrationId"], id);
    assert_eq!(one["isActive"], false);
    let (_, other_key) = stack.partner("Globex").await;
    let theirs = stack
        .as_key(
            &other_key,
            Method::GET,
            &format!("/v1/callbacks/registrations/{id}"),
        )
        .send()
        .await
        .unwrap();
    expect_problem(theirs, StatusCode::NOT_FOUND).await;
    let malformed = stack
        .as_key(&key, Method::GET, "/v1/callbacks/registrations/not-a-guid")
        .send()
        .await
        .unwrap();
    expect_problem(malformed, StatusCode::BAD_REQUEST).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn list_pages() {
    let stack = Stack::start().await;
    let (partner, key) = stack.partner("Acme").await;
    for kind in [5, 6, 7] {
        stack
            .put_callback(&key, &partner, kind, json!({"callBackUrl": URL}))
            .await;
    }
    let page = |number: u32, size: u32| {
        let path = format!("/{partner}/callbacks?pageNumber={number}&pageSize={size}");
        let request = stack.as_key(&key, Method::GET, &path);
        async move {
            let response = request.send().await.unwrap();
            assert_eq!(response.status(), StatusCode::OK);
            response.json::<Value>().await.unwrap()
        }
    };
    let types = |v: &Value| -> Vec<i64> {
        v["results"]
            .as_array()
            .unwrap()
            .iter()
            .map(|r| r["notificationType"].as_i64().unwrap())
            .collect()
    };

    let first = page(1, 2).await;
    assert_eq!(types(&first), [5, 6]);
    assert_eq!(
        (
            &first["pageNumber"],
            &first["pageSize"],
            &first["hasPreviousPage"],
            &first["hasNextPage"]
        ),
        (&json!(1), &json!(2), &json!(false), &json!(true))
    );
    let last = page(2, 2).await;
    assert_eq!(types(&last), [7]);
    assert_eq!(
        (&last["hasPreviousPage"], &last["hasNextPage"]),
        (&json!(true), &json!(false))
    );
    let empty = page(5, 2).await;
    assert!(types(&empty).is_empty());
    assert_eq!(
        (&empty["hasPreviousPage"], &empty["hasNextPage"]),
        (&json!(true), &json!(false))
    );

    let defaults: Value = stack
        .as_key(&key, Method::GET, &format!("/{partner}/callbacks"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(
        (&defaults["pageNumber"], &defaults["pageSize"]),
        (&json!(1), &json!(20))
    );

    for (query, field, reason) in [
        ("pageSize=101", "pageSize", "between 1 and 100"),
        ("pageSize=0", "pageSize", "positive integer"),
        ("pageSize=ten", "pageSize", "positive integer"),
        ("pageNumber=-1", "pageNumber", "positive integer"),
        ("isActive=maybe", "isActive", "true, false or all"),
        ("registrationId=42", "registrationId", "GUID"),
    ] {
        let response = stack
            .as_key(&key, Method::GET, &format!("/{partner}/callbacks?{query}"))
            .send()
            .await
            .unwrap();
        expect_invalid(response, field, reason).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_bodies_and_paths_are_4xx_problems() {
    let stack = Stack::start().await;
    let (partner, key) = stack.partner("Acme").await;
    let path = format!("/{partner}/callbacks/5");

    let cases = [
        (
            json!({"callBackUrl": "http://hooks.example.com/cb"}),
            "callBackUrl",
            "https",
        ),
        (
            json!({"callBackUrl": "https://10.0.0.1/cb"}),
            "callBackUrl",
            "private",
        ),
        (
            json!({"callBackUrl": "https://u:p@hooks.example.com/cb"}),
            "callBackUrl",
            "user-info",
        ),
        (
            json!({"callBackUrl": "https://hooks.example.com/#x"}),
            "callBackUrl",
            "fragment",
        ),
        (
            json!({"callBackUrl": format!("https://hooks.example.com/{}", "a".repeat(2048))}),
            "callBackUrl",
            "2048",
        ),
        (
            json!({"callBackUrl": URL, "callBackPassword": "pw"}),
            "callBackPassword",
            "callback_user_name",
        ),
    ];
    for (body, field, reason) in cases {
        expect_invalid(
            stack.put_callback(&key, &partner, 5, body).await,
            field,
            reason,
        )
        .await;
    }
    expect_invalid(
        stack
            .put_callback(&key, &partner, 99, json!({"callBackUrl": URL}))
            .await,
        "notificationType",
        "not a supported notification type",
    )
    .await;

    // Malformed JSON, missing and unknown fields, wrong types.
    for raw in [
        r#"{"callBackUrl": "#,
        r#"{}"#,
        r#"{"callbackUrl": "https://x.example.com"}"#,
        r#"{"callBackUrl": 5}"#,
        "[]",
    ] {
        let response = stack
            .as_key(&key, Method::PUT, &path)
            .header("content-type", "application/json")
            .body(raw)
            .send()
            .await
            .unwrap();
        let problem = expect_problem(response, StatusCode::BAD_REQUEST).await;
        assert!(!problem["detail"].as_str().unwrap().is_empty());
    }
    let wrong_type = stack
        .as_key(&key, Method::PUT, &path)
        .header("content-type", "text/plain")
        .body(format!(r#"{{"callBackUrl": "{URL}"}}"#))
        .send()
        .await
        .unwrap();
    expect_problem(wrong_type, StatusCode::UNSUPPORTED_MEDIA_TYPE).await;
    let huge = stack
        .as_key(&key, Method::PUT, &path)
        .header("content-type", "application/json")
        .body(format!(
            r#"{{"callBackUrl": "{}"}}"#,
            "a".repeat(300 * 1024)
        ))
        .send()
        .await
        .unwrap();
    expect_problem(huge, StatusCode::PAYLOAD_TOO_LARGE).await;

    let bad_type = stack
        .put_callback(&key, &partner, 5, json!({"callBackUrl": URL}))
        .await;
    assert_eq!(
        bad_type.status(),
        StatusCode::CREATED,
        "the valid request still works"
    );
    for (path, field) in [
        (format!("/{partner}/callbacks/abc"), "notificationType"),
        (format!("/{partner}/callbacks/-5"), "notificationType"),
        ("/not-a-guid/callbacks/5".to_owned(), "partnerUniqueID"),
    ] {
        let response = stack.as_key(&key, Method::GET, &path).send().await.unwrap();
        expect_invalid(response, field, "").await;
    }

    // Nothing the rejected requests carried was stored.
    let all: Value = stack
        .as_key(&key, Method::GET, &format!("/{partner}/callbacks"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(all["results"].as_array().unwrap().len(), 1);
    assert_eq!(all["results"][0]["callBackUrl"], URL);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn signing_secret_reads_and_rotates() {
    let stack = Stack::start().await;
    let (partner, key) = stack.partner("Acme").await;
    let path = format!("/{partner}/callbacks/5/secret");
    expect_problem(
        stack.as_key(&key, Method::GET, &path).send().await.unwrap(),
        StatusCode::NOT_FOUND,
    )
    .await;

    stack
        .put_callback(&key, &partner, 5, json!({"callBackUrl": URL}))
        .await;
    let secret: Value = stack
        .as_key(&key, Method::GET, &path)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let current = secret["secret"].as_str().unwrap().to_owned();
    assert!(current.starts_with("whsec_"));
    assert!(secret["previousSecret"].is_null());

    let rotated = stack
        .as_key(&key, Method::POST, &format!("{path}/rotate"))
        .send()
        .await
        .unwrap();
    assert_eq!(rotated.status(), StatusCode::OK);
    let rotated: Value = rotated.json().await.unwrap();
    assert_ne!(rotated["secret"], current.as_str());
    assert_eq!(rotated["previousSecret"], current.as_str());
    assert!(rotated["previousSecretExpiresAt"].is_string());
}

/// Seed 003's `merchantId`: registered, returned, replaced like the rest,
/// filterable, and checked.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn merchant_id_is_stored_returned_and_filterable() {
    let stack = Stack::start().await;
    let (partner, key) = stack.partner("Acme").await;
    let created = stack
        .put_callback(
            &key,
            &partner,
            5,
            json!({"callBackUrl": URL, "merchantId": "merchant-0042"}),
        )
        .await;
    assert_eq!(created.status(), StatusCode::CREATED);
    let created: Value = created.json().await.unwrap();
    assert_eq!(created["merchantId"], "merchant-0042");
    stack
        .put_callback(&key, &partner, 6, json!({"callBackUrl": URL}))
        .await;

    let list = |query: String| {
        stack
            .as_key(&key, Method::GET, &format!("/{partner}/callbacks{query}"))
            .send()
    };
    let mine: Value = list("?merchantId=merchant-0042".into())
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let mine = mine["results"].as_array().unwrap();
    assert_eq!(mine.len(), 1);
    assert_eq!(mine[0]["notificationType"], 5);
    let all: Value = list(String::new()).await.unwrap().json().await.unwrap();
    assert!(all["results"][1]["merchantId"].is_null());

    // The PUT is the whole desired state: left out, it is cleared.
    let updated: Value = stack
        .put_callback(&key, &partner, 5, json!({"callBackUrl": URL}))
        .await
        .json()
        .await
        .unwrap();
    assert!(updated["merchantId"].is_null());

    let bad = stack
        .put_callback(
            &key,
            &partner,
            5,
            json!({"callBackUrl": URL, "merchantId": "has space"}),
        )
        .await;
    expect_invalid(bad, "merchantId", "printable ASCII").await;
    let empty_filter = list("?merchantId=".into()).await.unwrap();
    expect_invalid(empty_filter, "merchantId", "printable ASCII").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_retry_policy_is_chosen_shown_and_checked() {
    let stack = Stack::start().await;
    let (partner, key) = stack.partner("Acme").await;
    let put = |policy: Value| {
        stack.put_callback(
            &key,
            &partner,
            5,
            json!({"callBackUrl": URL, "retryPolicy": policy}),
        )
    };

    let policy_shown = async || -> Value {
        let shown: Value = stack
            .as_key(&key, Method::GET, &format!("/{partner}/callbacks/5"))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        shown["retryPolicy"].clone()
    };

    let created = put(json!({"name": "custom", "scheduleSeconds": [10, 60, 600]})).await;
    assert_eq!(created.status(), StatusCode::CREATED);
    let created: Value = created.json().await.unwrap();
    assert_eq!(
        created["retryPolicy"],
        json!({"name": "custom", "scheduleSeconds": [10, 60, 600]})
    );

    let long = put(json!({"name": "long"})).await;
    assert_eq!(long.status(), StatusCode::OK);
    let shown = policy_shown().await;
    assert_eq!(shown["name"], "long");
    let total: u64 = shown["scheduleSeconds"]
        .as_array()
        .unwrap()
        .iter()
        .map(|w| w.as_u64().unwrap())
        .sum();
    assert!(total > 6 * 86_400, "about a week, not {total} s");

    for (policy, field, reason) in [
        (
            json!({"name": "weekly"}),
            "retryPolicy.name",
            "default, short, long or custom",
        ),
        (
            json!({"name": "custom"}),
            "retryPolicy.scheduleSeconds",
            "1 to 20 waits",
        ),
        (
            json!({"name": "short", "scheduleSeconds": [60]}),
            "retryPolicy.scheduleSeconds",
            "only for the custom",
        ),
        (
            json!({"name": "custom", "scheduleSeconds": [0]}),
            "retryPolicy.scheduleSeconds",
            "1 to 86400",
        ),
    ] {
        expect_invalid(put(policy).await, field, reason).await;
    }
    let malformed = put(json!({"name": "custom", "scheduleSeconds": [-1]})).await;
    expect_problem(malformed, StatusCode::BAD_REQUEST).await;
    let unknown_member = put(json!({"name": "short", "waits": [1]})).await;
    expect_problem(unknown_member, StatusCode::BAD_REQUEST).await;

    let still = policy_shown().await;
    assert_eq!(still["name"], "long", "refused changes nothing");
}
