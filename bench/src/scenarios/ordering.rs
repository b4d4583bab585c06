//! Scenario 10, ordering: the delivery rate of ordered lanes, each lane's
//! deliveries one at a time in publish order.

use super::*;

/// Publishes `per_lane` events to each of `lanes` lanes (lane `i` to partner
/// `i % partners`, ordering key `lane-i`), in batches of 100 in lane-major
/// rounds; answers each lane's delivery ids in publish order.
async fn publish_lanes(
    stack: &Stack,
    partners: &[String],
    lanes: usize,
    per_lane: usize,
) -> anyhow::Result<Vec<Vec<Uuid>>> {
    let mut client = stack.publisher();
    let mut order = vec![Vec::with_capacity(per_lane); lanes];
    let all: Vec<(usize, usize)> = (0..per_lane)
        .flat_map(|n| (0..lanes).map(move |lane| (lane, n)))
        .collect();
    for chunk in all.chunks(100) {
        let events = chunk
            .iter()
            .map(|(lane, n)| {
                let mut event = event(&partners[lane % partners.len()], *n);
                event.ordering_key = Some(format!("lane-{lane}"));
                event
            })
            .collect();
        let published = client
            .publish_batch(dpb::PublishBatchRequest { events })
            .await?
            .into_inner();
        for ((lane, _), result) in chunk.iter().zip(published.results) {
            let id = result
                .delivery_id
                .ok_or_else(|| anyhow::anyhow!("no delivery"))?;
            order[*lane].push(Uuid::try_parse(&id)?);
        }
    }
    Ok(order)
}

/// How many deliveries of `order`'s lanes first arrived out of their
/// lane's publish order.
fn out_of_order(order: &[Vec<Uuid>], arrivals: &[(Uuid, Instant)]) -> usize {
    let mut place = HashMap::new();
    for (lane, ids) in order.iter().enumerate() {
        for (n, id) in ids.iter().enumerate() {
            place.insert(*id, (lane, n));
        }
    }
    let mut next = vec![0; order.len()];
    let mut seen = HashSet::new();
    let mut wrong = 0;
    for (id, _) in arrivals {
        let Some((lane, n)) = place.get(id).copied() else {
            continue;
        };
        if !seen.insert(*id) {
            continue;
        }
        if n != next[lane] {
            wrong += 1;
        }
        next[lane] = n + 1;
    }
    wrong
}

/// 10. Ordered lanes: 1, 10 and 100 of them, each a queue of its own.
pub async fn ordering(scale: Scale) -> anyhow::Result<Report> {
    let mut stack = Stack::start().await?;
    stack.add_dispatcher(DispatcherSettings::default()).await?;
    let partners = stack.partners(100, "/p").await?;
    let mut report = Report::new(
        "10. ordering: lanes delivered one at a time, in publish order",
        &[
            "lanes",
            "events",
            "seconds",
            "deliveries/s",
            "per lane/s",
            "out of order",
            "lost",
        ],
    );
    for lanes in [1, 10, 100] {
        let per_lane = scale.count(2_000 / lanes.min(20)).max(2);
        stack.receiver.take();
        let started = Instant::now();
        let order = publish_lanes(&stack, &partners, lanes, per_lane).await?;
        let expected: HashSet<Uuid> = order.iter().flatten().copied().collect();
        stack
            .receiver
            .wait_for_ids(&expected, Duration::from_secs(300))
            .await;
        let arrivals = stack.receiver.take();
        let seconds = arrivals
            .iter()
            .map(|(_, at)| at.duration_since(started))
            .max()
            .unwrap_or_default()
            .as_secs_f64();
        let arrived: HashSet<Uuid> = arrivals.iter().map(|(id, _)| *id).collect();
        let rate = expected.len() as f64 / seconds.max(f64::EPSILON);
        report.rows.push(vec![
            lanes.to_string(),
            expected.len().to_string(),
            format!("{seconds:.1}"),
            format!("{rate:.0}"),
            format!("{:.0}", rate / lanes as f64),
            out_of_order(&order, &arrivals).to_string(),
            expected.difference(&arrived).count().to_string(),
        ]);
    }
    report.notes.push(
        "Each phase publishes its lanes' events in batches of 100 (lane-major rounds) to one dispatcher and waits for them all; lane i goes to partner i mod 100, whose endpoint answers 204 at once. Seconds run from the first publish to the last receipt. A lane's next delivery is made due once the one ahead of it is written delivered: a lane's rate is one round trip (attempt, outcome, promotion, claim) per delivery.".into(),
    );
    report.notes.push(stack.peak_rss().note());
    Ok(report)
}
