//! The scenarios. Each builds its own system, drives it, and answers a
//! markdown table. Every loop is bounded in count and time; all traffic
//! stays on loopback. Each scenario is a module of its own; what several
//! share (the report, CPU accounting, latencies) lives here.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use callbacks_proto::dispatcher::v1 as dpb;
use http_body_util::Full;
use hyper_util::rt::TokioIo;
use uuid::Uuid;

use crate::measure::{self, Percentiles, ms, percentiles};
use crate::stack::{DispatcherSettings, PeakRss, Sent, Stack, event, prefill};

mod backlog;
mod deliver;
mod https_hosts;
mod ingest;
mod isolation;
mod latency;
mod limit;
mod ordering;
mod publish_loop;
mod retention;

pub use backlog::backlog;
pub use deliver::deliver;
pub use ingest::ingest;
pub use isolation::isolation;
pub use latency::latency;
pub use limit::limit;
pub use ordering::ordering;

pub use https_hosts::https_hosts;
pub use publish_loop::publish_loop;
pub use retention::retention;

/// Multiplies every count and duration: 1.0 is the full run, small values
/// make a smoke test.
#[derive(Debug, Clone, Copy)]
pub struct Scale(pub f64);

impl Scale {
    pub fn count(&self, full: usize) -> usize {
        ((full as f64 * self.0).round() as usize).max(1)
    }

    pub fn duration(&self, full: Duration) -> Duration {
        full.mul_f64(self.0.clamp(0.1, 1.0))
    }
}

/// A scenario's result: a title, a markdown table, and notes.
#[derive(Debug)]
pub struct Report {
    pub title: String,
    pub header: Vec<&'static str>,
    pub rows: Vec<Vec<String>>,
    pub notes: Vec<String>,
}

impl Report {
    fn new(title: &str, header: &[&'static str]) -> Self {
        Self {
            title: title.to_owned(),
            header: header.to_vec(),
            rows: Vec::new(),
            notes: Vec::new(),
        }
    }

    /// The cells of the column headed `name`, row by row.
    pub fn column(&self, name: &str) -> Vec<&str> {
        let Some(at) = self.header.iter().position(|h| *h == name) else {
            return Vec::new();
        };
        self.rows
            .iter()
            .filter_map(|row| row.get(at).map(String::as_str))
            .collect()
    }

    pub fn markdown(&self) -> String {
        let mut out = format!(
            "### {}\n\n{}",
            self.title,
            markdown_table(&self.header, &self.rows)
        );
        for note in &self.notes {
            out.push_str(&format!("\n{note}\n"));
        }
        out
    }
}

/// A markdown table of `rows` under `header`.
fn markdown_table(header: &[&str], rows: &[Vec<String>]) -> String {
    let mut table = format!(
        "| {} |\n|{}\n",
        header.join(" | "),
        "---|".repeat(header.len())
    );
    for row in rows {
        table.push_str(&format!("| {} |\n", row.join(" | ")));
    }
    table
}

/// CPU seconds over a window: of some processes (together), of Postgres,
/// of this (the bench) process, and of the whole machine.
struct Cpu {
    pids: Vec<u32>,
    processes: f64,
    postgres: HashMap<u32, f64>,
    bench: f64,
    machine: (f64, f64),
}

/// Where the machine's time went per unit of work, in CPU seconds summed
/// over the cores (so the parts add up to the cores times the window,
/// divided by the work).
#[derive(Debug, Clone, Copy)]
struct Used {
    processes: f64,
    postgres: f64,
    /// This process: the receiver, and in the ceiling also its client.
    bench: f64,
    /// Busy, but in none of the above: the kernel's network processing
    /// (softirq), the registry, everything else on the machine.
    other: f64,
    idle: f64,
}

impl Used {
    fn total(&self) -> f64 {
        self.processes + self.postgres + self.bench + self.other + self.idle
    }

    /// A row of the machine-time table, in µs per unit.
    fn row(&self, label: &str) -> Vec<String> {
        let us = |s: f64| format!("{:.1}", s * 1e6);
        vec![
            label.to_owned(),
            us(self.processes),
            us(self.postgres),
            us(self.bench),
            us(self.other),
            us(self.idle),
            us(self.total()),
        ]
    }
}

impl Cpu {
    fn start(pids: Vec<u32>) -> Self {
        Self {
            processes: pids.iter().map(|&pid| measure::cpu_seconds(pid)).sum(),
            pids,
            postgres: measure::postgres_cpu_seconds(),
            bench: measure::cpu_seconds(std::process::id()),
            machine: measure::machine_cpu_seconds(),
        }
    }

    /// CPU seconds per unit of `work` since `start`.
    fn used(&self, work: usize) -> Used {
        let per = |used: f64| used / work.max(1) as f64;
        let processes: f64 = self.pids.iter().map(|&pid| measure::cpu_seconds(pid)).sum();
        let (busy, idle) = measure::machine_cpu_seconds();
        let processes = processes - self.processes;
        let postgres = measure::postgres_cpu_used(&self.postgres, &measure::postgres_cpu_seconds());
        let bench = measure::cpu_seconds(std::process::id()) - self.bench;
        Used {
            processes: per(processes),
            postgres: per(postgres),
            bench: per(bench),
            other: per(busy - self.machine.0 - processes - postgres - bench),
            idle: per(idle - self.machine.1),
        }
    }

    /// (processes, postgres) CPU seconds per 1,000 of `work`.
    fn per_thousand(&self, work: usize) -> (String, String) {
        let used = self.used(work);
        (per_thousand(used.processes), per_thousand(used.postgres))
    }
}

/// CPU seconds per unit as the tables print them: per 1,000 units.
fn per_thousand(seconds: f64) -> String {
    format!("{:.3}", seconds * 1000.0)
}

/// Latencies from publish (send time) to arrival, by delivery id; and how
/// many of `sent` were lost, and how many arrivals were duplicates.
fn latencies(sent: &Sent, arrivals: &[(Uuid, Instant)]) -> (Vec<Duration>, usize, usize) {
    let mut seen = HashSet::new();
    let mut samples = Vec::new();
    let mut duplicates = 0;
    // Only what was sent here counts: other traffic (a side load's
    // retries, which carry the same webhook-id each time) arrives too.
    for (id, at) in arrivals {
        let Some(t) = sent.get(id) else { continue };
        if !seen.insert(*id) {
            duplicates += 1;
            continue;
        }
        samples.push(at.saturating_duration_since(*t));
    }
    let lost = sent.keys().filter(|id| !seen.contains(id)).count();
    (samples, lost, duplicates)
}

/// A system whose one dispatcher only stores (workers off): the start of
/// every scenario that fills a backlog.
async fn storing_stack() -> anyhow::Result<Stack> {
    let mut stack = Stack::start().await?;
    stack
        .add_dispatcher(DispatcherSettings {
            workers: false,
            ..Default::default()
        })
        .await?;
    Ok(stack)
}

/// A [`storing_stack`] with 100 partners registered.
async fn publishing_stack() -> anyhow::Result<(Stack, Vec<String>)> {
    let stack = storing_stack().await?;
    let partners = stack.partners(100, "/p").await?;
    Ok((stack, partners))
}

/// Deliveries made before latency is measured: enough history that the
/// statistics, and the plans made from them, are those of a running
/// system rather than of empty tables.
const WARM_UP: usize = 20_000;
