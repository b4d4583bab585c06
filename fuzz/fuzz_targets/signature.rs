//! The signature builder, checked against the Standard Webhooks reference
//! library: for any secret, message id and body, what we sign verifies
//! there, and a body changed by one byte does not. Bodies are text: every
//! payload is JSON, and the reference library refuses a body that is not
//! UTF-8 (`InvalidPayload`) whatever its signature.
#![no_main]

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use dispatcher_service::domain::signature::{SigningKey, sign};
use http::{HeaderMap, HeaderValue};
use libfuzzer_sys::fuzz_target;
use secrecy::SecretString;

fuzz_target!(|input: (&[u8], &str, String)| {
    let (secret, id, body) = input;
    let mut body = body.into_bytes();
    if secret.is_empty()
        || id.is_empty()
        || !id.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_')
    {
        return;
    }
    let secret = format!("whsec_{}", STANDARD.encode(secret));
    let key = SigningKey::from_secret(&SecretString::from(secret.clone())).expect("a valid secret");
    let timestamp = chrono::Utc::now().timestamp();
    let signature = sign(&[key], id, timestamp, &body).expect("one key signs");

    let mut headers = HeaderMap::new();
    headers.insert("webhook-id", HeaderValue::from_str(id).unwrap());
    headers.insert("webhook-timestamp", HeaderValue::from(timestamp));
    headers.insert(
        "webhook-signature",
        HeaderValue::from_str(&signature).unwrap(),
    );
    let reference =
        standardwebhooks::Webhook::new(&secret).expect("the reference takes the secret");
    reference
        .verify(&body, &headers)
        .expect("our signature verifies");
    if let Some(first) = body.first_mut() {
        *first ^= 1;
        assert!(
            reference.verify(&body, &headers).is_err(),
            "a changed body verifies"
        );
    }
});
