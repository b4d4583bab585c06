//! Rotating the key that seals secrets at rest: a new current key with the
//! old one kept to open, a re-seal while partners keep changing their
//! registrations, then the old key retired. Nothing a partner stored is
//! lost or changed on the way, and a registry missing a key that stored
//! values still need refuses to start.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use base64::Engine as _;
use callbacks_proto::registry::v1 as pb;
use pb::registry_service_client::RegistryServiceClient;
use registry_service::{Application, Config};
use secrecy::SecretString;
use test_support::TestDb;
use tokio::sync::{Mutex, oneshot};
use tonic::transport::Channel;

use crate::upsert_request;

const PARTNERS: usize = 60;
const TYPES: [i32; 3] = [5, 6, 7];

fn key(byte: u8) -> SecretString {
    SecretString::from(base64::engine::general_purpose::STANDARD.encode([byte; 32]))
}

fn config(db: &TestDb, current: u8, old: &[u8]) -> Config {
    let mut config = Config::for_database(db.url());
    config.encryption_key = Some(key(current));
    config.old_encryption_keys = old.iter().map(|&byte| key(byte)).collect();
    config
}

/// A client of a registry serving `config`, and what stops it when dropped.
async fn serve(config: Config) -> (RegistryServiceClient<Channel>, oneshot::Sender<()>) {
    let (channel, _, stop) = crate::serve(config).await;
    (RegistryServiceClient::new(channel), stop)
}

/// What a partner stored for (partner, type), as the dispatcher reads it.
type Stored = (Option<String>, Vec<String>);

async fn resolve(client: &mut RegistryServiceClient<Channel>, target: &(String, i32)) -> Stored {
    let resolved = client
        .resolve_callback(pb::ResolveCallbackRequest {
            partner_id: target.0.clone(),
            notification_type: target.1,
        })
        .await
        .unwrap()
        .into_inner();
    (resolved.callback_password, resolved.signing_secrets)
}

async fn upsert_with_password(
    client: &mut RegistryServiceClient<Channel>,
    target: &(String, i32),
    password: &str,
) {
    let mut request = upsert_request(&target.0, target.1, "https://hooks.example.com/cb");
    request.callback_user_name = Some("user".into());
    request.callback_password = Some(password.into());
    client.upsert_callback(request).await.unwrap();
}

/// Rows with a value not sealed under `current`'s key.
async fn rows_not_under(db: &TestDb, current: u8) -> i64 {
    let cipher = registry_service::Cipher::from_base64(&key(current)).unwrap();
    let header: String = cipher
        .current_header()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    db.count(&format!(
        "SELECT count(*) FROM registrations WHERE \
         substring(signing_secret_sealed for 9) <> '\\x{header}'::bytea \
         OR substring(callback_password_sealed for 9) <> '\\x{header}'::bytea \
         OR EXISTS (SELECT 1 FROM unnest(previous_keys_sealed) AS k \
         WHERE substring(k for 9) <> '\\x{header}'::bytea)"
    ))
    .await
    .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn keys_rotate_under_load_and_the_old_one_retires() {
    let db = TestDb::new().await.unwrap();
    let (mut old, stop_old) = serve(config(&db, 1, &[])).await;
    let mut targets = Vec::new();
    for n in 0..PARTNERS {
        let partner = old
            .create_partner(pb::CreatePartnerRequest {
                name: format!("Partner {n}"),
                key_label: "first".into(),
            })
            .await
            .unwrap()
            .into_inner()
            .partner
            .unwrap()
            .partner_id;
        for kind in TYPES {
            let target = (partner.clone(), kind);
            upsert_with_password(&mut old, &target, &format!("pw-{n}-{kind}")).await;
            if n % 2 == 0 {
                old.rotate_signing_secret(pb::RotateSigningSecretRequest {
                    partner_id: partner.clone(),
                    notification_type: kind,
                    previous_expires_in_seconds: None,
                })
                .await
                .unwrap();
            }
            targets.push(target);
        }
    }
    let mut expected = BTreeMap::new();
    for target in &targets {
        expected.insert(target.clone(), resolve(&mut old, target).await);
    }
    drop(stop_old);
    assert_eq!(rows_not_under(&db, 1).await, 0);

    // Key 2 alone cannot open what key 1 sealed: it does not start.
    let refused = Application::build(config(&db, 2, &[])).await.unwrap_err();
    assert!(
        refused
            .to_string()
            .contains(&format!("{} registrations", targets.len())),
        "{refused:#}"
    );

    // Key 2 current, key 1 kept to open; partners keep writing meanwhile.
    let rotated = config(&db, 2, &[1]);
    let (client, stop_new) = serve(rotated.clone()).await;
    let expected = Arc::new(Mutex::new(expected));
    let loading = Arc::new(AtomicBool::new(true));
    let load = tokio::spawn(partners_at_work(
        client.clone(),
        targets.clone(),
        expected.clone(),
        loading.clone(),
    ));
    let report = registry_service::reseal(&rotated, 16).await.unwrap();
    loading.store(false, Ordering::Relaxed);
    let (writes, reads) = load.await.unwrap();
    println!(
        "key rotation: {} registrations, {} re-sealed while partners made {writes} changes \
         and {reads} reads, {} left",
        targets.len(),
        report.resealed,
        report.left
    );
    assert_eq!(report.left, 0);
    assert!(report.resealed > 0 && writes > 0 && reads > 0);
    assert_eq!(rows_not_under(&db, 2).await, 0);
    drop(stop_new);

    // Key 1 retired: everything opens with key 2 alone, as last written.
    let (mut retired, _stop) = serve(config(&db, 2, &[])).await;
    let expected = expected.lock().await;
    for target in &targets {
        assert_eq!(
            resolve(&mut retired, target).await,
            expected[target],
            "{target:?}"
        );
    }
}

/// Partners changing passwords and rotating secrets, and the dispatcher
/// reading them, until `loading` ends; every read matches the last write.
async fn partners_at_work(
    mut client: RegistryServiceClient<Channel>,
    targets: Vec<(String, i32)>,
    expected: Arc<Mutex<BTreeMap<(String, i32), Stored>>>,
    loading: Arc<AtomicBool>,
) -> (u64, u64) {
    let (mut writes, mut reads) = (0, 0);
    let mut round = 0;
    while loading.load(Ordering::Relaxed) || writes == 0 {
        round += 1;
        let target = &targets[(round * 7) % targets.len()];
        if round % 3 == 0 {
            client
                .rotate_signing_secret(pb::RotateSigningSecretRequest {
                    partner_id: target.0.clone(),
                    notification_type: target.1,
                    previous_expires_in_seconds: None,
                })
                .await
                .unwrap();
        } else {
            upsert_with_password(&mut client, target, &format!("changed-{round}")).await;
        }
        writes += 1;
        let now = resolve(&mut client, target).await;
        expected.lock().await.insert(target.clone(), now);
        let other = &targets[(round * 13) % targets.len()];
        let read = resolve(&mut client, other).await;
        assert_eq!(read, expected.lock().await[other], "{other:?}");
        reads += 1;
    }
    (writes, reads)
}
