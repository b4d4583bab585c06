//! Issue 23, item 6: Ed25519 (`v1a`) signatures, verified by Node's own
//! crypto with the public key the partner reads, beside the keys earlier
//! rotations left valid (an HMAC secret among them, verified by the
//! published `standardwebhooks` crate).

use std::io::Write as _;
use std::process::{Command, Stdio};
use std::time::Duration;

use base64::Engine as _;
use callbacks_proto::registry::v1 as rpb;

use crate::{TYPE, World, publish};

/// Whether Node verifies a `v1a` signature of `header` over `body` with
/// `public_key` (`whpk_…`), through `verify_v1a.js`.
fn node_verifies(public_key: &str, id: &str, timestamp: &str, header: &str, body: &[u8]) -> bool {
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/it/verify_v1a.js");
    let mut node = Command::new("node")
        .arg(script)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .expect("node runs (Node.js is on the test machine)");
    let input = serde_json::json!({
        "publicKey": public_key,
        "id": id,
        "timestamp": timestamp,
        "signature": header,
        "body": base64::engine::general_purpose::STANDARD.encode(body),
    });
    node.stdin
        .take()
        .unwrap()
        .write_all(input.to_string().as_bytes())
        .unwrap();
    let out = node.wait_with_output().unwrap();
    let said = String::from_utf8_lossy(&out.stdout).trim().to_owned();
    assert!(
        said == "verified" || said == "not verified",
        "node said {said:?}"
    );
    out.status.success()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ed25519_signatures_verify_with_the_public_key_in_node() {
    let mut world = World::start().await;
    let url = world.receiver.url("/hooks");
    let (partner, _) = world.partner_with_callback(&url, None).await;
    let secret_of = |partner: &str| rpb::GetSigningSecretRequest {
        partner_id: partner.into(),
        notification_type: TYPE,
    };
    let hmac = world
        .registry
        .get_signing_secret(secret_of(&partner))
        .await
        .unwrap()
        .into_inner()
        .current;
    let mut switch = rpb::UpsertCallbackRequest {
        partner_id: partner.clone(),
        notification_type: TYPE,
        callback_url: url.clone(),
        ..Default::default()
    };
    switch.signature_scheme = Some(rpb::SignatureScheme::Ed25519.into());
    world.registry.upsert_callback(switch).await.unwrap();
    let keys = world
        .registry
        .rotate_signing_secret(rpb::RotateSigningSecretRequest {
            partner_id: partner.clone(),
            notification_type: TYPE,
            previous_expires_in_seconds: Some(3600),
        })
        .await
        .unwrap()
        .into_inner();
    let previous: Vec<&str> = keys.previous.iter().map(|k| k.key.as_str()).collect();
    assert_eq!(previous.len(), 2, "{previous:?}");
    assert!(previous[0].starts_with("whpk_") && previous[1] == hmac);

    let dispatcher = world.start_dispatcher(world.dispatcher_config()).await;
    dispatcher
        .client
        .clone()
        .publish(publish(&partner, r#"{"processUniqueId":"p-25519"}"#))
        .await
        .unwrap();
    let request = world
        .receiver
        .wait_for_requests(1, Duration::from_secs(10))
        .await
        .unwrap()
        .remove(0);
    let header = request.header("webhook-signature").unwrap().to_owned();
    let versions: Vec<&str> = header
        .split(' ')
        .map(|s| s.split(',').next().unwrap())
        .collect();
    assert_eq!(versions, ["v1a", "v1a", "v1"], "{header}");
    let (id, timestamp) = (
        request.header("webhook-id").unwrap().to_owned(),
        request.header("webhook-timestamp").unwrap().to_owned(),
    );
    for public_key in [keys.current.as_str(), previous[0]] {
        assert!(
            node_verifies(public_key, &id, &timestamp, &header, &request.body),
            "{public_key} verifies"
        );
    }
    assert!(
        !node_verifies(&keys.current, &id, &timestamp, &header, b"{\"forged\":1}"),
        "a changed body does not verify"
    );
    standardwebhooks::Webhook::new(&hmac)
        .unwrap()
        .verify(&request.body, &request.headers)
        .expect("the HMAC secret still in its grace period verifies its v1 signature");
}
