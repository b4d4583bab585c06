//! Runs the real binaries (`registry-service`, `dispatcher-service`,
//! `gateway`) as separate processes, the way they run in production: their
//! own ports, their own databases, configured through the environment, and
//! stopped with real signals. The binaries are the ones built next to the
//! running test or tool (`target/<profile>/`).

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::Stdio;
use std::time::Duration;

use anyhow::Context as _;
use tokio::process::{Child, Command};

/// Where the workspace's binaries are: in `target/<profile>/`, next to a
/// tool (the bench) or one level above a test (`target/<profile>/deps/`).
pub fn binary(name: &str) -> anyhow::Result<PathBuf> {
    let exe = std::env::current_exe()?;
    let dir = exe
        .parent()
        .context("the running executable has no folder")?;
    let profile_dir = if dir.ends_with("deps") {
        dir.parent()
            .context("target/<profile>/deps has no parent")?
    } else {
        dir
    };
    let path = profile_dir.join(name);
    anyhow::ensure!(
        path.is_file(),
        "{} is not built; run `cargo test --workspace` (or `cargo build --workspace`) first",
        path.display()
    );
    Ok(path)
}

/// A free port on loopback, for a service that must keep its address
/// across restarts (or a port handed to a process the test starts).
///
/// The port comes from below the kernel's ephemeral range: between the
/// moment the port is chosen and the moment the service binds it, an
/// outgoing connection from any test may take an ephemeral port as its
/// local port, and the service would then fail to start. Ports below the
/// range are only ever taken by a bind that names them, and the counter
/// never hands out the same one twice in a process.
pub fn free_port() -> anyhow::Result<u16> {
    use std::sync::atomic::{AtomicU32, Ordering};
    static NEXT: AtomicU32 = AtomicU32::new(0);
    let (low, high) = below_ephemeral_range();
    let span = u32::from(high - low);
    // Each process starts at its own place in the span, so two test
    // processes running side by side rarely try the same ports.
    let start = std::process::id().wrapping_mul(7919) % span;
    for _ in 0..span {
        let offset = (start + NEXT.fetch_add(1, Ordering::Relaxed)) % span;
        let port = low + u16::try_from(offset)?;
        if std::net::TcpListener::bind(("127.0.0.1", port)).is_ok() {
            return Ok(port);
        }
    }
    anyhow::bail!("no free port on loopback between {low} and {high}")
}

/// The ports below the kernel's ephemeral range that tests may use.
fn below_ephemeral_range() -> (u16, u16) {
    let ephemeral_low = std::fs::read_to_string("/proc/sys/net/ipv4/ip_local_port_range")
        .ok()
        .and_then(|range| range.split_whitespace().next()?.parse::<u16>().ok())
        .unwrap_or(32768);
    let high = ephemeral_low.max(12_000);
    (high - 10_000, high)
}

/// The last lines of a service's log, to say why it stopped; its output
/// went to the test's own stderr when it has no log.
fn log_tail(log: Option<&std::path::Path>) -> String {
    let Some(text) = log.and_then(|path| std::fs::read_to_string(path).ok()) else {
        return String::new();
    };
    let lines: Vec<&str> = text.lines().collect();
    let tail = lines[lines.len().saturating_sub(10)..].join("\n");
    format!("; the end of its log:\n{tail}")
}

/// One service process, restartable with the same settings.
#[derive(Debug)]
pub struct Service {
    name: &'static str,
    binary: PathBuf,
    env: Vec<(String, String)>,
    pub addr: SocketAddr,
    /// Where its output goes (appended across restarts); discarded if none.
    log: Option<PathBuf>,
    child: Option<Child>,
}

impl Service {
    /// Starts `name` listening on `addr` with `env` (output appended to
    /// `log`, or discarded), and waits until it accepts connections.
    pub async fn start(
        name: &'static str,
        addr: SocketAddr,
        env: Vec<(String, String)>,
        log: Option<PathBuf>,
    ) -> anyhow::Result<Self> {
        let mut service = Self {
            name,
            binary: binary(name)?,
            env,
            addr,
            log,
            child: None,
        };
        service.spawn().await?;
        Ok(service)
    }

    async fn spawn(&mut self) -> anyhow::Result<()> {
        let level = std::env::var("E2E_LOG").unwrap_or_else(|_| "warn".into());
        let (stdout, stderr) = match &self.log {
            Some(path) => {
                let file = std::fs::OpenOptions::new()
                    .create(true)
                    .append(true)
                    .open(path)?;
                (Stdio::from(file.try_clone()?), Stdio::from(file))
            }
            None => (Stdio::null(), Stdio::inherit()),
        };
        let mut command = Command::new(&self.binary);
        command.env("RUST_LOG", level);
        let child = command
            .envs(self.env.iter().map(|(k, v)| (k.as_str(), v.as_str())))
            .stdin(Stdio::null())
            .stdout(stdout)
            .stderr(stderr)
            .kill_on_drop(true)
            .spawn()
            .with_context(|| format!("starting {}", self.name))?;
        self.child = Some(child);
        self.wait_until_listening().await
    }

    async fn wait_until_listening(&mut self) -> anyhow::Result<()> {
        let name = self.name;
        let addr = self.addr;
        let child = self.child.as_mut().context("not running")?;
        let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
        let mut ticks = tokio::time::interval(Duration::from_millis(50));
        loop {
            ticks.tick().await;
            if tokio::net::TcpStream::connect(addr).await.is_ok() {
                return Ok(());
            }
            if let Some(status) = child.try_wait()? {
                anyhow::bail!(
                    "{name} exited during start-up: {status}{}",
                    log_tail(self.log.as_deref())
                );
            }
            anyhow::ensure!(
                tokio::time::Instant::now() < deadline,
                "{name} did not listen on {addr} within 30 s"
            );
        }
    }

    /// Another process of the same binary and settings on `addr`, with
    /// `overrides` replacing (or adding) variables: a second replica.
    pub async fn start_like(
        &self,
        addr: SocketAddr,
        overrides: &[(&str, &str)],
    ) -> anyhow::Result<Self> {
        let mut env: Vec<(String, String)> = self
            .env
            .iter()
            .filter(|(key, _)| !overrides.iter().any(|(k, _)| k == key))
            .cloned()
            .collect();
        env.extend(
            overrides
                .iter()
                .map(|(k, v)| ((*k).to_owned(), (*v).to_owned())),
        );
        Self::start(self.name, addr, env, self.log.clone()).await
    }

    /// The running process's id.
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().and_then(Child::id)
    }

    /// Whether the process started last is still running (it has not
    /// exited or crashed on its own).
    pub fn is_running(&mut self) -> bool {
        self.child
            .as_mut()
            .is_some_and(|child| child.try_wait().is_ok_and(|exited| exited.is_none()))
    }

    /// SIGTERM, then waits for the process to exit (graceful shutdown).
    pub async fn stop(&mut self) -> anyhow::Result<()> {
        if let Some(mut child) = self.child.take() {
            if let Some(pid) = child.id() {
                let status = Command::new("kill")
                    .args(["-TERM", &pid.to_string()])
                    .status()
                    .await?;
                anyhow::ensure!(status.success(), "kill -TERM {pid} failed");
            }
            let exited = tokio::time::timeout(Duration::from_secs(30), child.wait())
                .await
                .with_context(|| format!("{} did not stop within 30 s of SIGTERM", self.name))??;
            anyhow::ensure!(
                exited.success(),
                "{} exited with {exited} after SIGTERM",
                self.name
            );
        }
        Ok(())
    }

    /// SIGKILL: no chance to finish anything.
    pub async fn kill(&mut self) -> anyhow::Result<()> {
        if let Some(mut child) = self.child.take() {
            child.start_kill()?;
            child.wait().await?;
        }
        Ok(())
    }

    /// Starts it again with the same settings and address.
    pub async fn restart(&mut self) -> anyhow::Result<()> {
        self.stop().await?;
        self.spawn().await
    }

    /// Stops it (SIGTERM) and starts it again with `overrides` replacing
    /// (or adding) variables: a rolling change of its configuration.
    pub async fn restart_with(&mut self, overrides: &[(&str, &str)]) -> anyhow::Result<()> {
        self.stop().await?;
        self.env
            .retain(|(key, _)| !overrides.iter().any(|(k, _)| k == key));
        self.env.extend(
            overrides
                .iter()
                .map(|(k, v)| ((*k).to_owned(), (*v).to_owned())),
        );
        self.spawn().await
    }

    /// Runs the binary once with this service's settings and `args` (a
    /// maintenance command), and returns what it printed and how it ended.
    pub async fn run_command(&self, args: &[&str]) -> anyhow::Result<std::process::Output> {
        Command::new(&self.binary)
            .args(args)
            .envs(self.env.iter().map(|(k, v)| (k.as_str(), v.as_str())))
            .stdin(Stdio::null())
            .output()
            .await
            .with_context(|| format!("running {} {args:?}", self.name))
    }

    /// Starts it again after a `stop` or `kill`.
    pub async fn start_again(&mut self) -> anyhow::Result<()> {
        anyhow::ensure!(self.child.is_none(), "{} is still running", self.name);
        self.spawn().await
    }
}

/// `KEY=value` pairs from literals.
pub fn env(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
    pairs
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect()
}
