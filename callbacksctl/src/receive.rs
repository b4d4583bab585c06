//! `callbacksctl receive`: a local webhook endpoint that prints what it
//! gets, so that a newcomer (or an operator reproducing a partner's setup)
//! can watch deliveries arrive. With `--secret` it verifies each signature
//! with the published Standard Webhooks library, as a partner would.

use std::net::SocketAddr;
use std::sync::Arc;

use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::routing::any;
use http::{HeaderMap, Method, StatusCode, Uri};

struct Receiver {
    verifier: Option<standardwebhooks::Webhook>,
    status: StatusCode,
}

impl std::fmt::Debug for Receiver {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Receiver")
            .field("verifies", &self.verifier.is_some())
            .field("status", &self.status)
            .finish()
    }
}

/// What one arrival looks like on the terminal.
pub(crate) fn describe(
    method: &Method,
    uri: &Uri,
    headers: &HeaderMap,
    body: &[u8],
    verified: Option<bool>,
) -> String {
    let header = |name: &str| {
        headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("-")
            .to_owned()
    };
    let signature = match verified {
        None => "not checked (no --secret)".to_owned(),
        Some(true) => "valid".to_owned(),
        Some(false) => "INVALID".to_owned(),
    };
    format!(
        "{now}  {method} {uri}\n  webhook-id: {id}\n  webhook-timestamp: {ts}\n  signature: {signature}\n  authorization: {auth}\n  body: {body}\n",
        now = chrono::Utc::now().format("%H:%M:%S%.3f"),
        id = header("webhook-id"),
        ts = header("webhook-timestamp"),
        auth = if headers.contains_key("authorization") {
            "present"
        } else {
            "none"
        },
        body = String::from_utf8_lossy(body),
    )
}

async fn arrive(
    State(receiver): State<Arc<Receiver>>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> StatusCode {
    let verified = receiver
        .verifier
        .as_ref()
        .map(|v| v.verify(&body, &headers).is_ok());
    println!("{}", describe(&method, &uri, &headers, &body, verified));
    receiver.status
}

/// Serves until Ctrl-C.
pub(crate) async fn run(
    listen: SocketAddr,
    secret: Option<String>,
    status: u16,
) -> anyhow::Result<()> {
    let verifier = secret
        .map(|s| standardwebhooks::Webhook::new(&s).map_err(|e| anyhow::anyhow!("--secret: {e}")))
        .transpose()?;
    let status = StatusCode::from_u16(status)
        .map_err(|_| anyhow::anyhow!("--status must be an HTTP status code"))?;
    let app = Router::new()
        .fallback(any(arrive))
        .with_state(Arc::new(Receiver { verifier, status }));
    let listener = tokio::net::TcpListener::bind(listen).await?;
    println!(
        "listening on http://{}/ (answering {status}); Ctrl-C to stop",
        listener.local_addr()?
    );
    axum::serve(listener, app)
        .with_graceful_shutdown(async {
            let _ = tokio::signal::ctrl_c().await;
        })
        .await?;
    Ok(())
}
