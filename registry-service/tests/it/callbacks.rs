//! Callback registrations: upsert (created versus updated), get, list with
//! filters and paging, soft delete, and every validation rule.

use callbacks_proto::registry::v1 as pb;
use tonic::Code;

use crate::{TestRegistry, expect_code, expect_violation, upsert_request};

const URL: &str = "https://hooks.example.com/callbacks";

fn list_request(
    partner: &str,
    is_active: Option<bool>,
    number: u32,
    size: u32,
) -> pb::ListCallbacksRequest {
    pb::ListCallbacksRequest {
        partner_id: partner.into(),
        is_active,
        registration_id: None,
        page: Some(pb::PageRequest {
            page_number: number,
            page_size: size,
        }),
        merchant_id: None,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn upsert_creates_then_updates() {
    let mut r = TestRegistry::start().await;
    let (partner, _) = r.partner("Acme").await;

    let created = r.upsert(&partner, 5, URL).await;
    assert!(created.created);
    let first = created.registration.unwrap();
    assert_eq!(first.callback_url, URL);
    assert!(first.is_active && !first.is_in_error_state && !first.has_password);

    let mut request = upsert_request(&partner, 5, "https://hooks.example.com/v2");
    request.callback_user_name = Some("acme".into());
    request.callback_password = Some("s3cret-pw".into());
    let updated = r
        .client
        .upsert_callback(request)
        .await
        .unwrap()
        .into_inner();
    assert!(!updated.created);
    let second = updated.registration.unwrap();
    assert_eq!(
        second.registration_id, first.registration_id,
        "same registration"
    );
    assert_eq!(second.callback_url, "https://hooks.example.com/v2");
    assert_eq!(second.callback_user_name.as_deref(), Some("acme"));
    assert!(second.has_password);
    let seconds = |t: &Option<prost_types::Timestamp>| t.as_ref().map(|t| (t.seconds, t.nanos));
    assert!(seconds(&second.updated_at) >= seconds(&first.updated_at));
    assert_eq!(second.created_at, first.created_at);

    // PUT replaces: omitting the credentials clears them.
    let cleared = r.upsert(&partner, 5, "https://hooks.example.com/v2").await;
    let third = cleared.registration.unwrap();
    assert!(third.callback_user_name.is_none() && !third.has_password);

    let fetched = r
        .client
        .get_callback(pb::GetCallbackRequest {
            partner_id: partner.clone(),
            notification_type: 5,
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(fetched.registration_id, first.registration_id);

    // Another type is another registration.
    let other = r.upsert(&partner, 6, URL).await;
    assert!(other.created);
    assert_ne!(
        other.registration.unwrap().registration_id,
        first.registration_id
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_creates_make_one_registration() {
    let mut r = TestRegistry::start().await;
    let (partner, _) = r.partner("Acme").await;
    let mut tasks = Vec::new();
    for i in 0..8 {
        let mut client = r.client.clone();
        let request = upsert_request(&partner, 7, &format!("https://hooks.example.com/{i}"));
        tasks.push(tokio::spawn(async move {
            client.upsert_callback(request).await
        }));
    }
    let mut created = 0;
    let mut ids = std::collections::HashSet::new();
    for task in tasks {
        let response = task.await.unwrap().unwrap().into_inner();
        created += usize::from(response.created);
        ids.insert(response.registration.unwrap().registration_id);
    }
    assert_eq!(created, 1, "exactly one upsert creates");
    assert_eq!(ids.len(), 1, "all answer the same registration");
    let page = r
        .client
        .list_callbacks(list_request(&partner, None, 1, 100))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(page.registrations.len(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn delete_is_soft_and_filtered() {
    let mut r = TestRegistry::start().await;
    let (partner, _) = r.partner("Acme").await;
    let old = r.upsert(&partner, 5, URL).await.registration.unwrap();
    r.upsert(&partner, 6, URL).await;

    let deleted = r
        .client
        .delete_callback(pb::DeleteCallbackRequest {
            partner_id: partner.clone(),
            notification_type: 5,
        })
        .await
        .unwrap()
        .into_inner();
    assert!(!deleted.is_active);
    assert!(deleted.deactivated_at.is_some());
    assert_eq!(
        deleted.deactivation_reason.as_deref(),
        Some("deleted by the partner")
    );

    // Gone from the active view, kept in the history.
    let get = r
        .client
        .get_callback(pb::GetCallbackRequest {
            partner_id: partner.clone(),
            notification_type: 5,
        })
        .await;
    expect_code(get, Code::NotFound);
    let again = r
        .client
        .delete_callback(pb::DeleteCallbackRequest {
            partner_id: partner.clone(),
            notification_type: 5,
        })
        .await;
    expect_code(again, Code::NotFound);

    let active = r
        .client
        .list_callbacks(list_request(&partner, Some(true), 0, 0))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(active.registrations.len(), 1);
    assert_eq!(active.registrations[0].notification_type, 6);
    let inactive = r
        .client
        .list_callbacks(list_request(&partner, Some(false), 0, 0))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(inactive.registrations.len(), 1);
    assert_eq!(
        inactive.registrations[0].registration_id,
        old.registration_id
    );
    let all = r
        .client
        .list_callbacks(list_request(&partner, None, 0, 0))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(all.registrations.len(), 2);

    // Registering again makes a new registration beside the history.
    let fresh = r.upsert(&partner, 5, URL).await;
    assert!(fresh.created);
    assert_ne!(
        fresh.registration.unwrap().registration_id,
        old.registration_id
    );

    // The registrationId filter finds the deleted one.
    let mut by_id = list_request(&partner, None, 1, 10);
    by_id.registration_id = Some(old.registration_id.clone());
    let found = r.client.list_callbacks(by_id).await.unwrap().into_inner();
    assert_eq!(found.registrations.len(), 1);
    assert!(!found.registrations[0].is_active);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn paging_edges() {
    let mut r = TestRegistry::start().await;
    for id in 20..25 {
        r.client
            .create_notification_type(pb::CreateNotificationTypeRequest {
                notification_type_id: id,
                name: format!("type.{id}"),
                description: String::new(),
                echoable: false,
                payload_schema_json: None,
            })
            .await
            .unwrap();
    }
    let (partner, _) = r.partner("Acme").await;
    for kind in 20..25 {
        r.upsert(&partner, kind, URL).await;
    }

    let types = |page: &pb::ListCallbacksResponse| -> Vec<i32> {
        page.registrations
            .iter()
            .map(|x| x.notification_type)
            .collect()
    };
    let first = r
        .client
        .list_callbacks(list_request(&partner, None, 1, 2))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(types(&first), [20, 21]);
    let info = first.page.unwrap();
    assert_eq!((info.page_number, info.page_size), (1, 2));
    assert!(!info.has_previous_page && info.has_next_page);

    let middle = r
        .client
        .list_callbacks(list_request(&partner, None, 2, 2))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(types(&middle), [22, 23]);
    let info = middle.page.unwrap();
    assert!(info.has_previous_page && info.has_next_page);

    let last = r
        .client
        .list_callbacks(list_request(&partner, None, 3, 2))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(types(&last), [24]);
    let info = last.page.unwrap();
    assert!(info.has_previous_page && !info.has_next_page);

    // Exactly full last page: no next page.
    let exact = r
        .client
        .list_callbacks(list_request(&partner, None, 1, 5))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(exact.registrations.len(), 5);
    assert!(!exact.page.unwrap().has_next_page);

    let empty = r
        .client
        .list_callbacks(list_request(&partner, None, 9, 2))
        .await
        .unwrap()
        .into_inner();
    assert!(empty.registrations.is_empty());
    let info = empty.page.unwrap();
    assert!(info.has_previous_page && !info.has_next_page);

    // Defaults and limits.
    let defaults = r
        .client
        .list_callbacks(list_request(&partner, None, 0, 0))
        .await
        .unwrap()
        .into_inner();
    let info = defaults.page.unwrap();
    assert_eq!((info.page_number, info.page_size), (1, 20));
    assert!(
        r.client
            .list_callbacks(list_request(&partner, None, 1, 100))
            .await
            .is_ok()
    );
    expect_violation(
        r.client
            .list_callbacks(list_request(&partner, None, 1, 101))
            .await,
        "page_size",
        "between 1 and 100",
    );
    expect_violation(
        r.client
            .list_callbacks(list_request(&partner, None, 100_001, 10))
            .await,
        "page_number",
        "between 1 and",
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_validation_rule_is_enforced() {
    let mut r = TestRegistry::start().await;
    let (partner, _) = r.partner("Acme").await;
    let long_url = format!("https://hooks.example.com/{}", "a".repeat(2048));
    let cases: &[(&str, &str)] = &[
        ("", "is required"),
        ("not a url", "must be an absolute URL"),
        ("http://hooks.example.com/cb", "must use https"),
        ("ftp://hooks.example.com/cb", "must use https"),
        (
            "https://user:pw@hooks.example.com/cb",
            "must not contain user-info",
        ),
        (
            "https://hooks.example.com/cb#section",
            "must not contain a fragment",
        ),
        (&long_url, "at most 2048 characters"),
        ("https://10.0.0.8/cb", "private"),
        ("https://192.168.1.10/cb", "private"),
        ("https://127.0.0.1/cb", "loopback"),
        ("https://localhost:8443/cb", "loopback"),
        ("https://169.254.169.254/latest", "link-local"),
        ("https://[::1]/cb", "loopback"),
        ("https://[fe80::1]/cb", "link-local"),
        ("https://[fc00::1]/cb", "private"),
        ("https://intranet/cb", "local name"),
    ];
    for (url, rule) in cases {
        expect_violation(
            r.client
                .upsert_callback(upsert_request(&partner, 5, url))
                .await,
            "callback_url",
            rule,
        );
    }

    let mut password_only = upsert_request(&partner, 5, URL);
    password_only.callback_password = Some("pw".into());
    expect_violation(
        r.client.upsert_callback(password_only).await,
        "callback_password",
        "requires callback_user_name",
    );

    expect_violation(
        r.client
            .upsert_callback(upsert_request(&partner, 99, URL))
            .await,
        "notification_type",
        "not a supported notification type",
    );
    expect_violation(
        r.client
            .upsert_callback(upsert_request(&partner, 0, URL))
            .await,
        "notification_type",
        "positive integer",
    );
    expect_violation(
        r.client
            .upsert_callback(upsert_request("not-a-guid", 5, URL))
            .await,
        "partner_id",
        "must be a GUID",
    );
    expect_code(
        r.client
            .upsert_callback(upsert_request(&uuid::Uuid::new_v4().to_string(), 5, URL))
            .await,
        Code::NotFound,
    );

    // Several broken fields are reported together.
    let status = expect_code(
        r.client
            .upsert_callback(upsert_request("bad", -1, "http://x"))
            .await,
        Code::InvalidArgument,
    );
    use tonic_types::StatusExt;
    let fields: Vec<_> = status
        .get_details_bad_request()
        .unwrap()
        .field_violations
        .into_iter()
        .map(|v| v.field)
        .collect();
    assert_eq!(fields, ["partner_id", "notification_type", "callback_url"]);

    // Nothing was stored by any of the rejected calls.
    let all = r
        .client
        .list_callbacks(list_request(&partner, None, 1, 100))
        .await
        .unwrap()
        .into_inner();
    assert!(all.registrations.is_empty());

    let mut bad_filter = list_request(&partner, None, 1, 10);
    bad_filter.registration_id = Some("nope".into());
    expect_violation(
        r.client.list_callbacks(bad_filter).await,
        "registration_id",
        "must be a GUID",
    );
    expect_code(
        r.client
            .list_callbacks(list_request(&uuid::Uuid::new_v4().to_string(), None, 1, 10))
            .await,
        Code::NotFound,
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn operator_can_admit_loopback_and_http() {
    let mut r = TestRegistry::start_with(|c| {
        c.allow_http_callbacks = true;
        c.allowed_callback_networks = vec!["127.0.0.0/8".parse().unwrap()];
    })
    .await;
    let (partner, _) = r.partner("Acme").await;
    assert!(
        r.upsert(&partner, 5, "http://127.0.0.1:8080/cb")
            .await
            .created
    );
    expect_violation(
        r.client
            .upsert_callback(upsert_request(&partner, 6, "http://10.0.0.1/cb"))
            .await,
        "callback_url",
        "private",
    );
}
