//! The echo body rule (JSON, sent as JSON), on any content type and body:
//! never a panic; what it accepts is a JSON document sent with a JSON
//! media type, and a JSON document sent as `application/json` is accepted.
#![no_main]

use http::{HeaderMap, HeaderValue, header};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|input: (&[u8], &[u8])| {
    let (content_type, body) = input;
    let Ok(value) = HeaderValue::from_bytes(content_type) else {
        return;
    };
    let mut headers = HeaderMap::new();
    headers.insert(header::CONTENT_TYPE, value);
    let accepted = gateway::check_raw_body(&headers, body).is_ok();
    let is_json = serde_json::from_slice::<serde_json::Value>(body).is_ok();
    if accepted {
        assert!(is_json);
        let mime = String::from_utf8_lossy(content_type).to_ascii_lowercase();
        let mime = mime.split(';').next().unwrap_or_default().trim().to_owned();
        assert!(
            mime == "application/json"
                || (mime.starts_with("application/") && mime.ends_with("+json")),
            "{mime}"
        );
    }
    if is_json {
        let mut plain = HeaderMap::new();
        plain.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        );
        assert!(gateway::check_raw_body(&plain, body).is_ok());
    }
});
