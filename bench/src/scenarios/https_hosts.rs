//! Scenario 8: deliveries over TLS to many host names, beside plain HTTP
//! to one, in the same run on the same stack.
//!
//! The HTTPS receiver presents a certificate for `*.bench.callbacks.test`
//! from a CA the bench makes (`test_support::tls::TestCa`), which the
//! delivering dispatcher trusts (`DISPATCHER_EXTRA_CA_FILES`). Host names
//! resolve to loopback through a DNS server in the bench process
//! (`test_support::dns::DnsServer`), the dispatcher's only resolver
//! (`DISPATCHER_DNS_SERVERS`): nothing on the machine (`/etc/hosts`
//! included) is changed. Both kinds of phase resolve through it.

use std::net::{IpAddr, Ipv4Addr};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use test_support::dns::DnsServer;
use test_support::tls::TestCa;

use super::{Cpu, Report, Scale, Used, latencies, markdown_table, per_thousand};
use crate::measure;
use crate::receiver::{ConnectionCount, Receiver};
use crate::stack::{DispatcherSettings, PeakRss, Stack, prefill};

/// Registrations of each kind.
pub(super) const REGISTRATIONS: usize = 1_000;
/// Host names the HTTPS registrations are spread over.
pub(super) const HOSTS: usize = 100;
/// The project's target: HTTPS deliveries at this share of plain HTTP's.
const TARGET_SHARE: f64 = 0.60;
/// The domain every host name of the scenario is in (RFC 6761's `.test`,
/// which no public resolver answers).
const DOMAIN: &str = "bench.callbacks.test";
/// The one host name of the plain-HTTP registrations.
fn plain_host() -> String {
    format!("plain.{DOMAIN}")
}
/// The `k`th host name of the HTTPS registrations.
fn tls_host(k: usize) -> String {
    format!("h{k:03}.{DOMAIN}")
}

/// How long one phase's backlog may take to arrive.
const PHASE_LIMIT: Duration = Duration::from_secs(600);

/// What a phase delivers to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Plain,
    Https,
}

/// The phases, in order: each kind twice, the second pair in reverse, so
/// that neither kind gains from running later (more history in the
/// tables, the VM's speed drifting over the minutes).
const PHASES: [Kind; 4] = [Kind::Plain, Kind::Https, Kind::Https, Kind::Plain];

/// One phase's outcome.
#[derive(Debug)]
struct Phase {
    kind: Kind,
    deliveries: usize,
    elapsed: Duration,
    requests: usize,
    connections: ConnectionCount,
    lost: usize,
    duplicated: usize,
    used: Used,
}

impl Phase {
    fn rate(&self) -> f64 {
        self.deliveries as f64 / self.elapsed.as_secs_f64().max(1e-9)
    }
}

/// The CA's certificate, in a file for the dispatcher to read; removed
/// when dropped.
struct CaFile(PathBuf);

impl CaFile {
    fn write(pem: &str) -> anyhow::Result<Self> {
        let path = std::env::temp_dir().join(format!("bench-ca-{}.pem", std::process::id()));
        std::fs::write(&path, pem)?;
        Ok(Self(path))
    }
}

impl Drop for CaFile {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

/// The system: a publishing dispatcher (workers off) on the stack, plain
/// and HTTPS registrations, and what a delivering dispatcher is started
/// with.
struct World {
    stack: Stack,
    tls: Arc<Receiver>,
    plain_partners: Vec<String>,
    tls_partners: Vec<String>,
    delivering: DispatcherSettings,
    /// The services' peak RSS, read before each delivering dispatcher
    /// stops (a stopped one has none to read).
    peak_rss: PeakRss,
    _dns: DnsServer,
    _ca_file: CaFile,
}

impl World {
    async fn start() -> anyhow::Result<Self> {
        let dns = DnsServer::start().await?;
        let loopback = [IpAddr::V4(Ipv4Addr::LOCALHOST)];
        dns.set(&plain_host(), &loopback);
        for k in 0..HOSTS {
            dns.set(&tls_host(k), &loopback);
        }
        let ca = TestCa::new()?;
        let wildcard = format!("*.{DOMAIN}");
        // HTTP/1.1 only, as the plain receiver speaks: the phases differ
        // in TLS and in host names, not in the HTTP version.
        let tls = Receiver::start_tls(ca.server_config_for(&[&wildcard], &[b"http/1.1"])?).await?;
        let ca_file = CaFile::write(ca.pem())?;
        let stack = super::storing_stack().await?;
        let plain = stack.receiver.clone();
        let plain_partners = stack
            .partners_at(REGISTRATIONS, move |i| {
                plain.url_at(&plain_host(), &format!("/p/{i}"))
            })
            .await?;
        let to = tls.clone();
        let tls_partners = stack
            .partners_at(REGISTRATIONS, move |i| {
                to.url_at(&tls_host(i % HOSTS), &format!("/p/{i}"))
            })
            .await?;
        let delivering = DispatcherSettings {
            extra_env: vec![
                ("DISPATCHER_DNS_SERVERS".into(), dns.addr().to_string()),
                (
                    "DISPATCHER_EXTRA_CA_FILES".into(),
                    ca_file.0.display().to_string(),
                ),
            ],
            ..Default::default()
        };
        Ok(Self {
            stack,
            tls,
            plain_partners,
            tls_partners,
            delivering,
            peak_rss: PeakRss::default(),
            _dns: dns,
            _ca_file: ca_file,
        })
    }

    /// A backlog of `n` events to `kind`'s registrations, filled while no
    /// dispatcher delivers, then delivered by a fresh dispatcher (cold
    /// connection pool: every connection it uses, it opens), stopped at
    /// the end.
    async fn phase(&mut self, kind: Kind, n: usize) -> anyhow::Result<Phase> {
        let (receiver, partners) = match kind {
            Kind::Plain => (self.stack.receiver.clone(), &self.plain_partners),
            Kind::Https => (self.tls.clone(), &self.tls_partners),
        };
        receiver.take();
        let (published, _) = prefill(&self.stack, partners, n, 100, 8).await?;
        self.stack.checkpoint().await?;
        receiver.take_connections();
        let worker = self.stack.add_dispatcher(self.delivering.clone()).await?;
        let cpu = Cpu::start(vec![self.stack.dispatcher_pid(worker)]);
        let started = Instant::now();
        let complete = receiver.wait_for(n, PHASE_LIMIT).await;
        let elapsed = started.elapsed();
        let used = cpu.used(n);
        let connections = receiver.take_connections();
        let arrivals = receiver.take();
        let (_, lost, duplicated) = latencies(&published, &arrivals);
        self.peak_rss = self.peak_rss.max(self.stack.peak_rss());
        self.stack.dispatchers[worker].stop().await?;
        anyhow::ensure!(
            complete,
            "{lost} of {n} deliveries ({kind:?}) did not arrive within {PHASE_LIMIT:?}"
        );
        Ok(Phase {
            kind,
            deliveries: n,
            elapsed,
            requests: arrivals.len(),
            connections,
            lost,
            duplicated,
            used,
        })
    }
}

/// Full-scale deliveries per phase.
const DELIVERIES: usize = 100_000;

pub async fn https_hosts(scale: Scale) -> anyhow::Result<Report> {
    let mut world = World::start().await?;
    let n = scale.count(DELIVERIES);
    let mut phases = Vec::new();
    for kind in PHASES {
        phases.push(world.phase(kind, n).await?);
    }
    let mean = |kind: Kind| {
        let rates: Vec<f64> = phases
            .iter()
            .filter(|p| p.kind == kind)
            .map(Phase::rate)
            .collect();
        rates.iter().sum::<f64>() / rates.len().max(1) as f64
    };
    let (plain, https) = (mean(Kind::Plain), mean(Kind::Https));
    let mut report = Report::new(
        "8. https-hosts: HTTPS to 1,000 registrations on 100 host names, beside plain HTTP to 1,000 on one",
        &[
            "phase",
            "hosts",
            "deliveries",
            "seconds",
            "deliveries/s",
            "% of plain HTTP",
            "new connections",
            "TLS handshakes (resumed)",
            "handshakes/s",
            "connections reused",
            "lost",
            "duplicated",
            "dispatcher CPU s/1k",
            "Postgres CPU s/1k",
            "receiver CPU s/1k",
        ],
    );
    report.rows = phases.iter().map(|p| row(p, plain)).collect();
    report.notes.extend(notes(&phases, plain, https, n));
    report.notes.push(world.peak_rss.note());
    Ok(report)
}

/// A phase's row; its rate also as a share of `plain`, plain HTTP's mean.
fn row(phase: &Phase, plain: f64) -> Vec<String> {
    let c = &phase.connections;
    let seconds = phase.elapsed.as_secs_f64().max(1e-9);
    let (label, hosts) = match phase.kind {
        Kind::Plain => ("plain HTTP", 1),
        Kind::Https => ("HTTPS", HOSTS),
    };
    vec![
        label.into(),
        hosts.to_string(),
        phase.deliveries.to_string(),
        format!("{seconds:.1}"),
        format!("{:.0}", phase.rate()),
        format!("{:.0}", 100.0 * phase.rate() / plain.max(1e-9)),
        c.accepted.to_string(),
        format!("{} ({})", c.handshakes(), c.resumed_handshakes),
        format!("{:.0}", c.handshakes() as f64 / seconds),
        phase.requests.saturating_sub(c.accepted).to_string(),
        phase.lost.to_string(),
        phase.duplicated.to_string(),
        per_thousand(phase.used.processes),
        per_thousand(phase.used.postgres),
        per_thousand(phase.used.bench),
    ]
}

/// What the table's notes say: how the phases ran, the share against the
/// target, and where the machine's time went in each phase.
fn notes(phases: &[Phase], plain: f64, https: f64, n: usize) -> Vec<String> {
    let share = https / plain.max(1e-9);
    let verdict = if share >= TARGET_SHARE {
        "met"
    } else {
        "missed"
    };
    let handshakes: usize = phases.iter().map(|p| p.connections.handshakes()).sum();
    let tls_deliveries: usize = phases
        .iter()
        .filter(|p| p.kind == Kind::Https)
        .map(|p| p.deliveries)
        .sum();
    let failed: usize = phases.iter().map(|p| p.connections.failed_handshakes).sum();
    let header = [
        "µs of machine time per delivery",
        "dispatcher",
        "Postgres",
        "bench process (receiver, DNS)",
        "other busy (kernel, registry)",
        "idle",
        "total",
    ];
    let rows: Vec<Vec<String>> = phases
        .iter()
        .enumerate()
        .map(|(i, p)| p.used.row(&format!("{} ({:?})", i + 1, p.kind)))
        .collect();
    vec![
        format!(
            "Each phase fills a backlog of {n} events ({} per registration) with PublishBatch while no dispatcher delivers, then a fresh dispatcher delivers it (its connection pool starts empty) and is stopped. Phases run plain, HTTPS, HTTPS, plain. Seconds run from the delivering dispatcher's start (it accepts calls) to the last receipt. New connections: TCP connections the receiver accepted; connections reused: requests less new connections. TLS: 1.3 as rustls negotiates it, an ECDSA P-256 certificate for `*.{DOMAIN}`, HTTP/1.1 (ALPN offers nothing else).",
            n.div_ceil(REGISTRATIONS)
        ),
        format!(
            "HTTPS delivered at {:.0} % of plain HTTP's rate (means of two phases each: {https:.0} against {plain:.0} deliveries/s); the target is at least {:.0} %: {verdict}. {:.4} TLS handshakes per HTTPS delivery; {failed} handshakes failed.",
            100.0 * share,
            100.0 * TARGET_SHARE,
            handshakes as f64 / tls_deliveries.max(1) as f64,
        ),
        format!(
            "Where the machine's time went ({} cores; each row adds up to the cores' time over the phase divided by its deliveries):\n\n{}",
            measure::machine_cores(),
            markdown_table(&header, &rows)
        ),
    ]
}
