//! What one caller may take: a partner over its rate gets 429 with
//! `Retry-After` and no other partner notices; a client that sends its
//! headers or body too slowly is cut off; past the cap on requests in
//! progress, requests get 503 at once and liveness still answers.

use std::num::NonZeroU32;
use std::time::Duration;

use reqwest::{Method, StatusCode};
use serde_json::json;
use test_support::eventually;
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::TcpStream;

use crate::{Stack, expect_problem};

fn rate(n: u32) -> NonZeroU32 {
    NonZeroU32::new(n).unwrap()
}

fn retry_after(response: &reqwest::Response) -> u64 {
    response.headers()["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_partner_over_its_rate_waits_and_no_other_partner_does() {
    let stack = Stack::start_with(|config| {
        config.partner_rate = rate(2);
        config.partner_burst = rate(3);
    })
    .await;
    let (a, a_key) = stack.partner("Acme").await;
    let (b, b_key) = stack.partner("Globex").await;
    let list = |partner: &str, key: &str| {
        stack
            .as_key(key, Method::GET, &format!("/{partner}/callbacks"))
            .send()
    };

    for _ in 0..3 {
        assert_eq!(list(&a, &a_key).await.unwrap().status(), StatusCode::OK);
    }
    let refused = list(&a, &a_key).await.unwrap();
    let wait = retry_after(&refused);
    assert!((1..=2).contains(&wait), "Retry-After: {wait}");
    let problem = expect_problem(refused, StatusCode::TOO_MANY_REQUESTS).await;
    assert_eq!(problem["type"], "/problems/rate-limited");
    assert!(
        problem["detail"].as_str().unwrap().contains("2 per second"),
        "{problem}"
    );

    assert_eq!(list(&b, &b_key).await.unwrap().status(), StatusCode::OK);
    // Refused requests cost nothing: A is let in again once the rate allows.
    eventually("A let in again", Duration::from_secs(5), || async {
        (list(&a, &a_key).await.unwrap().status() == StatusCode::OK).then_some(())
    })
    .await
    .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn test_notifications_have_a_lower_rate_of_their_own() {
    let stack = Stack::with_delivery_and(|config| {
        config.echo_rate_per_minute = rate(1);
        config.echo_burst = rate(2);
    })
    .await;
    let receiver = &stack.delivery.as_ref().unwrap().receiver;
    let (partner, key) = stack.partner("Acme").await;
    let created = stack
        .put_callback(
            &key,
            &partner,
            5,
            json!({"callBackUrl": receiver.url("/5")}),
        )
        .await;
    assert_eq!(created.status(), StatusCode::CREATED);
    let echo = || {
        stack
            .as_key(
                &key,
                Method::POST,
                &format!("/v1/callbacks/echo/{partner}/5"),
            )
            .header("content-type", "application/json")
            .body(r#"{"processUniqueId":"p-1"}"#)
            .send()
    };

    for _ in 0..2 {
        assert_eq!(echo().await.unwrap().status(), StatusCode::ACCEPTED);
    }
    let refused = echo().await.unwrap();
    let wait = retry_after(&refused);
    assert!((20..=60).contains(&wait), "Retry-After: {wait}");
    let problem = expect_problem(refused, StatusCode::TOO_MANY_REQUESTS).await;
    assert!(
        problem["detail"]
            .as_str()
            .unwrap()
            .contains("test notifications: 1 per minute"),
        "{problem}"
    );
    let read = stack
        .as_key(&key, Method::GET, &format!("/{partner}/callbacks/5"))
        .send()
        .await
        .unwrap();
    assert_eq!(
        read.status(),
        StatusCode::OK,
        "other routes keep their own rate"
    );
}

/// A `PUT` of a callback whose body promises 100 bytes and stops after a
/// few: the request stays in progress until the gateway gives up on it.
async fn stalled_put(stack: &Stack, partner: &str, key: &str) -> TcpStream {
    let addr = stack.base.trim_start_matches("http://");
    let mut stream = TcpStream::connect(addr).await.unwrap();
    let head = format!(
        "PUT /{partner}/callbacks/5 HTTP/1.1\r\nHost: gateway\r\nAuthorization: Bearer {key}\r\n\
         Content-Type: application/json\r\nContent-Length: 100\r\n\r\n{{\"callBackUrl\""
    );
    stream.write_all(head.as_bytes()).await.unwrap();
    stream
}

/// Reads until the server closes the connection; answers what it sent.
async fn until_closed(stream: &mut TcpStream) -> String {
    let mut answer = Vec::new();
    let _ = stream.read_to_end(&mut answer).await;
    String::from_utf8_lossy(&answer).into_owned()
}

/// Sends one more byte of header every 200 ms until the server closes the
/// connection (true) or 5 s pass (false).
async fn drip_until_closed(mut stream: TcpStream) -> bool {
    let give_up = tokio::time::Instant::now() + Duration::from_secs(5);
    let mut answer = [0_u8; 1024];
    while tokio::time::Instant::now() < give_up {
        if stream.write_all(b"X").await.is_err() {
            return true;
        }
        let read = tokio::time::timeout(Duration::from_millis(200), stream.read(&mut answer)).await;
        if let Ok(Ok(0) | Err(_)) = read {
            return true;
        }
    }
    false
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slow_headers_are_cut_off_and_others_are_served_meanwhile() {
    let stack = Stack::start_with(|config| config.header_read_timeout_secs = 1).await;
    let addr = stack.base.trim_start_matches("http://").to_owned();
    // Slow clients send a byte of header at a time: the deadline covers
    // the whole header, not the gap between bytes.
    let mut slow = Vec::new();
    for _ in 0..20 {
        let mut stream = TcpStream::connect(&addr).await.unwrap();
        stream
            .write_all(b"GET /healthz HTTP/1.1\r\nHost: gateway\r\nX-Slow: ")
            .await
            .unwrap();
        slow.push(tokio::spawn(drip_until_closed(stream)));
    }
    let served = stack.request(Method::GET, "/healthz").send().await.unwrap();
    assert_eq!(served.status(), StatusCode::OK);
    let mut cut_off = 0;
    for client in slow {
        cut_off += usize::from(client.await.unwrap());
    }
    assert_eq!(cut_off, 20, "slow clients cut off within 5 s");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_body_that_never_ends_gets_408() {
    let stack = Stack::start_with(|config| config.request_timeout_secs = 1).await;
    let (partner, key) = stack.partner("Acme").await;
    let mut stream = stalled_put(&stack, &partner, &key).await;
    let answer = tokio::time::timeout(Duration::from_secs(5), until_closed(&mut stream))
        .await
        .expect("the gateway answers a stalled body within its deadline");
    assert!(answer.starts_with("HTTP/1.1 408"), "{answer}");
    assert!(answer.contains("/problems/request-timeout"), "{answer}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn past_the_cap_on_requests_in_progress_requests_get_503_and_liveness_answers() {
    let stack = Stack::start_with(|config| config.max_concurrent_requests = 2).await;
    let (partner, key) = stack.partner("Acme").await;
    // Two requests held in progress by bodies that never arrive.
    let mut held = Vec::new();
    for _ in 0..2 {
        held.push(stalled_put(&stack, &partner, &key).await);
    }
    let path = format!("/{partner}/callbacks");
    let refused = eventually(
        "a request refused at the cap",
        // Generous: the held requests reach the gateway as fast as a loaded
        // machine lets them.
        Duration::from_secs(20),
        || async {
            let response = stack.as_key(&key, Method::GET, &path).send().await.unwrap();
            (response.status() == StatusCode::SERVICE_UNAVAILABLE).then_some(response)
        },
    )
    .await
    .unwrap();
    assert_eq!(retry_after(&refused), 1);
    let problem = expect_problem(refused, StatusCode::SERVICE_UNAVAILABLE).await;
    assert!(
        problem["detail"]
            .as_str()
            .unwrap()
            .contains("too many requests in progress"),
        "{problem}"
    );
    let live = stack.request(Method::GET, "/healthz").send().await.unwrap();
    assert_eq!(live.status(), StatusCode::OK);

    drop(held);
    eventually(
        "requests served once the held ones end",
        Duration::from_secs(5),
        || async {
            let response = stack.as_key(&key, Method::GET, &path).send().await.unwrap();
            (response.status() == StatusCode::OK).then_some(())
        },
    )
    .await
    .unwrap();
}
