//! `bench [all|ingest|deliver|latency|isolation|backlog|limit|publish-loop|https-hosts|retention|ordering]… [--scale F]`

use clap::Parser;

use bench::scenarios::{self, Scale};

#[derive(Debug, Parser)]
#[command(about = "Run Partner Callbacks benchmarks; each scenario prints a markdown table.")]
struct Cli {
    /// Scenarios to run, in order; `all` for every one.
    #[arg(default_value = "all")]
    scenarios: Vec<String>,
    /// Multiplies counts and durations (1.0 = the documented run).
    #[arg(long, default_value_t = 1.0)]
    scale: f64,
}

fn machine() -> String {
    let cores = std::thread::available_parallelism().map_or(0, usize::from);
    let memory = std::fs::read_to_string("/proc/meminfo")
        .ok()
        .and_then(|m| {
            m.lines()
                .next()
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|kb| kb.parse::<f64>().ok())
        })
        .map_or(0.0, |kb| kb / 1024.0 / 1024.0);
    let commit = std::process::Command::new("git")
        .args(["rev-parse", "--short", "HEAD"])
        .output()
        .ok()
        .and_then(|o| String::from_utf8(o.stdout).ok())
        .unwrap_or_default();
    format!(
        "{} cores, {memory:.0} GiB; commit {}; {}",
        cores,
        commit.trim(),
        std::process::Command::new("date")
            .arg("-u")
            .output()
            .ok()
            .and_then(|o| String::from_utf8(o.stdout).ok())
            .unwrap_or_default()
            .trim()
    )
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    let scale = Scale(cli.scale);
    let all = [
        "ingest",
        "deliver",
        "latency",
        "isolation",
        "backlog",
        "limit",
        "publish-loop",
        "https-hosts",
        "retention",
        "ordering",
    ];
    let chosen: Vec<&str> = if cli.scenarios.iter().any(|s| s == "all") {
        all.to_vec()
    } else {
        cli.scenarios.iter().map(String::as_str).collect()
    };
    println!("## Benchmarks ({})\n", machine());
    for scenario in chosen {
        let report = match scenario {
            "ingest" => scenarios::ingest(scale).await?,
            "deliver" => scenarios::deliver(scale).await?,
            "latency" => scenarios::latency(scale).await?,
            "isolation" => scenarios::isolation(scale).await?,
            "backlog" => scenarios::backlog(scale).await?,
            "limit" => scenarios::limit(scale).await?,
            "publish-loop" => scenarios::publish_loop(scale).await?,
            "https-hosts" => scenarios::https_hosts(scale).await?,
            "retention" => scenarios::retention(scale).await?,
            "ordering" => scenarios::ordering(scale).await?,
            other => anyhow::bail!("unknown scenario {other}; choose from {all:?} or all"),
        };
        println!("{}", report.markdown());
    }
    Ok(())
}
