//! The kill -9 soak (reliability item 1): three dispatcher replicas share
//! one queue and deliver to eight partners' endpoints, each answer taking
//! 300 ms so that deliveries are always in flight; every 1 to 2 s one
//! replica, chosen at random, gets SIGKILL and is started again at once.
//!
//! Must show: 0 lost (every delivery arrives); duplicates (the same
//! `webhook-id` arriving twice) only from what was in flight at a kill, so
//! at most kills × the most one replica holds in flight (8 endpoints × 8
//! per endpoint). The longest orphan wait (from the attempt a kill cut
//! short to the next attempt) is printed: it is the lease plus the time
//! the orphan then waits behind its endpoint's backlog, so it is a figure,
//! not a bound, until the suite can see when an orphan is claimed again.

use std::collections::{HashMap, HashSet};
use std::time::{Duration, Instant};

use callbacks_proto::dispatcher::v1 as dpb;
use test_support::process::free_port;
use test_support::{Reply, eventually};

use crate::{System, loopback};

const ENDPOINTS: usize = 8;
/// `DISPATCHER_PER_ENDPOINT_CONCURRENCY`'s default.
const PER_ENDPOINT: usize = 8;
const REPLICAS: usize = 3;
const ANSWER_AFTER: Duration = Duration::from_millis(300);

/// A small xorshift, seeded from the clock and printed, so that a failing
/// run's kill schedule can be read back.
struct Draw(u64);

impl Draw {
    fn next(&mut self, below: u64) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0 % below
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deliveries_survive_repeated_sigkills_of_replicas() {
    let mut system = System::start().await;
    system
        .receiver
        .set_global_default(Reply::ok().after(ANSWER_AFTER));
    let mut partners = Vec::new();
    for endpoint in 0..ENDPOINTS {
        let (partner, _) = system
            .partner_with_callback(&format!("/soak/{endpoint}"))
            .await;
        partners.push(partner);
    }
    let mut replicas = Vec::new();
    for _ in 1..REPLICAS {
        let (addr, admin) = (
            loopback(free_port().unwrap()),
            loopback(free_port().unwrap()),
        );
        let replica = system
            .dispatcher
            .start_like(
                addr,
                &[
                    ("DISPATCHER_LISTEN", &addr.to_string()),
                    ("DISPATCHER_ADMIN_LISTEN", &admin.to_string()),
                ],
            )
            .await
            .unwrap();
        replicas.push(replica);
    }

    let total = 3_000 * super::scale();
    let publisher = system.publisher().await;
    let published = Instant::now();
    let mut deliveries = HashSet::new();
    for chunk in (0..total).collect::<Vec<_>>().chunks(100) {
        let events = chunk
            .iter()
            .map(|n| dpb::PublishRequest {
                partner_id: partners[n % ENDPOINTS].clone(),
                notification_type: 5,
                payload_json: format!(r#"{{"processUniqueId":"soak-{n}"}}"#),
                idempotency_key: None,
                occurred_at: None,
            })
            .collect();
        let results = publisher
            .clone()
            .publish_batch(dpb::PublishBatchRequest { events })
            .await
            .unwrap()
            .into_inner()
            .results;
        deliveries.extend(results.into_iter().filter_map(|r| r.delivery_id));
    }
    assert_eq!(deliveries.len(), total);

    let seed = u64::from(published.elapsed().subsec_nanos()) | 1;
    let mut draw = Draw(seed);
    let mut kills = 0;
    let arrived = |system: &System| -> HashSet<String> {
        system
            .receiver
            .requests()
            .iter()
            .filter_map(|r| r.header("webhook-id").map(str::to_owned))
            .collect()
    };
    let give_up = Instant::now() + Duration::from_secs(300);
    while arrived(&system).len() < total {
        assert!(Instant::now() < give_up, "not all delivered within 300 s");
        // The gap between kills is the schedule of the fault, not a wait
        // for a condition.
        tokio::time::sleep(Duration::from_millis(1_000 + draw.next(1_000))).await;
        let victim = draw.next(REPLICAS as u64) as usize;
        let service = if victim == 0 {
            &mut system.dispatcher
        } else {
            &mut replicas[victim - 1]
        };
        service.kill().await.unwrap();
        service.start_again().await.unwrap();
        kills += 1;
    }
    let drained = published.elapsed();
    // A delivery is attempted again only while it is pending: once none
    // is, every duplicate there will be has arrived.
    eventually("no delivery pending", Duration::from_secs(60), || async {
        let pending = system
            .dispatch_db()
            .count("SELECT count(*) FROM deliveries WHERE status = 'pending'")
            .await
            .unwrap();
        (pending == 0).then_some(())
    })
    .await
    .unwrap();

    let requests = system.receiver.requests();
    let mut arrivals: HashMap<String, Vec<Instant>> = HashMap::new();
    for request in &requests {
        if let Some(id) = request.header("webhook-id") {
            arrivals
                .entry(id.to_owned())
                .or_default()
                .push(request.received_at);
        }
    }
    let lost = deliveries
        .iter()
        .filter(|id| !arrivals.contains_key(*id))
        .count();
    let duplicates: usize = arrivals.values().map(|at| at.len() - 1).sum();
    // An orphan's wait: from the attempt whose replica was killed to the
    // next attempt, by another replica or the restarted one.
    let orphan_wait = arrivals
        .values()
        .filter(|at| at.len() > 1)
        .map(|at| at[1] - at[0])
        .max()
        .unwrap_or_default();
    let bound = kills * ENDPOINTS * PER_ENDPOINT;
    #[allow(clippy::cast_precision_loss, reason = "a ratio for people")]
    let share = duplicates as f64 * 100.0 / total as f64;
    eprintln!(
        "kill soak: {total} deliveries, {REPLICAS} replicas, {kills} SIGKILLs (seed {seed}), all \
         delivered in {drained:?}; lost {lost}; duplicates {duplicates} ({share:.2} %, bound \
         {bound}); longest orphan wait {orphan_wait:?}"
    );
    assert_eq!(lost, 0, "deliveries that never arrived");
    assert!(
        kills >= 3,
        "only {kills} kills: the run was too short to test anything"
    );
    assert!(
        duplicates <= bound,
        "{duplicates} duplicates, more than in flight at the kills"
    );
    assert!(
        arrivals.keys().all(|id| deliveries.contains(id)),
        "a request arrived that was never published"
    );
}
