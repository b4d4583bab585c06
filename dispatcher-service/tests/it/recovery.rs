//! Issue 23, item 3: a partner's failed deliveries of a time range, sent
//! again in bulk. A dry run counts them and changes nothing; the job
//! resends exactly them, at its pace, and its progress can be read; an
//! empty or too long range is refused.

use std::time::Duration;

use callbacks_proto::dispatcher::v1 as dpb;
use chrono::Utc;
use test_support::{Reply, eventually};
use tonic::Code;

use crate::{World, delivery_with_status, publish_one};

fn at(moment: chrono::DateTime<Utc>) -> Option<prost_types::Timestamp> {
    Some(prost_types::Timestamp {
        seconds: moment.timestamp(),
        nanos: 0,
    })
}

fn recover(
    partner: &str,
    since: chrono::DateTime<Utc>,
    until: chrono::DateTime<Utc>,
    dry_run: bool,
) -> dpb::RecoverDeliveriesRequest {
    dpb::RecoverDeliveriesRequest {
        partner_id: partner.into(),
        notification_type: Some(crate::TYPE),
        since: at(since),
        until: at(until),
        include_cancelled: false,
        dry_run,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failed_deliveries_are_recovered_in_bulk_at_a_pace() {
    let mut world = World::start().await;
    world.receiver.set_default("/flaky", Reply::status(500));
    let url = world.receiver.url("/flaky");
    let (partner, _) = world.partner_with_callback(&url, None).await;
    let mut config = world.dispatcher_config();
    config.recovery_rate = 2;
    // One attempt each, so that they fail before the endpoint's circuit
    // opens (which would hold them instead).
    config.retry_schedule = String::new();
    let dispatcher = world.start_dispatcher(config).await;
    let mut client = dispatcher.client.clone();

    let before = Utc::now() - chrono::Duration::seconds(5);
    let mut failed = Vec::new();
    for n in 0..5 {
        failed.push(publish_one(&client, &partner, &format!(r#"{{"n":{n}}}"#)).await);
    }
    for id in &failed {
        delivery_with_status(
            &client,
            id,
            dpb::DeliveryStatus::Failed,
            Duration::from_secs(15),
        )
        .await;
    }
    let after = Utc::now() + chrono::Duration::seconds(5);
    world.receiver.set_default("/flaky", Reply::status(200));

    let plan = client
        .recover_deliveries(recover(&partner, before, after, true))
        .await
        .unwrap()
        .into_inner();
    assert_eq!((plan.total, plan.state.as_str()), (5, "planned"));
    assert!(plan.recovery_id.is_none() && plan.earliest.is_some() && plan.latest.is_some());
    let unchanged = delivery_with_status(
        &client,
        &failed[0],
        dpb::DeliveryStatus::Failed,
        Duration::from_secs(1),
    )
    .await;
    assert_eq!(unchanged.attempt_count, 1, "a dry run sends nothing");

    let job = client
        .recover_deliveries(recover(&partner, before, after, false))
        .await
        .unwrap()
        .into_inner();
    assert_eq!((job.total, job.state.as_str()), (5, "running"));
    let id = job.recovery_id.unwrap();
    // Two a second: the job is seen part way.
    let read = |client: &mut dpb::dispatcher_service_client::DispatcherServiceClient<_>| {
        let mut client = client.clone();
        let id = id.clone();
        async move {
            client
                .get_recovery(dpb::GetRecoveryRequest {
                    recovery_id: id,
                    partner_id: None,
                })
                .await
                .unwrap()
                .into_inner()
        }
    };
    let partway = eventually(
        "the recovery to be part way",
        Duration::from_secs(10),
        || {
            let reading = read(&mut client);
            async move { Some(reading.await).filter(|r| r.resent > 0 && r.resent < 5) }
        },
    )
    .await
    .unwrap();
    assert_eq!(partway.state, "running");
    let done = eventually("the recovery to finish", Duration::from_secs(15), || {
        let reading = read(&mut client);
        async move { Some(reading.await).filter(|r| r.state == "done") }
    })
    .await
    .unwrap();
    assert_eq!((done.total, done.resent), (5, 5));
    assert!(done.finished_at.is_some());
    for id in &failed {
        let delivered = delivery_with_status(
            &client,
            id,
            dpb::DeliveryStatus::Delivered,
            Duration::from_secs(10),
        )
        .await;
        assert_eq!(
            delivered.attempt_count, 2,
            "one failed, then the recovered one"
        );
    }
    let oks = world.receiver.requests_to("/flaky").len();
    assert_eq!(oks, 5 + 5, "each sent once more, none twice");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_and_empty_recoveries_are_answered_clearly() {
    let mut world = World::start().await;
    let partner = world.partner().await;
    let dispatcher = world.start_dispatcher(world.dispatcher_config()).await;
    let mut client = dispatcher.client.clone();
    let now = Utc::now();

    for (since, until) in [(now, now), (now, now - chrono::Duration::hours(1))] {
        let empty = client
            .recover_deliveries(recover(&partner, since, until, true))
            .await;
        let status = empty.unwrap_err();
        assert_eq!(status.code(), Code::InvalidArgument);
        assert!(
            status.message().contains("the range is empty"),
            "{status:?}"
        );
    }
    let long = recover(&partner, now - chrono::Duration::days(91), now, false);
    let status = client.recover_deliveries(long).await.unwrap_err();
    assert!(status.message().contains("at most 90 days"), "{status:?}");
    let mut unnamed = recover("not-a-guid", now - chrono::Duration::hours(1), now, true);
    unnamed.since = None;
    let status = client.recover_deliveries(unnamed).await.unwrap_err();
    assert_eq!(status.code(), Code::InvalidArgument);
    assert!(
        status.message().contains("partner_id") && status.message().contains("since"),
        "{status:?}"
    );

    // Nothing failed in the range: a job that is done at once.
    let nothing = client
        .recover_deliveries(recover(
            &partner,
            now - chrono::Duration::hours(1),
            now,
            false,
        ))
        .await
        .unwrap()
        .into_inner();
    assert_eq!((nothing.total, nothing.state.as_str()), (0, "done"));

    let unknown = client
        .get_recovery(dpb::GetRecoveryRequest {
            recovery_id: uuid::Uuid::new_v4().to_string(),
            partner_id: Some(partner.clone()),
        })
        .await
        .unwrap_err();
    assert_eq!(unknown.code(), Code::NotFound);
    let others = client
        .get_recovery(dpb::GetRecoveryRequest {
            recovery_id: nothing.recovery_id.unwrap(),
            partner_id: Some(uuid::Uuid::new_v4().to_string()),
        })
        .await
        .unwrap_err();
    assert_eq!(
        others.code(),
        Code::NotFound,
        "another partner's recovery is not found"
    );
}

/// Issue 23, item 3: the replica running a recovery is killed with SIGKILL
/// part way; another finishes it. Each delivery is made due again exactly
/// once by the job (a chunk leaves the job's list in the transaction that
/// resends it), and every one is delivered.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_recovery_whose_replica_is_killed_part_way_is_finished_by_another() {
    const EVENTS: usize = 40;
    let mut world = World::start().await;
    world
        .receiver
        .set_default("/flaky", Reply::ok().after(Duration::from_millis(50)));
    let url = world.receiver.url("/flaky");
    let (partner, _) = world.partner_with_callback(&url, None).await;
    // Stores only; the deliveries are marked failed below, as if their
    // retries had run out (attempting them here would open the endpoint's
    // circuit and hold them instead).
    let mut config = world.dispatcher_config();
    config.delivery_workers = false;
    config.recovery_rate = 1;
    let first = world.start_dispatcher(config).await;
    let client = first.client.clone();
    let before = Utc::now() - chrono::Duration::seconds(5);
    for n in 0..EVENTS {
        publish_one(&client, &partner, &format!(r#"{{"n":{n}}}"#)).await;
    }
    let db = world.dispatch_db.client().await.unwrap();
    let marked = db
        .execute(
            "UPDATE deliveries SET status = 'failed', completed_at = now() WHERE status = 'pending'",
            &[],
        )
        .await
        .unwrap();
    assert_eq!(marked, EVENTS as u64);
    let after = Utc::now() + chrono::Duration::seconds(5);
    let job = client
        .clone()
        .recover_deliveries(recover(&partner, before, after, false))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(job.total, EVENTS as i64);
    // From here on the job is the child processes' to run.
    first.stop().await;

    let spawn = |world: &World| {
        crate::processes::dispatcher_command(world)
            .env("DISPATCHER_RECOVERY_RATE", "10")
            .spawn()
            .unwrap()
    };
    let mut killed = spawn(&world);
    world
        .receiver
        .wait_for_requests(8, Duration::from_secs(20))
        .await
        .unwrap();
    killed.start_kill().unwrap(); // SIGKILL
    killed.wait().await.unwrap();
    let resent_at_kill = world.receiver.requests_to("/flaky").len();
    assert!(
        resent_at_kill < EVENTS,
        "the kill came part way ({resent_at_kill})"
    );
    let _finisher = spawn(&world);

    let id = job.recovery_id.unwrap();
    let (total, resent): (i64, i64) = eventually("the job done", Duration::from_secs(30), || {
        let (db, id) = (&db, &id);
        async move {
            let row = db
                .query_one(
                    "SELECT total, resent, state FROM recoveries WHERE id = $1::text::uuid",
                    &[id],
                )
                .await
                .ok()?;
            (row.get::<_, String>(2) == "done").then(|| (row.get(0), row.get(1)))
        }
    })
    .await
    .unwrap();
    assert_eq!(
        (total, resent),
        (EVENTS as i64, EVENTS as i64),
        "each resent once"
    );
    crate::all_delivered(&db, Duration::from_secs(30)).await;
    let items: i64 = db
        .query_one("SELECT count(*) FROM recovery_items", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(items, 0, "nothing left on the job's list");
}
