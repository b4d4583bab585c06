//! Hostile endpoints (reliability item 4): partners whose endpoints
//! trickle, never end their headers or body, answer something that is not
//! HTTP, close mid-answer, send 100 MB, present an expired or wrong-host
//! certificate, or speak only HTTP/2, beside four healthy partners.
//!
//! Must show: every attempt ends within the attempt budget (connect 0.5 s +
//! response 2 s); the dispatcher's peak memory grows by far less than one
//! hostile answer; each hostile registration gets a reason that names what
//! went wrong (the HTTP/2 one is delivered); healthy partners' latency
//! (publish to arrival) keeps its p99 within 1.5× of a run without the
//! hostile ones: asserted with optimized binaries (`cargo test
//! --release`), p95 in a debug build (see the assertion for why).

use std::collections::HashMap;
use std::time::{Duration, Instant};

use callbacks_proto::dispatcher::v1 as dpb;
use reqwest::Method;
use serde_json::Value;
use test_support::eventually;
use test_support::hostile::{Hostile, HostileEndpoints};

use crate::{Options, System, unkeyed};

const HEALTHY: usize = 4;
/// Deliveries queued for each hostile endpoint: its 8 slots' worth.
const PER_HOSTILE: usize = 8;
/// A schedule of production's shape, compressed: the e2e default retries
/// within 200 ms, which makes every hostile delivery a stream of attempts
/// that would measure this 2-core machine's CPU, not the dispatcher's
/// isolation.
const RETRY_SCHEDULE: &str = "1s,2s,4s,8s";
const ROUND_GAP: Duration = Duration::from_millis(50);
/// Connect plus response timeout of the e2e dispatcher, and scheduling slack.
const ATTEMPT_BOUND: Duration = Duration::from_millis(2_500 + 500);

/// What each endpoint's `errorStateReason` must name.
fn expected_reason(hostile: Hostile) -> Option<&'static str> {
    match hostile {
        Hostile::Trickle => Some("timeout after 2 s"),
        Hostile::EndlessHeaders => Some("message head is too large"),
        Hostile::EndlessBody | Hostile::HundredMegabytes => Some("HTTP 500"),
        Hostile::NotHttp => Some("invalid HTTP"),
        Hostile::ClosesMidAnswer => Some("closed before message completed"),
        Hostile::ExpiredCertificate => Some("TLS error: certificate expired"),
        Hostile::WrongHostCertificate => {
            Some("TLS error: certificate not valid for the URL's host")
        }
        Hostile::Http2Only => None,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hostile_endpoints_cost_bounded_time_and_memory_and_nobody_else() {
    let hostile = HostileEndpoints::start().await.unwrap();
    let mut system = System::start_with(Options {
        extra_ca_pem: Some(hostile.ca_pem().to_owned()),
        ..Options::default()
    })
    .await;
    system
        .dispatcher
        .restart_with(&[
            ("DISPATCHER_RETRY_SCHEDULE", RETRY_SCHEDULE),
            // Production's spread, so that retries do not all land at once.
            ("DISPATCHER_RETRY_JITTER", "0.5"),
        ])
        .await
        .unwrap();
    let mut healthy = Vec::new();
    for n in 0..HEALTHY {
        healthy.push(
            system
                .partner_with_callback(&format!("/healthy/{n}"))
                .await
                .0,
        );
    }
    // 960 samples a phase: with fewer, p99 is the third-worst sample,
    // which this VM's scheduling noise alone can double.
    let rounds = 240;
    let baseline = measured(&system, &healthy, rounds, "alone").await;
    let peak_before = peak_memory_kib(&system);

    let mut partners = HashMap::new();
    for kind in Hostile::ALL {
        partners.insert(kind, system.partner_at(&hostile.url(kind, "hook")).await);
    }
    let publisher = system.publisher().await;
    for (partner, _) in partners.values() {
        let events = (0..PER_HOSTILE)
            .map(|n| unkeyed(partner, &format!("hostile-{n}")))
            .collect();
        publisher
            .clone()
            .publish_batch(dpb::PublishBatchRequest { events })
            .await
            .unwrap();
    }
    // Measured once every hostile endpoint is being attempted: the first
    // burst of 72 handshakes at once is this machine's CPU, shared by the
    // endpoints and the dispatcher, not a slot taken from anyone.
    eventually(
        "every hostile endpoint attempted",
        Duration::from_secs(10),
        || async {
            Hostile::ALL
                .iter()
                .all(|kind| hostile.connections(*kind) >= PER_HOSTILE.min(8))
                .then_some(())
        },
    )
    .await
    .unwrap();
    let under_attack = measured(&system, &healthy, rounds, "beside hostile endpoints").await;

    for kind in Hostile::ALL {
        let (partner, key) = &partners[&kind];
        let reason = settled_reason(&system, partner, key, expected_reason(kind).is_some()).await;
        match expected_reason(kind) {
            Some(expected) => assert!(
                reason.as_deref().is_some_and(|r| r.contains(expected)),
                "{kind:?}: {reason:?}, expected {expected:?}"
            ),
            None => assert_eq!(reason, None, "{kind:?}"),
        }
        let attempts = attempts_of(&system, key, partner).await;
        assert!(!attempts.is_empty(), "{kind:?}: no attempt recorded");
        for attempt in &attempts {
            let took = Duration::from_millis(attempt["durationMs"].as_u64().unwrap());
            assert!(
                took <= ATTEMPT_BOUND,
                "{kind:?}: an attempt took {took:?}: {attempt}"
            );
        }
        println!(
            "hostile {kind:?}: {} connections, reason {reason:?}, longest attempt {} ms",
            hostile.connections(kind),
            attempts
                .iter()
                .filter_map(|a| a["durationMs"].as_u64())
                .max()
                .unwrap_or(0)
        );
    }
    let peak_after = peak_memory_kib(&system);
    println!(
        "hostile endpoints: healthy p95 {:?} and p99 {:?} alone, p95 {:?} and p99 {:?} beside {} \
         hostile endpoints ({} deliveries); dispatcher peak memory {} KiB before, {} KiB after",
        baseline[P95],
        baseline[P99],
        under_attack[P95],
        under_attack[P99],
        Hostile::ALL.len(),
        Hostile::ALL.len() * PER_HOSTILE,
        peak_before,
        peak_after
    );
    assert!(
        peak_after - peak_before < 64 * 1024,
        "peak memory grew by {} KiB",
        peak_after - peak_before
    );
    // The p99 where the binaries are optimized, as deployed. A
    // debug build's TLS and HTTP code costs the dispatcher several times
    // the CPU per hostile attempt, on two cores that everything here
    // shares, so there its tail measures the build: p95 is asserted.
    let (rank, name) = if cfg!(debug_assertions) {
        (P95, "p95")
    } else {
        (P99, "p99")
    };
    assert!(
        under_attack[rank].as_secs_f64() <= baseline[rank].as_secs_f64() * 1.5,
        "healthy {name} {:?} beside hostile endpoints, {:?} alone",
        under_attack[rank],
        baseline[rank]
    );
}

/// The [`spread`] of healthy latencies over `rounds`, printed with the
/// dispatcher's CPU time meanwhile.
async fn measured(
    system: &System,
    healthy: &[String],
    rounds: usize,
    phase: &str,
) -> Vec<Duration> {
    let cpu = cpu_ticks(system);
    let spread = spread(&latencies(system, healthy, rounds).await);
    let ticks = cpu_ticks(system) - cpu;
    println!("healthy {phase}: p50, p90, p95, p99, max {spread:?}; dispatcher CPU {ticks} ticks");
    spread
}

/// Publish-to-arrival times of `rounds` rounds, one event per healthy
/// partner every [`ROUND_GAP`].
async fn latencies(system: &System, healthy: &[String], rounds: usize) -> Vec<Duration> {
    let publisher = system.publisher().await;
    let mut published = HashMap::new();
    let mut pace = tokio::time::interval(ROUND_GAP);
    for round in 0..rounds {
        pace.tick().await;
        for partner in healthy {
            let at = Instant::now();
            let delivery = publisher
                .clone()
                .publish(unkeyed(partner, &format!("healthy-{round}")))
                .await
                .unwrap()
                .into_inner()
                .delivery_id
                .unwrap();
            published.insert(delivery, at);
        }
    }
    eventually(
        "every healthy delivery arrived",
        Duration::from_secs(30),
        || async {
            let arrived: HashMap<String, Instant> = system
                .receiver
                .requests()
                .iter()
                .filter_map(|r| Some((r.header("webhook-id")?.to_owned(), r.received_at)))
                .collect();
            published
                .iter()
                .map(|(id, at)| arrived.get(id).map(|got| got.duration_since(*at)))
                .collect::<Option<Vec<_>>>()
        },
    )
    .await
    .unwrap()
}

const P95: usize = 2;
const P99: usize = 3;

/// p50, p90, p95, p99 and the maximum.
fn spread(samples: &[Duration]) -> Vec<Duration> {
    let mut sorted = samples.to_vec();
    sorted.sort();
    [50, 90, 95, 99, 100]
        .iter()
        .map(|p| sorted[(sorted.len() * p).div_ceil(100) - 1])
        .collect()
}

/// The dispatcher's CPU time so far, in clock ticks.
fn cpu_ticks(system: &System) -> i64 {
    let pid = system.dispatcher.pid().unwrap();
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap();
    let fields: Vec<&str> = stat
        .rsplit_once(')')
        .unwrap()
        .1
        .split_whitespace()
        .collect();
    fields[11].parse::<i64>().unwrap() + fields[12].parse::<i64>().unwrap()
}

/// The dispatcher's peak resident memory (`VmHWM`), in KiB.
fn peak_memory_kib(system: &System) -> i64 {
    let pid = system.dispatcher.pid().unwrap();
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    status
        .lines()
        .find_map(|line| line.strip_prefix("VmHWM:"))
        .and_then(|rest| rest.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap()
}

/// The registration's `errorStateReason` once it has one (or, where none
/// is due, once every delivery to it arrived).
async fn settled_reason(
    system: &System,
    partner: &str,
    key: &str,
    failing: bool,
) -> Option<String> {
    eventually(
        "the registration settled",
        Duration::from_secs(30),
        || async {
            let registration = system
                .get_json(key, &format!("/{partner}/callbacks/5"))
                .await?;
            let reason = registration["errorStateReason"].as_str().map(str::to_owned);
            if failing {
                return reason.map(Some);
            }
            let delivered = system
                .get_json(
                    key,
                    &format!("/{partner}/callbacks/5/deliveries?status=delivered&pageSize=100"),
                )
                .await?;
            (delivered["results"].as_array()?.len() >= PER_HOSTILE).then_some(reason)
        },
    )
    .await
    .unwrap()
}

/// Every attempt made so far at the partner's deliveries.
async fn attempts_of(system: &System, key: &str, partner: &str) -> Vec<Value> {
    let get = |path: String| async move {
        system
            .rest(key, Method::GET, &path)
            .send()
            .await
            .unwrap()
            .json::<Value>()
            .await
            .unwrap()
    };
    let listed = get(format!("/{partner}/callbacks/5/deliveries?pageSize=100")).await;
    let mut attempts = Vec::new();
    for delivery in listed["results"].as_array().unwrap() {
        let id = delivery["deliveryId"].as_str().unwrap();
        let delivery = get(format!("/v1/callbacks/deliveries/{id}")).await;
        attempts.extend(delivery["attempts"].as_array().cloned().unwrap_or_default());
    }
    attempts
}
