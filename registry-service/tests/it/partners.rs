//! Partners: create (with a first key), get, list with paging, disable.

use callbacks_proto::registry::v1 as pb;
use tonic::Code;

use crate::{TestRegistry, expect_code, expect_violation, upsert_request};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn create_get_and_disable() {
    let mut r = TestRegistry::start().await;
    let (id, token) = r.partner("Acme Payments").await;
    assert!(token.starts_with("pcb_"));

    let partner = r
        .client
        .get_partner(pb::GetPartnerRequest {
            partner_id: id.clone(),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(partner.name, "Acme Payments");
    assert!(partner.created_at.is_some() && partner.disabled_at.is_none());

    let disabled = r
        .client
        .disable_partner(pb::DisablePartnerRequest {
            partner_id: id.clone(),
        })
        .await
        .unwrap()
        .into_inner();
    let first_disabled_at = disabled.disabled_at.expect("disabled_at set");
    // Idempotent: a second call keeps the first time.
    let again = r
        .client
        .disable_partner(pb::DisablePartnerRequest {
            partner_id: id.clone(),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(again.disabled_at, Some(first_disabled_at));

    // A disabled partner's keys stop working and it cannot register.
    expect_code(
        r.client
            .authenticate(pb::AuthenticateRequest { token })
            .await,
        Code::Unauthenticated,
    );
    expect_code(
        r.client
            .upsert_callback(upsert_request(&id, 5, "https://hooks.example.com/cb"))
            .await,
        Code::FailedPrecondition,
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unknown_and_malformed_partners() {
    let mut r = TestRegistry::start().await;
    expect_code(
        r.client
            .get_partner(pb::GetPartnerRequest {
                partner_id: uuid::Uuid::new_v4().to_string(),
            })
            .await,
        Code::NotFound,
    );
    expect_violation(
        r.client
            .get_partner(pb::GetPartnerRequest {
                partner_id: "42".into(),
            })
            .await,
        "partner_id",
        "must be a GUID",
    );
    expect_violation(
        r.client
            .create_partner(pb::CreatePartnerRequest {
                name: "   ".into(),
                key_label: String::new(),
            })
            .await,
        "name",
        "is required",
    );
    expect_violation(
        r.client
            .create_partner(pb::CreatePartnerRequest {
                name: "x".repeat(201),
                key_label: String::new(),
            })
            .await,
        "name",
        "at most 200",
    );
    expect_code(
        r.client
            .disable_partner(pb::DisablePartnerRequest {
                partner_id: uuid::Uuid::new_v4().to_string(),
            })
            .await,
        Code::NotFound,
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn list_pages_through_partners() {
    let mut r = TestRegistry::start().await;
    for i in 0..5 {
        r.partner(&format!("partner {i}")).await;
    }
    let page = |number, size| pb::ListPartnersRequest {
        page: Some(pb::PageRequest {
            page_number: number,
            page_size: size,
        }),
    };
    let first = r
        .client
        .list_partners(page(1, 2))
        .await
        .unwrap()
        .into_inner();
    let names: Vec<_> = first.partners.iter().map(|p| p.name.as_str()).collect();
    assert_eq!(names, ["partner 0", "partner 1"]);
    let info = first.page.unwrap();
    assert!(!info.has_previous_page && info.has_next_page);

    let last = r
        .client
        .list_partners(page(3, 2))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(last.partners.len(), 1);
    let info = last.page.unwrap();
    assert!(info.has_previous_page && !info.has_next_page);
}
