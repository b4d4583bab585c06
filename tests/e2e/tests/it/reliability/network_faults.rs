//! Network faults (reliability item 3): a [`FaultProxy`] between the
//! dispatcher and its Postgres (full durability), and one between the
//! dispatcher and the registry, add latency, reset connections, reset a
//! connection right after its `COMMIT`, and become a black hole.
//!
//! Must show: a worker cut off past its lease writes nothing once it is
//! back (0 rows), no delivery ends in two terminal states, a commit whose
//! answer is lost does not make an unkeyed publisher duplicate silently,
//! and everything is delivered once the faults stop.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::time::{Duration, Instant};

use callbacks_proto::dispatcher::v1 as dpb;
use dpb::dispatcher_service_client::DispatcherServiceClient;
use test_support::cluster::{Cluster, Durability};
use test_support::eventually;
use test_support::faults::{Fault, FaultProxy};
use test_support::process::{Service, free_port};
use test_support::{ReceivedRequest, Reply};

use crate::{Authed, Options, System, loopback, metric, unkeyed};

/// A system whose dispatcher reaches its database (a private cluster with
/// full durability) only through a fault proxy.
struct Faulty {
    system: System,
    /// Held for the test's length: dropping it stops the server.
    _cluster: Cluster,
    database: FaultProxy,
    /// The database's URL, straight to the server.
    direct_url: String,
}

impl Faulty {
    async fn start() -> Self {
        let cluster = tokio::task::spawn_blocking(|| Cluster::start(Durability::Full))
            .await
            .unwrap()
            .unwrap();
        let admin = connect(&format!("{}/postgres", cluster.base_url())).await;
        admin
            .batch_execute("CREATE DATABASE dispatch")
            .await
            .unwrap();
        let database = FaultProxy::start(loopback(cluster.port())).await.unwrap();
        let system = System::start_with(Options {
            dispatcher_database: Some(format!("postgres://postgres@{}/dispatch", database.addr())),
            ..Options::default()
        })
        .await;
        let direct_url = format!("{}/dispatch", cluster.base_url());
        Self {
            system,
            _cluster: cluster,
            database,
            direct_url,
        }
    }

    /// Restarts the dispatcher claiming (and sweeping) every `interval`.
    async fn poll_every(&mut self, interval: &str) {
        self.system
            .dispatcher
            .restart_with(&[("DISPATCHER_POLL_INTERVAL", interval)])
            .await
            .unwrap();
    }

    async fn db(&self) -> tokio_postgres::Client {
        connect(&self.direct_url).await
    }

    /// Another dispatcher replica, straight to the database.
    async fn direct_replica(&self) -> Service {
        let (addr, admin) = (
            loopback(free_port().unwrap()),
            loopback(free_port().unwrap()),
        );
        self.system
            .dispatcher
            .start_like(
                addr,
                &[
                    ("DISPATCHER_LISTEN", &addr.to_string()),
                    ("DISPATCHER_ADMIN_LISTEN", &admin.to_string()),
                    ("DISPATCHER_DATABASE_URL", &self.direct_url),
                ],
            )
            .await
            .unwrap()
    }
}

/// The ids of the events stored with `marker` as their process id.
async fn per_marker_now(db: &tokio_postgres::Client, marker: &str) -> Vec<String> {
    db.query(
        "SELECT id::text FROM events
         WHERE convert_from(payload, 'UTF8')::json->>'processUniqueId' = $1",
        &[&marker],
    )
    .await
    .unwrap()
    .iter()
    .map(|r| r.get(0))
    .collect()
}

/// Waits until the count `query` answers is `expected`.
async fn count_reaches(
    db: &tokio_postgres::Client,
    query: &str,
    expected: i64,
    deadline: Duration,
) {
    eventually(&format!("{query} = {expected}"), deadline, || async {
        let count: i64 = db.query_one(query, &[]).await.ok()?.get(0);
        (count == expected).then_some(())
    })
    .await
    .unwrap();
}

async fn connect(url: &str) -> tokio_postgres::Client {
    let (client, connection) = tokio_postgres::connect(url, tokio_postgres::NoTls)
        .await
        .unwrap();
    tokio::spawn(connection);
    client
}

/// Each delivery's row and attempts, as text: what a write would change.
async fn queue_rows(db: &tokio_postgres::Client) -> BTreeMap<String, String> {
    let rows = db
        .query(
            "SELECT d.id::text, row(d.status, d.attempt_count, d.lease_token, d.next_attempt_at,
                    d.last_error, d.updated_at, d.completed_at)::text
                    || coalesce((SELECT string_agg(row(a.*)::text, ';' ORDER BY a.attempt_number)
                                 FROM attempts a WHERE a.delivery_id = d.id), '')
             FROM deliveries d",
            &[],
        )
        .await
        .unwrap();
    rows.iter().map(|r| (r.get(0), r.get(1))).collect()
}

/// A worker cut off from its database while it holds deliveries: its
/// attempts time out, it cannot write that, its lease ends, and another
/// replica delivers them. When the link comes back, what it sent into the
/// black hole and what it retries reach the server late, and must change
/// nothing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_worker_cut_off_past_its_lease_writes_nothing() {
    const HELD: usize = 6;
    let faulty = Faulty::start().await;
    let system = &faulty.system;
    let path = "/fenced";
    let (partner, _) = system.partner_with_callback(path).await;
    system
        .receiver
        .respond(path, std::iter::repeat_n(Reply::hang(), HELD));
    system.receiver.set_default(path, Reply::ok());
    let publisher = system.publisher().await;
    for n in 0..HELD {
        publisher
            .clone()
            .publish(unkeyed(&partner, &format!("fenced-{n}")))
            .await
            .unwrap();
    }
    // The first replica holds them all: its attempts hang at the endpoint.
    system
        .receiver
        .wait_for_requests_to(path, HELD, Duration::from_secs(10))
        .await
        .unwrap();
    faulty.database.set(Fault::BlackHole);

    let mut other = faulty.direct_replica().await;
    let db = faulty.db().await;
    count_reaches(
        &db,
        "SELECT count(*) FROM deliveries WHERE status = 'delivered'",
        HELD as i64,
        Duration::from_secs(30),
    )
    .await;
    let before = queue_rows(&db).await;

    faulty.database.set(Fault::None);
    let admin = system.dispatcher_admin;
    let fenced = eventually(
        "the cut-off replica to try its writes again, and be refused",
        Duration::from_secs(60),
        || async {
            let taken = metric(
                &system.http,
                admin,
                "callbacks_outcomes_not_written_total",
                &[("reason", "lease_taken_over")],
            )
            .await?;
            (taken >= HELD as f64).then_some(taken)
        },
    )
    .await
    .unwrap();
    let after = queue_rows(&db).await;
    let changed = before
        .iter()
        .filter(|(id, row)| after.get(*id) != Some(row))
        .count();
    let arrived = system.receiver.requests_to(path);
    eprintln!(
        "network faults, fencing: {HELD} deliveries held by a replica cut off past its lease; \
         {fenced} of its outcomes refused once it was back; {changed} rows changed; \
         {} attempts reached the endpoint",
        arrived.len()
    );
    assert_eq!(
        changed, 0,
        "the cut-off replica wrote: {before:?} → {after:?}"
    );
    for row in after.values() {
        assert!(
            row.starts_with("(delivered,1,,"),
            "one attempt, delivered, no lease left: {row}"
        );
    }
    other.stop().await.unwrap();
}

/// What an unkeyed publisher heard and what was stored, by marker.
#[derive(Debug, Default)]
struct Heard {
    acknowledged: HashMap<String, String>,
    refused: BTreeMap<String, usize>,
}

/// Each publish's `COMMIT` reaches the server and commits, and the
/// connection is reset before the dispatcher hears the answer. The
/// publisher has no idempotency key: whatever it hears must let it tell
/// whether to publish again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_uncertain_commit_does_not_make_a_publisher_duplicate() {
    const PUBLISHES: usize = 8;
    let mut faulty = Faulty::start().await;
    // Nothing but publishes commits transactions: the queue's periodic
    // sweep (a transaction too) waits an hour.
    faulty.poll_every("1h").await;
    let system = &faulty.system;
    let (partner, _) = system.partner_with_callback("/uncertain").await;
    let publisher = system.publisher().await;
    let mut heard = Heard::default();
    for n in 0..PUBLISHES {
        let marker = format!("uncertain-{n}");
        faulty.database.reset_next_commits(1);
        // A publisher that retries what it is told to retry.
        for _ in 0..5 {
            match publisher.clone().publish(unkeyed(&partner, &marker)).await {
                Ok(answer) => {
                    heard
                        .acknowledged
                        .insert(marker.clone(), answer.into_inner().event_id);
                    break;
                }
                Err(status) => {
                    *heard
                        .refused
                        .entry(format!("{:?}", status.code()))
                        .or_default() += 1;
                    if status.code() != tonic::Code::Unavailable {
                        break;
                    }
                }
            }
        }
    }
    let db = faulty.db().await;
    let stored: Vec<(String, String)> = db
        .query(
            "SELECT convert_from(payload, 'UTF8')::json->>'processUniqueId', id::text FROM events",
            &[],
        )
        .await
        .unwrap()
        .iter()
        .map(|r| (r.get(0), r.get(1)))
        .collect();
    let mut per_marker: HashMap<&str, Vec<&str>> = HashMap::new();
    for (marker, id) in &stored {
        per_marker.entry(marker).or_default().push(id);
    }
    eprintln!(
        "network faults, uncertain commits: {PUBLISHES} unkeyed publishes, {} commits cut off; \
         acknowledged {}; refusals {:?}; events stored {}",
        faulty.database.commits_reset(),
        heard.acknowledged.len(),
        heard.refused,
        stored.len()
    );
    assert_eq!(faulty.database.commits_reset(), PUBLISHES);
    for n in 0..PUBLISHES {
        let marker = format!("uncertain-{n}");
        let ids = per_marker.get(marker.as_str()).cloned().unwrap_or_default();
        match heard.acknowledged.get(&marker) {
            Some(id) => assert_eq!(ids, [id.as_str()], "{marker}: stored once, as acknowledged"),
            None => assert!(ids.len() <= 1, "{marker} stored {} times", ids.len()),
        }
    }

    // The link fails for good right after the commit: the dispatcher
    // cannot find out what became of it.
    let marker = "uncertain-unresolved";
    faulty.database.reset_next_commits_then(1, Fault::BlackHole);
    let refused = publisher
        .clone()
        .publish(unkeyed(&partner, marker))
        .await
        .unwrap_err();
    faulty.database.set(Fault::None);
    let ids = per_marker_now(&db, marker).await;
    eprintln!(
        "network faults, unresolved commit: the publisher heard {:?} \"{}\"; stored {} time(s)",
        refused.code(),
        refused.message(),
        ids.len()
    );
    assert_eq!(refused.code(), tonic::Code::Unknown, "{refused:?}");
    assert!(
        ids.iter().all(|id| refused.message().contains(id.as_str())),
        "the answer names the event it may have stored: {refused:?}, stored {ids:?}"
    );
    assert_eq!(ids.len(), 1, "the cut-off commit had committed, once");

    // The one whose publish was unresolved was leased to the dispatcher,
    // which never took it up: it is claimed when the lease ends, by the
    // periodic claim this test had put off.
    faulty.poll_every("200ms").await;
    let system = &faulty.system;
    let delivered: Vec<ReceivedRequest> = system
        .receiver
        .wait_for_requests_to("/uncertain", PUBLISHES + 1, Duration::from_secs(30))
        .await
        .unwrap();
    assert_eq!(delivered.len(), PUBLISHES + 1, "each event delivered once");
}

/// Publishes `markers` in one batch until the dispatcher accepts it or
/// says it cannot tell; answers (marker, delivery id) for what it accepted,
/// and the codes it heard.
async fn publish_through_faults(
    publisher: DispatcherServiceClient<Authed>,
    partner: &str,
    markers: &[String],
) -> (Vec<(String, String)>, Vec<tonic::Code>) {
    let deadline = Instant::now() + Duration::from_secs(90);
    let mut heard = Vec::new();
    loop {
        let events = markers.iter().map(|m| unkeyed(partner, m)).collect();
        match publisher
            .clone()
            .publish_batch(dpb::PublishBatchRequest { events })
            .await
        {
            Ok(answer) => {
                let accepted = markers
                    .iter()
                    .cloned()
                    .zip(answer.into_inner().results)
                    .filter_map(|(marker, r)| Some((marker, r.delivery_id?)))
                    .collect();
                return (accepted, heard);
            }
            Err(status) => {
                heard.push(status.code());
                if status.code() != tonic::Code::Unavailable || Instant::now() > deadline {
                    return (Vec::new(), heard);
                }
                // The publisher's backoff before it retries.
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
    }
}

/// Latency, resets, commits cut off and black holes, on the dispatcher's
/// links to Postgres and to the registry, while events are published and
/// delivered; then the faults stop.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn everything_is_delivered_once_the_faults_stop() {
    const PARTNERS: usize = 4;
    const BATCHES: usize = 40;
    const BATCH: usize = 10;
    let mut faulty = Faulty::start().await;
    let registry = FaultProxy::start(faulty.system.registry.addr)
        .await
        .unwrap();
    faulty
        .system
        .dispatcher
        .restart_with(&[
            (
                "DISPATCHER_REGISTRY_URL",
                &format!("http://{}", registry.addr()),
            ),
            // Resolutions are asked for again every second, so that the
            // registry's link matters to deliveries, not only to reports.
            ("DISPATCHER_REGISTRY_CACHE_TTL", "1s"),
        ])
        .await
        .unwrap();
    let system = &faulty.system;
    system
        .receiver
        .set_global_default(Reply::ok().after(Duration::from_millis(20)));
    let mut partners = Vec::new();
    for n in 0..PARTNERS {
        partners.push(system.partner_with_callback(&format!("/chaos/{n}")).await.0);
    }
    let publisher = system.publisher().await;
    let publishing = {
        let partners = partners.clone();
        let publisher = publisher.clone();
        tokio::spawn(async move {
            let mut accepted = Vec::new();
            let mut heard = Vec::new();
            // A batch every 500 ms, so publishes span the whole fault
            // schedule; a batch held up by a fault delays the rest.
            let mut timetable = tokio::time::interval(Duration::from_millis(500));
            timetable.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            for batch in 0..BATCHES {
                timetable.tick().await;
                let markers: Vec<String> =
                    (0..BATCH).map(|n| format!("chaos-{batch}-{n}")).collect();
                let (ok, codes) = publish_through_faults(
                    publisher.clone(),
                    &partners[batch % PARTNERS],
                    &markers,
                )
                .await;
                accepted.extend(ok);
                heard.extend(codes);
            }
            (accepted, heard)
        })
    };

    // The fault schedule: each fault holds for `HOLD`, on a timetable.
    const HOLD: Duration = Duration::from_secs(3);
    let database = &faulty.database;
    let schedule: [(&str, &dyn Fn()); 7] = [
        ("latency 100 ms on both links", &|| {
            database.set(Fault::Latency(Duration::from_millis(100)));
            registry.set(Fault::Latency(Duration::from_millis(100)));
        }),
        ("database connections reset", &|| {
            database.set(Fault::None);
            registry.set(Fault::None);
            database.reset_all();
        }),
        ("database black hole", &|| database.set(Fault::BlackHole)),
        ("next 3 commits cut off", &|| {
            database.set(Fault::None);
            database.reset_next_commits(3);
        }),
        ("registry black hole", &|| registry.set(Fault::BlackHole)),
        ("registry connections reset", &|| {
            registry.set(Fault::None);
            registry.reset_all();
        }),
        ("both black holes", &|| {
            database.set(Fault::BlackHole);
            registry.set(Fault::BlackHole);
        }),
    ];
    let faults_started = Instant::now();
    for (_, inject) in &schedule {
        inject();
        tokio::time::sleep(HOLD).await;
    }
    database.set(Fault::None);
    registry.set(Fault::None);
    let healed = Instant::now();
    let (accepted, heard) = publishing.await.unwrap();
    let answered = Instant::now();

    let ids: HashSet<String> = accepted.iter().map(|(_, d)| d.clone()).collect();
    system.all_arrive(&ids, Duration::from_secs(90)).await;
    let all_in = answered.elapsed();
    let last_answer = answered - healed;
    let db = faulty.db().await;
    count_reaches(
        &db,
        "SELECT count(*) FROM deliveries WHERE status = 'pending'",
        0,
        Duration::from_secs(60),
    )
    .await;

    let stored: HashMap<String, i64> = db
        .query(
            "SELECT convert_from(payload, 'UTF8')::json->>'processUniqueId', count(*) FROM events
             GROUP BY 1",
            &[],
        )
        .await
        .unwrap()
        .iter()
        .map(|r| (r.get(0), r.get(1)))
        .collect();
    let twice_stored = stored.values().filter(|n| **n > 1).count();
    // A terminal state is written once: at most one successful attempt per
    // delivery, and none after a terminal one.
    let twice_terminal: i64 = db
        .query_one(
            "SELECT count(*) FROM (SELECT delivery_id FROM attempts
                                   WHERE response_status BETWEEN 200 AND 299
                                   GROUP BY delivery_id HAVING count(*) > 1) t",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    let not_delivered: i64 = db
        .query_one(
            "SELECT count(*) FROM deliveries WHERE status <> 'delivered' OR completed_at IS NULL",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    let arrivals = system.receiver.requests();
    let distinct: HashSet<&str> = arrivals
        .iter()
        .filter_map(|r| r.header("webhook-id"))
        .collect();
    let mut codes: BTreeMap<String, usize> = BTreeMap::new();
    for code in &heard {
        *codes.entry(format!("{code:?}")).or_default() += 1;
    }
    eprintln!(
        "network faults, chaos: {} faults over {:?} ({}); {} events accepted of {}; refusals \
         {codes:?}; {} commits cut off; publishing went on {last_answer:?} after the faults \
         stopped, and every accepted event was delivered {all_in:?} after the last answer; \
         {} arrivals for {} deliveries ({} repeated); events stored twice {twice_stored}; \
         deliveries with two successful attempts {twice_terminal}; not delivered {not_delivered}",
        schedule.len(),
        healed - faults_started,
        schedule.map(|(name, _)| name).join(", "),
        accepted.len(),
        BATCHES * BATCH,
        database.commits_reset(),
        arrivals.len(),
        distinct.len(),
        arrivals.len() - distinct.len(),
    );
    assert!(
        faulty.system.dispatcher.is_running(),
        "the dispatcher exited under the faults"
    );
    assert_eq!(twice_stored, 0, "a publish stored twice: {stored:?}");
    assert_eq!(twice_terminal, 0, "a delivery finished twice");
    assert_eq!(not_delivered, 0, "every stored delivery delivered");
    assert!(
        heard
            .iter()
            .all(|c| *c == tonic::Code::Unavailable || *c == tonic::Code::Unknown),
        "refusals say retry, or that the outcome is unknown: {codes:?}"
    );
}
