//! A private Postgres cluster of the machine's `initdb`/`pg_ctl`: the
//! fallback server when no other answers (durability off, for speed), or
//! one a test owns so it can kill and restart it (full durability: `fsync`
//! and `synchronous_commit` on, as in production, so that what survives a
//! kill proves something). Stopped and deleted when dropped, or by a small
//! reaper once the test process is gone.

use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::Context as _;

use crate::process::free_port;

/// Whether the cluster's commits survive a crash.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Durability {
    /// `fsync=off`, `synchronous_commit=off`: fast, proves nothing about
    /// crashes.
    Off,
    /// The defaults a production server runs with: `fsync=on`,
    /// `synchronous_commit=on`, `full_page_writes=on`.
    Full,
}

#[derive(Debug)]
pub struct Cluster {
    bin: PathBuf,
    root: PathBuf,
    data: PathBuf,
    port: u16,
    durability: Durability,
}

impl Cluster {
    /// `initdb` and `pg_ctl start` on a free port; waits until it accepts
    /// connections.
    pub fn start(durability: Durability) -> anyhow::Result<Self> {
        let bin = postgres_bin_dir()?;
        let root =
            std::env::temp_dir().join(format!("test-support-pg-{}", uuid::Uuid::new_v4().simple()));
        let data = root.join("data");
        std::fs::create_dir_all(&root)?;
        if is_root() {
            let status = Command::new("chown")
                .args(["-R", "postgres:postgres"])
                .arg(&root)
                .status()?;
            anyhow::ensure!(status.success(), "chown of {} failed", root.display());
        }
        let status = run_as_owner(&bin.join("initdb"))
            .arg("-D")
            .arg(&data)
            .args(["-U", "postgres", "--auth=trust", "--no-sync", "-E", "UTF8"])
            .stdout(std::process::Stdio::null())
            .status()
            .context("running initdb")?;
        anyhow::ensure!(status.success(), "initdb failed");
        let cluster = Self {
            bin,
            port: free_port()?,
            root,
            data,
            durability,
        };
        cluster.pg_ctl_start()?;
        cluster.spawn_reaper()?;
        eprintln!(
            "test-support: started a private Postgres cluster ({durability:?} durability) on port {}",
            cluster.port
        );
        Ok(cluster)
    }

    /// `postgres://postgres@127.0.0.1:<port>`, without a database.
    pub fn base_url(&self) -> String {
        format!("postgres://postgres@127.0.0.1:{}", self.port)
    }

    /// The port it listens on, on loopback.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// Starts the server again after [`Cluster::kill`] (crash recovery
    /// replays the WAL), on the same port; waits until it accepts
    /// connections. Until the last process of the killed server has exited
    /// the new one refuses to start, so it is tried again for up to 10 s.
    pub fn start_again(&self) -> anyhow::Result<()> {
        let mut tries = 0;
        loop {
            match self.pg_ctl_start() {
                Ok(()) => return Ok(()),
                Err(error) if tries >= 50 => return Err(error),
                Err(_) => {
                    tries += 1;
                    std::thread::sleep(std::time::Duration::from_millis(200));
                }
            }
        }
    }

    fn pg_ctl_start(&self) -> anyhow::Result<()> {
        let durability = match self.durability {
            Durability::Off => "-c fsync=off -c synchronous_commit=off",
            Durability::Full => "-c fsync=on -c synchronous_commit=on -c full_page_writes=on",
        };
        let options = format!(
            "-p {} -h 127.0.0.1 -k {} {durability} -c max_connections=200",
            self.port,
            self.root.display()
        );
        let log = self.root.join("log");
        let status = run_as_owner(&self.bin.join("pg_ctl"))
            .arg("-D")
            .arg(&self.data)
            .args(["-o", &options, "-l"])
            .arg(&log)
            .args(["-w", "-t", "60", "start"])
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .status()
            .context("running pg_ctl start")?;
        anyhow::ensure!(
            status.success(),
            "pg_ctl start failed; see {}",
            log.display()
        );
        Ok(())
    }

    /// SIGKILL to the server and every backend at once, as a crash or the
    /// OOM killer would. Each backend runs in a session of its own, so they
    /// are named one by one; one forked in between dies of its own accord
    /// when it finds the server gone.
    pub fn kill(&self) -> anyhow::Result<()> {
        let pid_file = std::fs::read_to_string(self.data.join("postmaster.pid"))
            .context("reading postmaster.pid")?;
        let pid = pid_file
            .lines()
            .next()
            .context("an empty postmaster.pid")?
            .trim();
        let children = Command::new("pgrep").args(["-P", pid]).output()?.stdout;
        let children = String::from_utf8_lossy(&children);
        let status = Command::new("kill")
            .arg("-KILL")
            .arg(pid)
            .args(children.split_whitespace())
            .status()?;
        anyhow::ensure!(status.success(), "kill -KILL {pid} failed");
        Ok(())
    }

    /// Test processes end without running destructors of statics, so a small
    /// shell watches this process and stops and deletes the cluster once it
    /// is gone.
    fn spawn_reaper(&self) -> anyhow::Result<()> {
        let script = format!(
            "while kill -0 {pid} 2>/dev/null; do sleep 1; done; {stop}; rm -rf '{root}'",
            pid = std::process::id(),
            stop = self.stop_command(),
            root = self.root.display(),
        );
        Command::new("sh")
            .args(["-c", &script])
            .stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .context("starting the cluster reaper")?;
        Ok(())
    }

    fn stop_command(&self) -> String {
        let owner = if is_root() {
            "runuser -u postgres -- "
        } else {
            ""
        };
        format!(
            "{owner}'{pg_ctl}' -D '{data}' -m immediate stop >/dev/null 2>&1",
            pg_ctl = self.bin.join("pg_ctl").display(),
            data = self.data.display(),
        )
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        let _ = Command::new("sh")
            .args(["-c", &self.stop_command()])
            .status();
        let _ = std::fs::remove_dir_all(&self.root);
    }
}

/// Where `initdb` and `pg_ctl` are: on `PATH`, or in Debian's versioned
/// directory.
pub(crate) fn postgres_bin_dir() -> anyhow::Result<PathBuf> {
    if let Ok(path) = std::env::var("PATH") {
        for dir in std::env::split_paths(&path) {
            if dir.join("initdb").is_file() && dir.join("pg_ctl").is_file() {
                return Ok(dir);
            }
        }
    }
    let mut versions: Vec<PathBuf> = std::fs::read_dir("/usr/lib/postgresql")
        .map(|entries| {
            entries
                .filter_map(|e| e.ok())
                .map(|e| e.path().join("bin"))
                .collect()
        })
        .unwrap_or_default();
    versions.sort();
    versions
        .into_iter()
        .rev()
        .find(|bin| bin.join("initdb").is_file())
        .context(
            "no Postgres answers on 127.0.0.1:5432, TEST_DATABASE_URL is not set, and no initdb \
             was found to start a private cluster: install PostgreSQL (e.g. apt-get install postgresql)",
        )
}

fn is_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .is_ok_and(|o| String::from_utf8_lossy(&o.stdout).trim() == "0")
}

/// `initdb` refuses to run as root, so as root the cluster belongs to the
/// `postgres` user.
fn run_as_owner(program: &Path) -> Command {
    if is_root() {
        let mut command = Command::new("runuser");
        command.args(["-u", "postgres", "--"]).arg(program);
        command
    } else {
        Command::new(program)
    }
}
