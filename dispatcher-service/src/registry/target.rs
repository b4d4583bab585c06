//! Where and how to deliver to a registration, worked out once per
//! resolution.

use std::sync::Arc;
use std::time::Duration;

use opentelemetry::{KeyValue, Value};
use secrecy::SecretString;
use uuid::Uuid;

use crate::domain::signature::SigningKey;

/// Where and how to deliver to a registration. Built once per resolution
/// and shared by all its attempts, so what every attempt needs of the URL
/// (parsed, and redacted for its span) is worked out here, once.
#[derive(Debug)]
pub struct Target {
    pub registration_id: Uuid,
    pub url: String,
    /// `url` parsed; `None` if it is not a valid URI (each attempt then
    /// fails with that reason).
    pub uri: Option<http::Uri>,
    /// The attempt span's attributes that are the same for every attempt:
    /// the method, `url.full` (without the query, which may carry a
    /// token), `server.address`, `server.port` and `registration.id`.
    pub span_attributes: Vec<KeyValue>,
    pub user_name: Option<String>,
    pub password: Option<SecretString>,
    pub signing_keys: Vec<SigningKey>,
    /// The registration's own waits between attempts; `None` for the
    /// dispatcher's configured schedule.
    pub retry_waits: Option<Vec<Duration>>,
    /// Paused by the partner or an operator: its deliveries wait,
    /// unattempted, until it is resumed.
    pub paused: bool,
}

impl Target {
    pub fn new(
        registration_id: Uuid,
        url: String,
        user_name: Option<String>,
        password: Option<SecretString>,
        signing_keys: Vec<SigningKey>,
        retry_waits: &[u32],
    ) -> Self {
        let uri = url.parse::<http::Uri>().ok();
        // Shared strings: each attempt copies these, and a copy is then a
        // reference count, not an allocation.
        let shared = |s: String| Value::from(Arc::<str>::from(s));
        let host = uri.as_ref().and_then(http::Uri::host).unwrap_or_default();
        let mut span_attributes = vec![
            KeyValue::new("http.request.method", "POST"),
            KeyValue::new(
                "url.full",
                shared(uri.as_ref().map(redacted_url).unwrap_or_default()),
            ),
            KeyValue::new("server.address", shared(host.to_owned())),
            KeyValue::new("registration.id", shared(registration_id.to_string())),
        ];
        if let Some(port) = uri.as_ref().and_then(http::Uri::port_u16) {
            span_attributes.push(KeyValue::new("server.port", i64::from(port)));
        }
        Self {
            registration_id,
            url,
            uri,
            span_attributes,
            user_name,
            password,
            signing_keys,
            retry_waits: (!retry_waits.is_empty()).then(|| {
                retry_waits
                    .iter()
                    .map(|s| Duration::from_secs(u64::from(*s)))
                    .collect()
            }),
            paused: false,
        }
    }
}

/// `url.full` without the query, which may carry a token.
fn redacted_url(uri: &http::Uri) -> String {
    format!(
        "{}://{}{}",
        uri.scheme_str().unwrap_or("https"),
        uri.authority().map(|a| a.as_str()).unwrap_or_default(),
        uri.path()
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_lose_their_query_once_per_target() {
        let target = Target::new(
            Uuid::nil(),
            "https://hooks.example.com:8443/cb?token=s3cret".into(),
            None,
            None,
            Vec::new(),
            &[],
        );
        let attribute = |target: &Target, key: &str| {
            target
                .span_attributes
                .iter()
                .find(|kv| kv.key.as_str() == key)
                .map(|kv| kv.value.to_string())
        };
        assert_eq!(
            attribute(&target, "url.full").as_deref(),
            Some("https://hooks.example.com:8443/cb")
        );
        assert_eq!(
            attribute(&target, "server.address").as_deref(),
            Some("hooks.example.com")
        );
        assert_eq!(attribute(&target, "server.port").as_deref(), Some("8443"));
        let invalid = Target::new(Uuid::nil(), "not a url".into(), None, None, Vec::new(), &[]);
        assert!(invalid.uri.is_none());
        assert_eq!(attribute(&invalid, "url.full").as_deref(), Some(""));
        assert_eq!(attribute(&invalid, "server.port"), None);
    }
}
