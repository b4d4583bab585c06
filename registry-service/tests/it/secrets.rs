//! Signing secrets (Standard Webhooks `whsec_`), their rotation with a grace
//! period, resolving a callback for delivery, and that passwords and secrets
//! are sealed at rest.

use base64::Engine as _;
use callbacks_proto::registry::v1 as pb;
use tonic::Code;

use crate::{TestRegistry, expect_code, upsert_request};

const URL: &str = "https://hooks.example.com/callbacks";

fn secret_request(partner: &str) -> pb::GetSigningSecretRequest {
    pb::GetSigningSecretRequest {
        partner_id: partner.into(),
        notification_type: 5,
    }
}

fn rotate_request(partner: &str, keep_seconds: Option<u32>) -> pb::RotateSigningSecretRequest {
    pb::RotateSigningSecretRequest {
        partner_id: partner.into(),
        notification_type: 5,
        previous_expires_in_seconds: keep_seconds,
    }
}

/// What the partner reads of its type-5 registration's keys.
async fn keys_of(r: &mut TestRegistry, partner: &str) -> pb::SigningSecrets {
    r.client
        .get_signing_secret(secret_request(partner))
        .await
        .unwrap()
        .into_inner()
}

/// What the dispatcher gets for the partner's type-5 registration.
async fn resolve(r: &mut TestRegistry, partner: &str) -> pb::ResolvedCallback {
    r.client
        .resolve_callback(pb::ResolveCallbackRequest {
            partner_id: partner.into(),
            notification_type: 5,
        })
        .await
        .unwrap()
        .into_inner()
}

fn key_bytes(secret: &str) -> Vec<u8> {
    let b64 = secret.strip_prefix("whsec_").expect("whsec_ prefix");
    base64::engine::general_purpose::STANDARD
        .decode(b64)
        .expect("base64")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn secrets_rotate_with_a_grace_period() {
    let mut r = TestRegistry::start().await;
    let (partner, _) = r.partner("Acme").await;
    r.upsert(&partner, 5, URL).await;

    let before = keys_of(&mut r, &partner).await;
    assert_eq!(key_bytes(&before.current).len(), 32);
    assert!(before.previous.is_empty());
    assert_eq!(before.scheme(), pb::SignatureScheme::HmacSha256);
    // Stable across reads.
    let again = keys_of(&mut r, &partner).await;
    assert_eq!(again.current, before.current);

    let rotated = r
        .client
        .rotate_signing_secret(rotate_request(&partner, None))
        .await
        .unwrap()
        .into_inner();
    assert_ne!(rotated.current, before.current);
    assert_eq!(rotated.previous.len(), 1);
    assert_eq!(rotated.previous[0].key, before.current);
    let expires = rotated.previous[0].expires_at.unwrap().seconds;
    let in_a_day = chrono::Utc::now().timestamp() + 86_400;
    assert!(
        (expires - in_a_day).abs() < 60,
        "grace period is 24 h by default"
    );

    // Delivery signs with both while both are valid: current first.
    let resolved = resolve(&mut r, &partner).await;
    assert_eq!(
        resolved.signing_secrets,
        [rotated.current.clone(), before.current.clone()]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn expired_previous_secret_is_dropped() {
    let mut r = TestRegistry::start_with(|c| c.secret_rotation_grace_secs = 0).await;
    let (partner, _) = r.partner("Acme").await;
    r.upsert(&partner, 5, URL).await;
    let rotated = r
        .client
        .rotate_signing_secret(rotate_request(&partner, None))
        .await
        .unwrap()
        .into_inner();
    assert!(
        rotated.previous.is_empty(),
        "a zero grace period keeps no previous secret"
    );
    let resolved = resolve(&mut r, &partner).await;
    assert_eq!(resolved.signing_secrets, [rotated.current]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn resolve_opens_credentials_that_rest_sealed() {
    let mut r = TestRegistry::start().await;
    let (partner, _) = r.partner("Acme").await;
    let password = "correct horse battery staple";
    let mut request = upsert_request(&partner, 5, URL);
    request.callback_user_name = Some("acme-hooks".into());
    request.callback_password = Some(password.into());
    let registration = r
        .client
        .upsert_callback(request)
        .await
        .unwrap()
        .into_inner()
        .registration
        .unwrap();
    assert!(
        !format!("{registration:?}").contains(password),
        "the password is never returned"
    );

    let resolved = resolve(&mut r, &partner).await;
    assert_eq!(resolved.registration_id, registration.registration_id);
    assert_eq!(resolved.callback_url, URL);
    assert_eq!(resolved.callback_user_name.as_deref(), Some("acme-hooks"));
    assert_eq!(resolved.callback_password.as_deref(), Some(password));
    let secret = resolved.signing_secrets[0].clone();

    // What a database dump would show: neither the password nor the secret,
    // in text or in bytes.
    let db = r.db.client().await.unwrap();
    let rows = db
        .query(
            "SELECT t::text, callback_password_sealed, signing_secret_sealed FROM registrations t",
            &[],
        )
        .await
        .unwrap();
    assert_eq!(rows.len(), 1);
    let text: String = rows[0].get(0);
    let sealed_password: Vec<u8> = rows[0].get(1);
    let sealed_secret: Vec<u8> = rows[0].get(2);
    let secret_bytes = key_bytes(&secret);
    let b64 = secret.trim_start_matches("whsec_");
    assert!(!text.contains(password) && !text.contains(b64));
    assert!(
        !sealed_password
            .windows(password.len())
            .any(|w| w == password.as_bytes())
    );
    assert!(
        !sealed_secret
            .windows(secret_bytes.len())
            .any(|w| w == secret_bytes.as_slice())
    );
    let hex_secret: String = secret_bytes.iter().map(|b| format!("{b:02x}")).collect();
    assert!(!text.contains(&hex_secret));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_different_key_cannot_open_the_secrets() {
    let mut r = TestRegistry::start().await;
    let (partner, _) = r.partner("Acme").await;
    r.upsert(&partner, 5, URL).await;
    // A second registry on the same database, with another key: it would
    // fail every delivery to this registration, so it does not start.
    let mut config = registry_service::Config::for_database(r.db.url());
    config.encryption_key = Some(
        base64::engine::general_purpose::STANDARD
            .encode([9u8; 32])
            .into(),
    );
    let refused = registry_service::Application::build(config)
        .await
        .unwrap_err()
        .to_string();
    assert!(
        refused
            .starts_with("1 registrations hold secrets sealed under a key that is not configured"),
        "{refused}"
    );

    // A sealed value changed in the database does not open, and the caller
    // learns nothing of why.
    r.db.client()
        .await
        .unwrap()
        .execute(
            "UPDATE registrations SET signing_secret_sealed = \
             set_byte(signing_secret_sealed, 29, get_byte(signing_secret_sealed, 29) # 1)",
            &[],
        )
        .await
        .unwrap();
    let status = expect_code(
        r.client.get_signing_secret(secret_request(&partner)).await,
        Code::Internal,
    );
    assert_eq!(
        status.message(),
        "internal error",
        "no internals reach the caller"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn secrets_of_missing_registrations() {
    let mut r = TestRegistry::start().await;
    let (partner, _) = r.partner("Acme").await;
    expect_code(
        r.client.get_signing_secret(secret_request(&partner)).await,
        Code::NotFound,
    );
    expect_code(
        r.client
            .rotate_signing_secret(rotate_request(&partner, None))
            .await,
        Code::NotFound,
    );
}

/// Issue 23, item 6: overlapping rotations keep several previous keys, each
/// until its own expiry; at most five at once; a life over a week refused.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn overlapping_rotations_keep_each_previous_key_for_its_own_time() {
    let mut r = TestRegistry::start().await;
    let (partner, _) = r.partner("Acme").await;
    r.upsert(&partner, 5, URL).await;
    let first = keys_of(&mut r, &partner).await.current;
    let hour = r
        .client
        .rotate_signing_secret(rotate_request(&partner, Some(3600)))
        .await
        .unwrap()
        .into_inner();
    let week = r
        .client
        .rotate_signing_secret(rotate_request(&partner, Some(604_800)))
        .await
        .unwrap()
        .into_inner();
    let keys: Vec<&str> = week.previous.iter().map(|k| k.key.as_str()).collect();
    assert_eq!(
        keys,
        [hour.current.as_str(), first.as_str()],
        "newest first"
    );
    let now = chrono::Utc::now().timestamp();
    let lives: Vec<i64> = week
        .previous
        .iter()
        .map(|k| k.expires_at.unwrap().seconds - now)
        .collect();
    assert!(
        (lives[0] - 604_800).abs() < 60 && (lives[1] - 3600).abs() < 60,
        "{lives:?}"
    );
    let resolved = resolve(&mut r, &partner).await;
    assert_eq!(
        resolved.signing_secrets,
        [week.current.clone(), hour.current.clone(), first.clone()]
    );

    // Three more fill the five; a sixth is refused, and names when room comes.
    for _ in 0..3 {
        r.client
            .rotate_signing_secret(rotate_request(&partner, Some(60)))
            .await
            .unwrap();
    }
    let full = expect_code(
        r.client
            .rotate_signing_secret(rotate_request(&partner, Some(60)))
            .await,
        Code::FailedPrecondition,
    );
    assert!(
        full.message().contains("5 previous signing keys"),
        "{full:?}"
    );
    // Dropping the replaced key at once is always possible.
    let dropped = r
        .client
        .rotate_signing_secret(rotate_request(&partner, Some(0)))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(dropped.previous.len(), 5);
    // A scheme change never fails on the keys' history: it keeps the key
    // it replaces and drops the previous key that expires first.
    let mut switch = upsert_request(&partner, 5, URL);
    switch.signature_scheme = Some(pb::SignatureScheme::Ed25519.into());
    r.client.upsert_callback(switch).await.unwrap();
    let switched = keys_of(&mut r, &partner).await;
    assert_eq!(switched.previous.len(), 5);
    assert_eq!(switched.previous[0].key, dropped.current);
    assert!(
        switched.previous.iter().any(|k| k.key == hour.current),
        "the key kept for a week stays"
    );

    let too_long = expect_code(
        r.client
            .rotate_signing_secret(rotate_request(&partner, Some(604_801)))
            .await,
        Code::InvalidArgument,
    );
    assert!(too_long.message().contains("previous_expires_in_seconds"));
}

/// Issue 23, item 6: a registration switched to Ed25519 shows the partner a
/// `whpk_` public key, hands the dispatcher the `whsk_` seed that matches
/// it, and keeps the HMAC secret signing for the grace period.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn switching_to_ed25519_shows_a_public_key_and_keeps_the_hmac_secret_for_a_while() {
    use ring::signature::KeyPair as _;
    let mut r = TestRegistry::start().await;
    let (partner, _) = r.partner("Acme").await;
    r.upsert(&partner, 5, URL).await;
    let hmac = keys_of(&mut r, &partner).await.current;
    let mut switch = upsert_request(&partner, 5, URL);
    switch.signature_scheme = Some(pb::SignatureScheme::Ed25519.into());
    let registration = r
        .client
        .upsert_callback(switch.clone())
        .await
        .unwrap()
        .into_inner()
        .registration
        .unwrap();
    assert_eq!(
        registration.signature_scheme(),
        pb::SignatureScheme::Ed25519
    );
    let keys = keys_of(&mut r, &partner).await;
    assert_eq!(keys.scheme(), pb::SignatureScheme::Ed25519);
    let public = keys.current.strip_prefix("whpk_").expect("a public key");
    assert_eq!(keys.previous.len(), 1);
    assert_eq!(keys.previous[0].key, hmac);
    assert_eq!(keys.previous[0].scheme(), pb::SignatureScheme::HmacSha256);

    let resolved = resolve(&mut r, &partner).await;
    let seed = resolved.signing_secrets[0]
        .strip_prefix("whsk_")
        .expect("the dispatcher gets the seed");
    let seed = base64::engine::general_purpose::STANDARD
        .decode(seed)
        .unwrap();
    let pair = ring::signature::Ed25519KeyPair::from_seed_unchecked(&seed).unwrap();
    assert_eq!(
        base64::engine::general_purpose::STANDARD.encode(pair.public_key().as_ref()),
        public
    );
    assert_eq!(resolved.signing_secrets[1], hmac);

    // The same scheme again changes no key; an unknown one is refused.
    r.client.upsert_callback(switch.clone()).await.unwrap();
    let same = keys_of(&mut r, &partner).await;
    assert_eq!(same.current, keys.current);
    switch.signature_scheme = Some(7);
    let refused = expect_code(
        r.client.upsert_callback(switch).await,
        Code::InvalidArgument,
    );
    assert!(
        refused.message().contains("signature_scheme"),
        "{refused:?}"
    );
}
