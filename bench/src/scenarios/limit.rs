//! Scenario 6, limit: plain HTTP to the same receiver, no database.

use super::*;

/// Scenario 6: the machine's ceiling, the same receiver hammered by a
/// plain keep-alive hyper client in the bench process, no database: once
/// as scenario 2 runs it (on the bench's runtime), once on a thread of its
/// own (closer to the issue's reference, wrk against a one-thread server;
/// the client here is still hyper, in-process).
pub async fn limit(scale: Scale) -> anyhow::Result<Report> {
    let window = scale.duration(Duration::from_secs(5));
    let mut report = Report::new(
        "6. limit: plain HTTP to the same receiver, no database",
        &[
            "receiver",
            "connections",
            "requests",
            "requests/s",
            "p50 ms",
            "p99 ms",
        ],
    );
    let workers = tokio::runtime::Handle::current().metrics().num_workers();
    for (label, receiver) in [
        (
            format!("as in scenario 2 (on the bench runtime's {workers} threads)"),
            crate::receiver::Receiver::start().await?,
        ),
        (
            "on its own thread (client in-process)".to_owned(),
            crate::receiver::Receiver::start_on_one_thread()?,
        ),
    ] {
        let (took, elapsed) = hammer(receiver.addr(), window).await?;
        let total = took.len();
        let p = percentiles(took);
        report.rows.push(vec![
            label,
            "64".into(),
            total.to_string(),
            format!("{:.0}", total as f64 / elapsed.as_secs_f64()),
            ms(p.p50),
            ms(p.p99),
        ]);
    }
    Ok(report)
}

/// POSTs to `addr` over 64 keep-alive connections for `window`; answers
/// how long each request took, and the time taken in all.
pub(super) async fn hammer(
    addr: std::net::SocketAddr,
    window: Duration,
) -> anyhow::Result<(Vec<Duration>, Duration)> {
    let started = Instant::now();
    let mut tasks = Vec::new();
    for _ in 0..64 {
        tasks.push(tokio::spawn(async move {
            let stream = tokio::net::TcpStream::connect(addr).await?;
            stream.set_nodelay(true)?;
            let (mut sender, connection) =
                hyper::client::conn::http1::handshake(TokioIo::new(stream)).await?;
            tokio::spawn(connection);
            let mut took = Vec::with_capacity(1 << 16);
            let body =
                Bytes::from_static(br#"{"processUniqueId":"limit","amount":1,"status":"settled"}"#);
            while started.elapsed() < window {
                let request = hyper::Request::post("/limit")
                    .header("host", "127.0.0.1")
                    .header("content-type", "application/json")
                    .header("webhook-id", Uuid::new_v4().to_string())
                    .body(Full::new(body.clone()))?;
                let sent = Instant::now();
                sender.ready().await?;
                let response = sender.send_request(request).await?;
                anyhow::ensure!(response.status() == 204, "unexpected {}", response.status());
                took.push(sent.elapsed());
            }
            Ok::<_, anyhow::Error>(took)
        }));
    }
    let mut took = Vec::new();
    for task in tasks {
        took.extend(task.await??);
    }
    Ok((took, started.elapsed()))
}
