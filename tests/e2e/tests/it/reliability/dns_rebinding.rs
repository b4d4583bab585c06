//! DNS rebinding (reliability item 7): a partner's host name answers a
//! public address, then loopback, then a public and a private address
//! together, from a real DNS server the test runs
//! (`test_support::dns::DnsServer`), asked by the real dispatcher
//! (`DISPATCHER_DNS_SERVERS`).
//!
//! `127.0.0.2`, allowed by the operator's `DISPATCHER_ALLOWED_CALLBACK_NETWORKS`,
//! stands for the public address (no public address is reachable here);
//! `127.0.0.1` is the private one, where a listener on the same port
//! counts every connection. Must show: the listener gets none, and each
//! refusal is recorded as the attempt's error and the registration's
//! `errorStateReason`.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use test_support::dns::DnsServer;
use test_support::process::free_port;
use test_support::tls::TEST_HOST_NAME;
use test_support::{WebhookReceiver, eventually};
use tokio::net::TcpListener;

use crate::{Options, System, unkeyed};

const PUBLIC: IpAddr = IpAddr::V4(Ipv4Addr::new(127, 0, 0, 2));
const PRIVATE: IpAddr = IpAddr::V4(Ipv4Addr::LOCALHOST);

/// Accepts and counts connections on `addr`, and closes them.
async fn counting_listener(addr: SocketAddr) -> Arc<AtomicUsize> {
    let listener = TcpListener::bind(addr).await.unwrap();
    let count = Arc::new(AtomicUsize::new(0));
    let counted = count.clone();
    tokio::spawn(async move {
        while listener.accept().await.is_ok() {
            counted.fetch_add(1, Ordering::SeqCst);
        }
    });
    count
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_name_rebound_to_a_private_address_is_never_called() {
    let dns = DnsServer::start().await.unwrap();
    let port = free_port().unwrap();
    let public = WebhookReceiver::start_https_at(SocketAddr::new(PUBLIC, port))
        .await
        .unwrap();
    let private = counting_listener(SocketAddr::new(PRIVATE, port)).await;
    dns.set(TEST_HOST_NAME, &[PUBLIC]);

    let mut system = System::start_with(Options {
        extra_ca_pem: public.ca_pem().map(str::to_owned),
        ..Options::default()
    })
    .await;
    system
        .dispatcher
        .restart_with(&[
            ("DISPATCHER_DNS_SERVERS", &dns.addr().to_string()),
            ("DISPATCHER_ALLOWED_CALLBACK_NETWORKS", "127.0.0.2/32"),
            // Retrying through every phase, so that each delivery meets
            // each answer.
            ("DISPATCHER_RETRY_SCHEDULE", &["500ms"; 30].join(",")),
        ])
        .await
        .unwrap();
    let (partner, key) = system
        .partner_at(&format!("https://{TEST_HOST_NAME}:{port}/hook"))
        .await;
    let publish = |marker: &'static str| {
        let partner = partner.clone();
        let system = &system;
        async move {
            let answer = system
                .publisher()
                .await
                .publish(unkeyed(&partner, marker))
                .await
                .unwrap()
                .into_inner();
            answer.delivery_id.expect("a delivery was scheduled")
        }
    };

    // The name answers the public address: delivered there.
    publish("rebind-public").await;
    public
        .wait_for_requests(1, Duration::from_secs(10))
        .await
        .unwrap();
    // Its connections close, so the next attempt looks the name up again
    // (one that reuses a closing connection fails, and is retried).
    drop(public);

    dns.set(TEST_HOST_NAME, &[PRIVATE]);
    let asked = dns.questions();
    let to_loopback = publish("rebind-loopback").await;
    let loopback_reason = format!("refused: {TEST_HOST_NAME} resolves to no public address");
    settled_reason(&system, &partner, &key, &loopback_reason).await;
    assert!(dns.questions() > asked, "the name was not looked up again");
    attempts_refused(&system, &key, &to_loopback, &loopback_reason).await;

    dns.set(TEST_HOST_NAME, &[PUBLIC, PRIVATE]);
    let asked = dns.questions();
    let mixed = publish("rebind-mixed").await;
    let mixed_reason =
        format!("refused: {TEST_HOST_NAME} resolves to public and non-public addresses");
    settled_reason(&system, &partner, &key, &mixed_reason).await;
    assert!(dns.questions() > asked, "the name was not looked up again");
    let attempts = attempts_refused(&system, &key, &mixed, &mixed_reason).await;

    assert_eq!(
        private.load(Ordering::SeqCst),
        0,
        "the private address was called"
    );
    println!(
        "dns rebinding: {} questions answered; loopback answer refused ({loopback_reason:?}), \
         mixed answer refused ({mixed_reason:?}, {attempts} attempts); 0 connections to \
         {PRIVATE}:{port}",
        dns.questions()
    );
}

/// Waits until the registration's `errorStateReason` is `expected`.
async fn settled_reason(system: &System, partner: &str, key: &str, expected: &str) {
    eventually(
        &format!("errorStateReason {expected:?}"),
        Duration::from_secs(15),
        || async {
            let registration = system
                .get_json(key, &format!("/{partner}/callbacks/5"))
                .await?;
            (registration["errorStateReason"].as_str() == Some(expected)).then_some(())
        },
    )
    .await
    .unwrap();
}

/// Waits until one of the delivery's attempts failed with `expected`;
/// checks that none reached an endpoint. Returns how many it has.
async fn attempts_refused(system: &System, key: &str, delivery: &str, expected: &str) -> usize {
    let attempts = eventually(
        &format!("an attempt refused with {expected:?}"),
        Duration::from_secs(10),
        || async {
            let delivery = system
                .get_json(key, &format!("/v1/callbacks/deliveries/{delivery}"))
                .await?;
            let attempts = delivery["attempts"].as_array()?.clone();
            attempts
                .iter()
                .any(|a| a["error"].as_str() == Some(expected))
                .then_some(attempts)
        },
    )
    .await
    .unwrap();
    for attempt in &attempts {
        assert!(attempt["responseStatus"].is_null(), "{attempt}");
    }
    attempts.len()
}
