//! Issue 23, item 5: ordered delivery. Deliveries published with the same
//! ordering key to the same registration reach it one at a time in publish
//! order, with an endpoint that fails at random, two replicas, and one of
//! them killed with SIGKILL mid-way; bad keys are refused by name.

use std::collections::HashMap;
use std::time::Duration;

use callbacks_proto::dispatcher::v1 as dpb;
use test_support::Reply;
use tonic::Code;

use crate::processes::dispatcher_command;
use crate::{World, publish};

const LANES: usize = 4;
const PER_LANE: usize = 30;

fn ordered(partner: &str, lane: usize, n: usize) -> dpb::PublishRequest {
    let mut request = publish(partner, &format!(r#"{{"lane":{lane},"n":{n}}}"#));
    request.ordering_key = Some(format!("order-{lane}"));
    request
}

/// Replies that fail about two times in five, from a fixed seed.
fn flaky_replies(count: usize) -> Vec<Reply> {
    let mut state: u64 = 0x2545_f491_4f6c_dd1d;
    (0..count)
        .map(|_| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            if state % 5 < 2 {
                Reply::status(500)
            } else {
                Reply::ok()
            }
        })
        .collect()
}

/// (lane, n) of each request to the receiver, in arrival order.
fn arrivals(world: &World) -> Vec<(usize, usize)> {
    world
        .receiver
        .requests()
        .iter()
        .map(|r| {
            let body: serde_json::Value = serde_json::from_slice(&r.body).unwrap();
            (
                body["lane"].as_u64().unwrap() as usize,
                body["n"].as_u64().unwrap() as usize,
            )
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_lane_arrives_in_publish_order_through_failures_replicas_and_a_kill() {
    let mut world = World::start().await;
    world.receiver.respond("/hooks", flaky_replies(2_000));
    let (partner, _) = world
        .partner_with_callback(&world.receiver.url("/hooks"), None)
        .await;
    let waits = vec!["100ms"; 20].join(",");
    let mut config = world.dispatcher_config();
    config.retry_schedule = waits.clone();
    let replica = world.start_dispatcher(config).await;
    let spawn = |world: &World| {
        dispatcher_command(world)
            .env("DISPATCHER_RETRY_SCHEDULE", &waits)
            .spawn()
            .unwrap()
    };
    let mut killed = spawn(&world);

    // Publish order within each lane: single publishes, lanes interleaved,
    // then the rest as batches that hold every lane's next events.
    let mut client = replica.client.clone();
    for n in 0..PER_LANE / 2 {
        for lane in 0..LANES {
            client.publish(ordered(&partner, lane, n)).await.unwrap();
        }
    }
    for chunk in (PER_LANE / 2..PER_LANE).collect::<Vec<_>>().chunks(5) {
        let events = chunk
            .iter()
            .flat_map(|n| (0..LANES).map(|lane| ordered(&partner, lane, *n)))
            .collect();
        client
            .publish_batch(dpb::PublishBatchRequest { events })
            .await
            .unwrap();
    }
    world
        .receiver
        .wait_for_requests(30, Duration::from_secs(20))
        .await
        .unwrap();
    killed.start_kill().unwrap(); // SIGKILL
    killed.wait().await.unwrap();
    let _restarted = spawn(&world);

    let db = world.dispatch_db.client().await.unwrap();
    crate::all_delivered(&db, Duration::from_secs(90)).await;

    // Per lane, arrivals never go back: a failed or repeated attempt is the
    // same event again, and the next comes only after it was delivered.
    let arrived = arrivals(&world);
    let mut last: HashMap<usize, usize> = HashMap::new();
    for (lane, n) in &arrived {
        let before = last.insert(*lane, *n);
        assert!(
            before.is_none_or(|b| b == *n || b + 1 == *n),
            "lane {lane}: event {n} arrived after event {before:?}"
        );
    }
    for lane in 0..LANES {
        assert_eq!(
            last.get(&lane),
            Some(&(PER_LANE - 1)),
            "lane {lane} complete"
        );
    }
    let retried = arrived.len() - LANES * PER_LANE;
    eprintln!(
        "ordering: {} requests for {} events",
        arrived.len(),
        LANES * PER_LANE
    );
    assert!(
        retried > 20,
        "the endpoint failed often enough to test anything: {retried}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_ordering_keys_are_refused_by_name() {
    let mut world = World::start().await;
    let (partner, _) = world
        .partner_with_callback(&world.receiver.url("/hooks"), None)
        .await;
    let dispatcher = world.start_dispatcher(world.dispatcher_config()).await;
    for key in [String::new(), "a".repeat(201), "line\nbreak".to_owned()] {
        let mut request = publish(&partner, "{}");
        request.ordering_key = Some(key.clone());
        let refused = dispatcher
            .client
            .clone()
            .publish(request)
            .await
            .unwrap_err();
        assert_eq!(refused.code(), Code::InvalidArgument, "{key:?}");
        assert!(refused.message().contains("ordering_key"), "{refused:?}");
    }
    let mut batch = vec![ordered(&partner, 0, 0), ordered(&partner, 0, 1)];
    batch[1].ordering_key = Some(String::new());
    let refused = dispatcher
        .client
        .clone()
        .publish_batch(dpb::PublishBatchRequest { events: batch })
        .await
        .unwrap_err();
    assert_eq!(refused.code(), Code::InvalidArgument);
    assert!(
        refused.message().contains("[1].ordering_key"),
        "{refused:?}"
    );
}

/// A lane whose head is cancelled by an erasure (no outcome of its own
/// passes the turn) moves on: the housekeeping finds the lane stalled and
/// gives the next delivery its turn, and only that one.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lane_whose_head_is_erased_moves_on() {
    let mut world = World::start().await;
    world.receiver.set_default("/down", Reply::status(500));
    let (partner, _) = world
        .partner_with_callback(&world.receiver.url("/down"), None)
        .await;
    let mut config = world.dispatcher_config();
    config.retry_schedule = "1h".into();
    let dispatcher = world.start_dispatcher(config).await;
    let mut client = dispatcher.client.clone();
    let head = client
        .publish(ordered(&partner, 0, 0))
        .await
        .unwrap()
        .into_inner();
    for n in 1..3 {
        client.publish(ordered(&partner, 0, n)).await.unwrap();
    }
    world
        .receiver
        .wait_for_requests_to("/down", 1, std::time::Duration::from_secs(10))
        .await
        .unwrap();
    client
        .erase_event(dpb::EraseEventRequest {
            event_id: head.event_id,
            partner_id: None,
        })
        .await
        .unwrap();
    world
        .receiver
        .wait_for_requests_to("/down", 2, Duration::from_secs(15))
        .await
        .unwrap();
    assert_eq!(
        arrivals(&world),
        [(0, 0), (0, 1)],
        "the next, and only the next"
    );
}
