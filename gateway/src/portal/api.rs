//! The portal's only way to act: the REST API, called in process with the
//! session's API key. Every check a REST caller meets (the key, the
//! partner in the path, each field's rules, the rates) is met here the
//! same way, so the portal shows exactly what the API allows, and a
//! refusal's problem document is what the page explains.

use axum::Router;
use axum::body::Body;
use http::{Method, Request, StatusCode, header};
use secrecy::{ExposeSecret as _, SecretString};
use serde_json::Value;
use tower::ServiceExt as _;

/// The most a portal page reads of one API answer.
const MOST: usize = 4 << 20;

/// An API refusal, as its problem document says it.
#[derive(Debug, Clone)]
pub(crate) struct Refusal {
    pub status: StatusCode,
    pub title: String,
    pub detail: String,
    /// Each invalid field with what is wrong with it.
    pub fields: Vec<(String, String)>,
}

impl Refusal {
    fn of(status: StatusCode, body: &Value) -> Self {
        let text = |name: &str| body[name].as_str().unwrap_or_default().to_owned();
        let fields = body["invalidParams"]
            .as_array()
            .map(|params| {
                params
                    .iter()
                    .map(|p| {
                        let name = p["name"].as_str().unwrap_or_default().to_owned();
                        (name, p["reason"].as_str().unwrap_or_default().to_owned())
                    })
                    .collect()
            })
            .unwrap_or_default();
        Self {
            status,
            title: if text("title").is_empty() {
                status.canonical_reason().unwrap_or("Error").to_owned()
            } else {
                text("title")
            },
            detail: text("detail"),
            fields,
        }
    }

    fn broken(detail: &str) -> Self {
        Self {
            status: StatusCode::BAD_GATEWAY,
            title: "The API could not be read".to_owned(),
            detail: detail.to_owned(),
            fields: Vec::new(),
        }
    }
}

/// The REST API, and the key the session acts with.
#[derive(Clone)]
pub(crate) struct Api {
    router: Router,
    key: SecretString,
}

impl std::fmt::Debug for Api {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Api").finish_non_exhaustive()
    }
}

impl Api {
    pub(crate) fn new(router: Router, key: SecretString) -> Self {
        Self { router, key }
    }

    pub(crate) async fn get(&self, uri: &str) -> Result<Value, Refusal> {
        self.call(Method::GET, uri, None).await
    }

    pub(crate) async fn post(&self, uri: &str, body: Option<Value>) -> Result<Value, Refusal> {
        self.call(Method::POST, uri, body).await
    }

    pub(crate) async fn put(&self, uri: &str, body: Value) -> Result<Value, Refusal> {
        self.call(Method::PUT, uri, Some(body)).await
    }

    pub(crate) async fn delete(&self, uri: &str) -> Result<Value, Refusal> {
        self.call(Method::DELETE, uri, None).await
    }

    /// Sends `raw` as the body as it is (an echo's payload is the
    /// partner's text, checked by the API, not by us).
    pub(crate) async fn post_raw(&self, uri: &str, raw: String) -> Result<Value, Refusal> {
        self.send(Method::POST, uri, Some(raw)).await
    }

    async fn call(&self, method: Method, uri: &str, body: Option<Value>) -> Result<Value, Refusal> {
        self.send(method, uri, body.map(|b| b.to_string())).await
    }

    async fn send(
        &self,
        method: Method,
        uri: &str,
        body: Option<String>,
    ) -> Result<Value, Refusal> {
        let mut request = Request::builder().method(method).uri(uri).header(
            header::AUTHORIZATION,
            format!("Bearer {}", self.key.expose_secret()),
        );
        if body.is_some() {
            request = request.header(header::CONTENT_TYPE, "application/json");
        }
        let mut request = request
            .body(body.map_or_else(Body::empty, Body::from))
            .map_err(|_| Refusal::broken("the request could not be built"))?;
        request.extensions_mut().insert(crate::auth::PortalCall);
        let response = self
            .router
            .clone()
            .oneshot(request)
            .await
            .map_err(|_| Refusal::broken("the API did not answer"))?;
        let status = response.status();
        let bytes = axum::body::to_bytes(response.into_body(), MOST)
            .await
            .map_err(|_| Refusal::broken("the API's answer was too large"))?;
        let value = if bytes.is_empty() {
            Value::Null
        } else {
            serde_json::from_slice(&bytes).map_err(|_| Refusal::broken("the answer is not JSON"))?
        };
        if status.is_success() {
            Ok(value)
        } else {
            Err(Refusal::of(status, &value))
        }
    }
}
