//! A minimal Partner Callbacks webhook receiver: axum and the Standard
//! Webhooks library (see examples/README.md).
//!
//! ```sh
//! WEBHOOK_SECRET=whsec_... PORT=8000 cargo run -p receiver-example
//! ```
//!
//! Register `http(s)://<your host>/webhooks/<type>` as your callback URL for
//! each notification type: the body is the event's JSON as published, so the
//! path is what tells the types apart.

use std::collections::HashSet;
use std::sync::{Arc, Mutex};

use axum::Router;
use axum::body::Bytes;
use axum::extract::{DefaultBodyLimit, Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::routing::post;
use standardwebhooks::{HEADER_WEBHOOK_ID, Webhook};
use tokio::sync::mpsc;

/// Our deliveries are at most 256 KiB (by default); refuse anything far larger unread.
const MAX_BODY: usize = 1 << 20;

/// A verified delivery, queued for the worker.
#[derive(Debug)]
struct Event {
    webhook_id: String,
    notification_type: String,
    body: Bytes,
}

struct Receiver {
    webhook: Webhook,
    /// Deliveries are at least once: a retry, or a redelivery, carries the
    /// same `webhook-id`. This set is in memory, so it forgets on restart
    /// and is not shared between replicas: a real receiver stores the id
    /// (unique key) with the event in one database transaction before
    /// answering, and keeps it for longer than our retries last (about two
    /// days).
    seen: Mutex<HashSet<String>>,
    /// Answer at once, work after: the handler only queues the event and
    /// answers 204; the worker task does the slow part. A queue in memory
    /// loses what it holds on a crash: a real receiver reads its jobs from
    /// that database.
    jobs: mpsc::UnboundedSender<Event>,
}

fn app(webhook: Webhook, jobs: mpsc::UnboundedSender<Event>) -> Router {
    let receiver = Receiver {
        webhook,
        seen: Mutex::default(),
        jobs,
    };
    Router::new()
        .route("/webhooks/{type}", post(receive))
        .layer(DefaultBodyLimit::max(MAX_BODY))
        .with_state(Arc::new(receiver))
}

async fn receive(
    State(receiver): State<Arc<Receiver>>,
    Path(notification_type): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> StatusCode {
    // The raw bytes, as received: a re-serialised body would not verify.
    if let Err(error) = receiver.webhook.verify(&body, &headers) {
        println!("refused: {error}");
        return StatusCode::UNAUTHORIZED;
    }
    let header = |name| {
        headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
    };
    let webhook_id = header(HEADER_WEBHOOK_ID).to_owned();
    // Test (echo) notifications say so; real events never do.
    let test = header("partner-callbacks-test") == "true";
    let first = receiver
        .seen
        .lock()
        .expect("no panic holds this lock")
        .insert(webhook_id.clone());
    let outcome = if first { "verified" } else { "duplicate" };
    println!("{outcome} webhook-id={webhook_id} type={notification_type} test={test}");
    if first {
        let event = Event {
            webhook_id,
            notification_type,
            body,
        };
        // Fails only once the worker has stopped, as the process ends
        // (and the set of ids with it): the retry will be worked on.
        if receiver.jobs.send(event).is_err() {
            return StatusCode::SERVICE_UNAVAILABLE;
        }
    }
    // A duplicate gets a 2xx too: it was delivered, so we stop retrying.
    StatusCode::NO_CONTENT
}

async fn work(mut jobs: mpsc::UnboundedReceiver<Event>) {
    while let Some(event) = jobs.recv().await {
        // Your business logic goes here.
        println!(
            "processed webhook-id={} type={} event={}",
            event.webhook_id,
            event.notification_type,
            String::from_utf8_lossy(&event.body)
        );
    }
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let secret = std::env::var("WEBHOOK_SECRET")
        .map_err(|_| "set WEBHOOK_SECRET to your callback's whsec_ secret")?;
    let webhook = Webhook::new(&secret)?;
    let host = std::env::var("HOST").unwrap_or_else(|_| "127.0.0.1".to_owned());
    let port: u16 = std::env::var("PORT").map_or(Ok(8000), |port| port.parse())?;
    let (jobs, queue) = mpsc::unbounded_channel();
    tokio::spawn(work(queue));
    let listener = tokio::net::TcpListener::bind((host.as_str(), port)).await?;
    println!(
        "listening on http://{}/webhooks/<type>",
        listener.local_addr()?
    );
    axum::serve(listener, app(webhook, jobs)).await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use std::time::{SystemTime, UNIX_EPOCH};

    use axum::body::Body;
    use axum::http::Request;
    use tower::ServiceExt as _;

    use super::*;

    const SECRET: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
    const BODY: &str = r#"{"processUniqueId":"p-1"}"#;

    fn delivery(id: &str, signature: &str, timestamp: i64) -> Request<Body> {
        Request::post("/webhooks/5")
            .header("webhook-id", id)
            .header("webhook-timestamp", timestamp)
            .header("webhook-signature", signature)
            .body(Body::from(BODY))
            .unwrap()
    }

    #[tokio::test]
    async fn verifies_queues_once_and_refuses_forgeries() {
        let (jobs, mut queue) = mpsc::unbounded_channel();
        let app = app(Webhook::new(SECRET).unwrap(), jobs);
        let now = SystemTime::now().duration_since(UNIX_EPOCH).unwrap();
        let now = i64::try_from(now.as_secs()).unwrap();
        let signed = Webhook::new(SECRET)
            .unwrap()
            .sign("msg_1", now, BODY.as_bytes())
            .unwrap();
        let stale = Webhook::new(SECRET)
            .unwrap()
            .sign("msg_3", now - 600, BODY.as_bytes())
            .unwrap();
        let forged = "v1,Zm9yZ2VkIGJ5IHNvbWVvbmUgd2l0aG91dCB0aGUga2V5IQ==";

        for (request, status) in [
            (delivery("msg_1", &signed, now), StatusCode::NO_CONTENT),
            // A retry: the same id, answered 2xx again but not queued twice.
            (delivery("msg_1", &signed, now), StatusCode::NO_CONTENT),
            (delivery("msg_2", forged, now), StatusCode::UNAUTHORIZED),
            // Signed right, but outside the 5 minutes' tolerance.
            (
                delivery("msg_3", &stale, now - 600),
                StatusCode::UNAUTHORIZED,
            ),
        ] {
            let answer = app.clone().oneshot(request).await.unwrap();
            assert_eq!(answer.status(), status);
        }
        let event = queue.try_recv().unwrap();
        assert_eq!(
            (event.webhook_id.as_str(), event.notification_type.as_str()),
            ("msg_1", "5")
        );
        assert!(queue.try_recv().is_err(), "one event queued, once");
    }
}
