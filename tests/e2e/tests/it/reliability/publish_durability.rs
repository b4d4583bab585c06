//! Publish durability (reliability item 2): 32 publishers, half publishing
//! one event per call and half ten per `PublishBatch`, each event with an
//! idempotency key of its own. A third of the way in, the dispatcher's
//! Postgres (full durability) is SIGKILLed with all its backends, and
//! started again a second later. Publishers retry a refused call with the
//! same keys until it is acknowledged, as the API asks of them.
//!
//! Must show: every acknowledged event is in the database afterwards with
//! the id it was acknowledged with (0 lost acknowledgements), each key is
//! one event, every acknowledged delivery arrives, refusals during the
//! outage say "retry" (`UNAVAILABLE`), and the dispatcher recovers without
//! a restart of its own.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use callbacks_proto::dispatcher::v1 as dpb;
use dpb::dispatcher_service_client::DispatcherServiceClient;
use test_support::cluster::{Cluster, Durability};
use test_support::eventually;

use crate::{Authed, Options, System};

const PUBLISHERS: usize = 32;
const BATCH: usize = 10;
/// How long the database stays down.
const OUTAGE: Duration = Duration::from_secs(1);
/// The longest a publisher keeps retrying one call.
const GIVE_UP: Duration = Duration::from_secs(120);

/// One acknowledged event.
#[derive(Debug, Clone)]
struct Ack {
    event_id: String,
    delivery_id: Option<String>,
    at: Instant,
}

#[derive(Debug, Default)]
struct Tally {
    acks: Mutex<HashMap<String, Ack>>,
    /// Refusals by gRPC code.
    refusals: Mutex<BTreeMap<String, usize>>,
    acknowledged: AtomicUsize,
}

impl Tally {
    fn record(&self, keys: &[String], results: Vec<dpb::PublishResponse>) {
        let at = Instant::now();
        let mut acks = self.acks.lock().unwrap();
        for (key, result) in keys.iter().zip(results) {
            acks.insert(
                key.clone(),
                Ack {
                    event_id: result.event_id,
                    delivery_id: result.delivery_id,
                    at,
                },
            );
        }
        self.acknowledged.fetch_add(keys.len(), Ordering::Relaxed);
    }

    fn refused(&self, status: &tonic::Status) {
        *self
            .refusals
            .lock()
            .unwrap()
            .entry(format!("{:?}", status.code()))
            .or_default() += 1;
    }
}

fn event(partner: &str, key: &str) -> dpb::PublishRequest {
    dpb::PublishRequest {
        partner_id: partner.to_owned(),
        notification_type: 5,
        payload_json: format!(r#"{{"processUniqueId":"{key}"}}"#),
        idempotency_key: Some(key.to_owned()),
        occurred_at: None,
        ordering_key: None,
    }
}

/// Publishes `keys` (one call, or one batch) until acknowledged.
async fn publish_until_acknowledged(
    mut client: DispatcherServiceClient<Authed>,
    partner: &str,
    keys: Vec<String>,
    tally: &Tally,
) {
    let started = Instant::now();
    loop {
        let answer = if keys.len() == 1 {
            client
                .publish(event(partner, &keys[0]))
                .await
                .map(|r| vec![r.into_inner()])
        } else {
            let events = keys.iter().map(|key| event(partner, key)).collect();
            client
                .publish_batch(dpb::PublishBatchRequest { events })
                .await
                .map(|r| r.into_inner().results)
        };
        match answer {
            Ok(results) => return tally.record(&keys, results),
            Err(status) => {
                tally.refused(&status);
                assert!(
                    started.elapsed() < GIVE_UP,
                    "{keys:?} still refused after {GIVE_UP:?}: {status:?}"
                );
                // The client's backoff between retries.
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        }
    }
}

async fn publisher(
    client: DispatcherServiceClient<Authed>,
    partner: String,
    index: usize,
    events: usize,
    tally: Arc<Tally>,
) {
    let keys: Vec<String> = (0..events).map(|n| format!("p{index}-e{n}")).collect();
    let per_call = if index.is_multiple_of(2) { 1 } else { BATCH };
    for call in keys.chunks(per_call) {
        publish_until_acknowledged(client.clone(), &partner, call.to_vec(), &tally).await;
    }
}

/// Every stored event of `partner`: idempotency key → event id.
async fn stored(url: &str, partner: &str) -> HashMap<String, String> {
    let (client, connection) = tokio_postgres::connect(url, tokio_postgres::NoTls)
        .await
        .unwrap();
    tokio::spawn(connection);
    let rows = client
        .query(
            "SELECT coalesce(idempotency_key, ''), id::text FROM events WHERE partner_id = $1::text::uuid",
            &[&partner],
        )
        .await
        .unwrap();
    let mut events = HashMap::new();
    for row in rows {
        let (key, id): (String, String) = (row.get(0), row.get(1));
        assert!(
            events.insert(key.clone(), id).is_none(),
            "key {key} holds two events"
        );
    }
    events
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn acknowledged_publishes_survive_a_postgres_kill() {
    let cluster = Arc::new(
        tokio::task::spawn_blocking(|| Cluster::start(Durability::Full))
            .await
            .unwrap()
            .unwrap(),
    );
    let url = format!("{}/dispatch", cluster.base_url());
    let (admin, connection) = tokio_postgres::connect(
        &format!("{}/postgres", cluster.base_url()),
        tokio_postgres::NoTls,
    )
    .await
    .unwrap();
    tokio::spawn(connection);
    admin
        .batch_execute("CREATE DATABASE dispatch")
        .await
        .unwrap();
    let mut system = System::start_with(Options {
        dispatcher_database: Some(url.clone()),
        ..Options::default()
    })
    .await;
    let (partner, _) = system.partner_with_callback("/durable").await;
    let client = system.publisher().await;

    let per_publisher = 40 * super::scale();
    let total = PUBLISHERS * per_publisher;
    let tally = Arc::new(Tally::default());
    let started = Instant::now();
    let publishers: Vec<_> = (0..PUBLISHERS)
        .map(|index| {
            tokio::spawn(publisher(
                client.clone(),
                partner.clone(),
                index,
                per_publisher,
                tally.clone(),
            ))
        })
        .collect();

    eventually(
        "a third of the events acknowledged",
        Duration::from_secs(60),
        || {
            let done = tally.acknowledged.load(Ordering::Relaxed);
            async move { (done >= total / 3).then_some(()) }
        },
    )
    .await
    .unwrap();
    let acknowledged_before = tally.acknowledged.load(Ordering::Relaxed);
    let killer = cluster.clone();
    tokio::task::spawn_blocking(move || killer.kill())
        .await
        .unwrap()
        .unwrap();
    // The outage itself: the database is down this long.
    tokio::time::sleep(OUTAGE).await;
    let restarter = cluster.clone();
    tokio::task::spawn_blocking(move || restarter.start_again())
        .await
        .unwrap()
        .unwrap();
    let restarted = Instant::now();
    for publisher in publishers {
        publisher.await.unwrap();
    }
    let elapsed = started.elapsed();

    let acks = tally.acks.lock().unwrap().clone();
    assert_eq!(acks.len(), total, "every publisher finished");
    let recovery = acks
        .values()
        .filter(|ack| ack.at > restarted)
        .map(|ack| ack.at - restarted)
        .min()
        .expect("acknowledgements after the restart");
    let refusals = tally.refusals.lock().unwrap().clone();
    let events = stored(&url, &partner).await;
    let lost: Vec<&String> = acks
        .iter()
        .filter(|(key, ack)| events.get(*key) != Some(&ack.event_id))
        .map(|(key, _)| key)
        .collect();
    eprintln!(
        "publish durability: {total} events acknowledged in {elapsed:?} ({acknowledged_before} \
         before the kill); Postgres down {OUTAGE:?}; first acknowledgement {recovery:?} after it \
         was back; refusals {refusals:?}; lost acknowledgements {}; events stored {}",
        lost.len(),
        events.len()
    );
    assert!(
        lost.is_empty(),
        "acknowledged but not stored as acknowledged: {lost:?}"
    );
    assert_eq!(events.len(), total, "one event per key, and no other");
    assert!(
        refusals.keys().all(|code| code == "Unavailable"),
        "refusals that do not say retry: {refusals:?}"
    );
    assert!(
        system.dispatcher.is_running(),
        "the dispatcher exited during the outage"
    );

    let deliveries: HashSet<String> = acks
        .values()
        .filter_map(|a| a.delivery_id.clone())
        .collect();
    assert_eq!(deliveries.len(), total, "every event has its delivery");
    system
        .all_arrive(&deliveries, Duration::from_secs(120))
        .await;
}
