//! What a run costs, read from `/proc`: CPU seconds of a process, of all
//! Postgres processes and of the whole machine, and peak resident memory;
//! and latency percentiles.

use std::collections::HashMap;
use std::time::Duration;

/// Clock ticks per second for `/proc` times (`getconf CLK_TCK`), asked
/// once: a `getconf` run per reading would itself show in what is measured.
fn ticks_per_second() -> f64 {
    static TICKS: std::sync::OnceLock<f64> = std::sync::OnceLock::new();
    *TICKS.get_or_init(|| {
        std::process::Command::new("getconf")
            .arg("CLK_TCK")
            .output()
            .ok()
            .and_then(|o| String::from_utf8(o.stdout).ok())
            .and_then(|s| s.trim().parse().ok())
            .unwrap_or(100.0)
    })
}

/// User + system CPU seconds used so far by `pid`.
pub fn cpu_seconds(pid: u32) -> f64 {
    let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
        return 0.0;
    };
    // Fields after the command name (which may hold spaces) in parentheses.
    let rest = stat.rsplit_once(')').map_or("", |(_, r)| r);
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let ticks: f64 = fields
        .get(11)
        .and_then(|u| u.parse::<f64>().ok())
        .unwrap_or(0.0)
        + fields
            .get(12)
            .and_then(|s| s.parse::<f64>().ok())
            .unwrap_or(0.0);
    ticks / ticks_per_second()
}

/// CPU seconds of every `postgres` process on the machine (the server runs
/// one process per connection), by process id.
pub fn postgres_cpu_seconds() -> HashMap<u32, f64> {
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return HashMap::new();
    };
    entries
        .filter_map(Result::ok)
        .filter_map(|e| e.file_name().to_str().and_then(|n| n.parse::<u32>().ok()))
        .filter(|pid| {
            std::fs::read_to_string(format!("/proc/{pid}/comm"))
                .is_ok_and(|c| c.trim().starts_with("postgres"))
        })
        .map(|pid| {
            (
                pid,
                thread_cpu_seconds(pid).unwrap_or_else(|| cpu_seconds(pid)),
            )
        })
        .collect()
}

/// CPU seconds used so far by the main thread of `pid`, in nanoseconds
/// (`/proc/<pid>/schedstat`), where the kernel keeps them: a Postgres
/// backend is one thread, and a small run's share of it (a few
/// milliseconds) is below `/proc/<pid>/stat`'s clock ticks.
fn thread_cpu_seconds(pid: u32) -> Option<f64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/schedstat")).ok()?;
    let ns: f64 = stat.split_whitespace().next()?.parse().ok()?;
    Some(ns / 1e9)
}

/// What the `postgres` processes used between two readings: a process
/// that exited in between takes its time with it, one that started
/// counts in full.
pub fn postgres_cpu_used(before: &HashMap<u32, f64>, after: &HashMap<u32, f64>) -> f64 {
    after
        .iter()
        .map(|(pid, now)| now - before.get(pid).copied().unwrap_or(0.0))
        .filter(|used| *used > 0.0)
        .sum()
}

/// The whole machine's CPU seconds so far, summed over its cores, from
/// `/proc/stat`: (busy, idle). Idle counts I/O wait; busy counts
/// everything else, interrupts and the time the hypervisor stole included.
pub fn machine_cpu_seconds() -> (f64, f64) {
    let Ok(stat) = std::fs::read_to_string("/proc/stat") else {
        return (0.0, 0.0);
    };
    // cpu  user nice system idle iowait irq softirq steal guest guest_nice
    // (guest time is already counted in user time).
    let ticks: Vec<f64> = stat
        .lines()
        .find(|l| l.starts_with("cpu "))
        .map(|l| {
            l.split_whitespace()
                .skip(1)
                .take(8)
                .filter_map(|t| t.parse().ok())
                .collect()
        })
        .unwrap_or_default();
    let idle = ticks.get(3).copied().unwrap_or(0.0) + ticks.get(4).copied().unwrap_or(0.0);
    let busy = ticks.iter().sum::<f64>() - idle;
    (busy / ticks_per_second(), idle / ticks_per_second())
}

/// How many CPUs `/proc/stat` counts: the cores whose time
/// [`machine_cpu_seconds`] adds up.
pub fn machine_cores() -> usize {
    std::fs::read_to_string("/proc/stat")
        .map(|stat| {
            stat.lines()
                .filter(|l| {
                    l.strip_prefix("cpu")
                        .is_some_and(|rest| rest.starts_with(|c: char| c.is_ascii_digit()))
                })
                .count()
        })
        .unwrap_or(1)
        .max(1)
}

/// Peak resident memory of `pid` so far, in MiB (`VmHWM`).
pub fn peak_rss_mib(pid: u32) -> f64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|status| {
            status
                .lines()
                .find(|l| l.starts_with("VmHWM:"))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|kb| kb.parse::<f64>().ok())
        })
        .map_or(0.0, |kb| kb / 1024.0)
}

/// p50, p90, p99 and max of `samples`.
#[derive(Debug, Clone, Copy, Default)]
pub struct Percentiles {
    pub p50: Duration,
    pub p90: Duration,
    pub p99: Duration,
    pub max: Duration,
}

pub fn percentiles(mut samples: Vec<Duration>) -> Percentiles {
    if samples.is_empty() {
        return Percentiles::default();
    }
    samples.sort_unstable();
    let at =
        |q: f64| samples[((samples.len() as f64 * q).ceil() as usize).clamp(1, samples.len()) - 1];
    Percentiles {
        p50: at(0.50),
        p90: at(0.90),
        p99: at(0.99),
        max: samples[samples.len() - 1],
    }
}

pub fn ms(d: Duration) -> String {
    format!("{:.1}", d.as_secs_f64() * 1000.0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles_pick_ranks() {
        let samples: Vec<Duration> = (1..=100).map(Duration::from_millis).collect();
        let p = percentiles(samples);
        assert_eq!(
            (p.p50, p.p90, p.p99, p.max),
            (
                Duration::from_millis(50),
                Duration::from_millis(90),
                Duration::from_millis(99),
                Duration::from_millis(100)
            )
        );
        assert!(cpu_seconds(std::process::id()) >= 0.0);
        let (busy, idle) = machine_cpu_seconds();
        assert!(busy > 0.0 && idle > 0.0, "{busy} {idle}");
        assert!(machine_cores() >= 1);
        assert!(peak_rss_mib(std::process::id()) > 0.0);
    }
}
