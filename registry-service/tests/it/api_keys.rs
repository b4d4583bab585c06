//! API keys: issued once, stored as a hash, listed without the secret,
//! authenticated in one call, revoked.

use callbacks_proto::registry::v1 as pb;
use tonic::Code;

use crate::{TestRegistry, expect_code, expect_violation};

async fn authenticate(
    r: &mut TestRegistry,
    token: &str,
) -> Result<pb::AuthenticateResponse, tonic::Status> {
    r.client
        .authenticate(pb::AuthenticateRequest {
            token: token.into(),
        })
        .await
        .map(|r| r.into_inner())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn issue_authenticate_list_and_revoke() {
    let mut r = TestRegistry::start().await;
    let (partner, first_token) = r.partner("Acme").await;

    let who = authenticate(&mut r, &first_token).await.unwrap();
    assert_eq!(who.partner_id, partner);

    let issued = r
        .client
        .issue_api_key(pb::IssueApiKeyRequest {
            partner_id: partner.clone(),
            label: "ci".into(),
        })
        .await
        .unwrap()
        .into_inner()
        .api_key
        .unwrap();
    let second = issued.key.unwrap();
    assert_eq!(second.label, "ci");
    assert!(issued.token.starts_with(&second.token_prefix));
    assert_eq!(
        authenticate(&mut r, &issued.token).await.unwrap().key_id,
        second.key_id
    );

    // Listing shows prefixes, never the token.
    let keys = r
        .client
        .list_api_keys(pb::ListApiKeysRequest {
            partner_id: partner.clone(),
            include_revoked: false,
        })
        .await
        .unwrap()
        .into_inner()
        .keys;
    assert_eq!(keys.len(), 2);
    for key in &keys {
        assert!(key.token_prefix.len() < 20);
        assert!(!format!("{key:?}").contains(&issued.token));
    }

    let revoked = r
        .client
        .revoke_api_key(pb::RevokeApiKeyRequest {
            partner_id: partner.clone(),
            key_id: second.key_id.clone(),
        })
        .await
        .unwrap()
        .into_inner();
    assert!(revoked.revoked_at.is_some());
    expect_code(
        authenticate(&mut r, &issued.token).await,
        Code::Unauthenticated,
    );
    // The other key still works.
    assert!(authenticate(&mut r, &first_token).await.is_ok());

    let live = r
        .client
        .list_api_keys(pb::ListApiKeysRequest {
            partner_id: partner.clone(),
            include_revoked: false,
        })
        .await
        .unwrap()
        .into_inner()
        .keys;
    assert_eq!(live.len(), 1);
    let all = r
        .client
        .list_api_keys(pb::ListApiKeysRequest {
            partner_id: partner,
            include_revoked: true,
        })
        .await
        .unwrap()
        .into_inner()
        .keys;
    assert_eq!(all.len(), 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tokens_are_stored_only_as_hashes() {
    let mut r = TestRegistry::start().await;
    let (_, token) = r.partner("Acme").await;
    let db = r.db.client().await.unwrap();
    let rows = db
        .query("SELECT token_hash, token_prefix FROM api_keys", &[])
        .await
        .unwrap();
    assert_eq!(rows.len(), 1);
    let hash: Vec<u8> = rows[0].get(0);
    assert_eq!(hash.len(), 32, "a SHA-256");
    let dump = db
        .query("SELECT string_agg(t::text, '') FROM api_keys t", &[])
        .await
        .unwrap();
    let text: String = dump[0].get(0);
    assert!(!text.contains(&token), "the token is stored in clear");
    assert!(
        !text.contains(&token[12..]),
        "the token's secret part is stored in clear"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_tokens_and_foreign_keys() {
    let mut r = TestRegistry::start().await;
    let (acme, _) = r.partner("Acme").await;
    let (globex, _) = r.partner("Globex").await;

    expect_code(authenticate(&mut r, "").await, Code::Unauthenticated);
    expect_code(
        authenticate(&mut r, "not-a-key").await,
        Code::Unauthenticated,
    );
    let well_formed_but_unknown = format!("pcb_{}", "A".repeat(43));
    expect_code(
        authenticate(&mut r, &well_formed_but_unknown).await,
        Code::Unauthenticated,
    );

    // Acme's key cannot be revoked in Globex's name.
    let acme_keys = r
        .client
        .list_api_keys(pb::ListApiKeysRequest {
            partner_id: acme.clone(),
            include_revoked: false,
        })
        .await
        .unwrap()
        .into_inner()
        .keys;
    expect_code(
        r.client
            .revoke_api_key(pb::RevokeApiKeyRequest {
                partner_id: globex,
                key_id: acme_keys[0].key_id.clone(),
            })
            .await,
        Code::NotFound,
    );
    expect_violation(
        r.client
            .revoke_api_key(pb::RevokeApiKeyRequest {
                partner_id: acme.clone(),
                key_id: "nope".into(),
            })
            .await,
        "key_id",
        "must be a GUID",
    );
    expect_code(
        r.client
            .issue_api_key(pb::IssueApiKeyRequest {
                partner_id: uuid::Uuid::new_v4().to_string(),
                label: String::new(),
            })
            .await,
        Code::NotFound,
    );
    expect_code(
        r.client
            .list_api_keys(pb::ListApiKeysRequest {
                partner_id: uuid::Uuid::new_v4().to_string(),
                include_revoked: false,
            })
            .await,
        Code::NotFound,
    );
    expect_violation(
        r.client
            .issue_api_key(pb::IssueApiKeyRequest {
                partner_id: acme,
                label: "l".repeat(101),
            })
            .await,
        "label",
        "at most 100",
    );
}

/// Portal links: a key of their own that authenticates as portal-only
/// until it expires; a lifetime out of bounds is refused by field.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn portal_links_authenticate_as_portal_only_until_they_expire() {
    let mut r = TestRegistry::start().await;
    let (partner, api_token) = r.partner("Acme").await;
    let issue = |expires_in_seconds: u32| pb::IssuePortalLinkRequest {
        partner_id: partner.clone(),
        expires_in_seconds,
    };
    for bad in [1, 59, 86_401] {
        let refused = r.client.issue_portal_link(issue(bad)).await;
        expect_violation(refused, "expires_in_seconds", "between 60 and 86400");
    }
    let link = r
        .client
        .issue_portal_link(issue(0))
        .await
        .unwrap()
        .into_inner()
        .api_key
        .unwrap();
    let key = link.key.unwrap();
    assert!(key.portal_only);
    let lasts = key.expires_at.unwrap().seconds - key.created_at.unwrap().seconds;
    assert!(
        (3590..=3610).contains(&lasts),
        "an hour by default: {lasts}"
    );
    let who = authenticate(&mut r, &link.token).await.unwrap();
    assert_eq!(
        (who.partner_id.as_str(), who.portal_only),
        (partner.as_str(), true)
    );
    assert!(!authenticate(&mut r, &api_token).await.unwrap().portal_only);

    let db = r.db.client().await.unwrap();
    db.execute(
        "UPDATE api_keys SET expires_at = now() - interval '1 second' WHERE id = $1::text::uuid",
        &[&key.key_id],
    )
    .await
    .unwrap();
    expect_code(
        authenticate(&mut r, &link.token).await,
        Code::Unauthenticated,
    );
}
