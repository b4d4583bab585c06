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
/// across restarts.
pub fn free_port() -> anyhow::Result<u16> {
    Ok(std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port())
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
                anyhow::bail!("{name} exited during start-up: {status}");
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
