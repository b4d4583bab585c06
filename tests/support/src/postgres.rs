//! Throw-away Postgres databases for tests; see the crate docs for where
//! the server comes from.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

use anyhow::{Context as _, bail};
use tokio::sync::OnceCell;
use tokio_postgres::{Client, NoTls};

use crate::cluster::{Cluster, Durability};

/// The server every test database of this process is created on.
#[derive(Debug)]
struct Server {
    /// A URL without a database name: `postgres://user@host:port`.
    base: String,
    /// The database used to create and drop the test databases.
    admin_db: String,
    /// The private cluster, when the server is one (kept for the process).
    _cluster: Option<Cluster>,
}

impl Server {
    fn url(&self, database: &str) -> String {
        format!("{}/{database}", self.base)
    }
}

static SERVER: OnceCell<Server> = OnceCell::const_new();

/// A fresh, empty database, dropped (with its connections) when this value
/// is dropped.
#[derive(Debug)]
pub struct TestDb {
    name: String,
    url: String,
    admin_url: String,
}

impl TestDb {
    pub async fn new() -> anyhow::Result<Self> {
        let server = SERVER.get_or_try_init(find_server).await?;
        let name = format!("test_{}", uuid::Uuid::new_v4().simple());
        let admin_url = server.url(&server.admin_db);
        let admin = connect(&admin_url).await?;
        admin
            .batch_execute(&format!("CREATE DATABASE \"{name}\""))
            .await
            .with_context(|| format!("creating test database {name}"))?;
        Ok(Self {
            url: server.url(&name),
            name,
            admin_url,
        })
    }

    /// The URL of this test's database.
    pub fn url(&self) -> &str {
        &self.url
    }

    /// A plain client on this test's database, for looking at what the
    /// services stored.
    pub async fn client(&self) -> anyhow::Result<Client> {
        connect(&self.url).await
    }

    /// The one number `query` answers (a `count(*)`, say).
    pub async fn count(&self, query: &str) -> anyhow::Result<i64> {
        Ok(self.client().await?.query_one(query, &[]).await?.get(0))
    }

    /// Each table of the `public` schema with its row count and a digest
    /// of its rows, to show that something changed nothing: equal maps
    /// mean equal contents, and an unequal one names the table.
    pub async fn checksums(&self) -> anyhow::Result<BTreeMap<String, String>> {
        let client = self.client().await?;
        let tables = client
            .query(
                "SELECT tablename::text FROM pg_tables WHERE schemaname = 'public' ORDER BY 1",
                &[],
            )
            .await?;
        let mut sums = BTreeMap::new();
        for row in tables {
            let table: String = row.get(0);
            let sum = client
                .query_one(
                    &format!(
                        "SELECT count(*)::text || ' rows, ' || \
                         coalesce(md5(string_agg(t::text, E'\\n' ORDER BY t::text)), '-') \
                         FROM \"{table}\" t"
                    ),
                    &[],
                )
                .await
                .with_context(|| format!("summing {table}"))?;
            sums.insert(table, sum.get(0));
        }
        Ok(sums)
    }

    /// The whole database as `pg_dump` writes it (schema and data, as an
    /// operator's backup would hold it).
    pub async fn dump(&self) -> anyhow::Result<String> {
        let pg_dump = crate::cluster::postgres_bin_dir()
            .map(|dir| dir.join("pg_dump"))
            .ok()
            .filter(|path| path.is_file())
            .unwrap_or_else(|| PathBuf::from("pg_dump"));
        let output = tokio::process::Command::new(&pg_dump)
            .arg("--dbname")
            .arg(&self.url)
            .output()
            .await
            .with_context(|| format!("running {}", pg_dump.display()))?;
        anyhow::ensure!(
            output.status.success(),
            "pg_dump failed: {}",
            String::from_utf8_lossy(&output.stderr)
        );
        Ok(String::from_utf8_lossy(&output.stdout).into_owned())
    }

    /// The columns of `table` as migrated, in order.
    pub async fn columns(&self, table: &str) -> anyhow::Result<Vec<String>> {
        let rows = self
            .client()
            .await?
            .query(
                "SELECT column_name::text FROM information_schema.columns \
                 WHERE table_schema = 'public' AND table_name = $1 ORDER BY ordinal_position",
                &[&table],
            )
            .await?;
        Ok(rows.iter().map(|row| row.get(0)).collect())
    }
}

/// The columns a `SELECT "t"."a", "t"."b" FROM "t"` statement names, in
/// order: what an ORM believes `table` looks like.
pub fn selected_columns(table: &str, sql: &str) -> Vec<String> {
    let marker = format!("\"{table}\".\"");
    sql.split(&marker)
        .skip(1)
        .filter_map(|rest| rest.split('"').next())
        .map(str::to_owned)
        .collect()
}

impl Drop for TestDb {
    fn drop(&mut self) {
        // Drop runs outside any async context we can rely on (the test's
        // runtime may be shutting down), so use a runtime of our own on a
        // thread of our own.
        let admin_url = self.admin_url.clone();
        let sql = format!("DROP DATABASE IF EXISTS \"{}\" WITH (FORCE)", self.name);
        let dropped = std::thread::spawn(move || -> anyhow::Result<()> {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()?;
            runtime.block_on(async {
                connect(&admin_url).await?.batch_execute(&sql).await?;
                Ok(())
            })
        })
        .join();
        if !matches!(dropped, Ok(Ok(()))) {
            eprintln!("test-support: could not drop test database {}", self.name);
        }
    }
}

async fn connect(url: &str) -> anyhow::Result<Client> {
    let (client, connection) =
        tokio::time::timeout(Duration::from_secs(10), tokio_postgres::connect(url, NoTls))
            .await
            .with_context(|| format!("connecting to {} timed out", redact(url)))?
            .with_context(|| format!("connecting to {}", redact(url)))?;
    tokio::spawn(async move {
        // Ends when the client is dropped; errors after that are of no
        // interest to a test.
        let _ = connection.await;
    });
    Ok(client)
}

/// The URL without its password, fit for an error message.
fn redact(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(scheme), Some(at)) if at > scheme => {
            let userinfo = &url[scheme + 3..at];
            let user = userinfo.split(':').next().unwrap_or_default();
            format!("{}{user}{}", &url[..scheme + 3], &url[at..])
        }
        _ => url.to_owned(),
    }
}

async fn find_server() -> anyhow::Result<Server> {
    // `TEST_POSTGRES=private` skips the other sources, so that the fallback
    // itself can be tested on a machine that has a server running.
    if std::env::var("TEST_POSTGRES").is_ok_and(|v| v == "private") {
        return tokio::task::spawn_blocking(start_private_cluster).await?;
    }
    for var in ["TEST_DATABASE_URL", "DATABASE_URL"] {
        if let Ok(url) = std::env::var(var) {
            return split_url(&url).with_context(|| format!("{var} is not a usable Postgres URL"));
        }
    }
    let local = "postgres://postgres@127.0.0.1:5432";
    if tokio::time::timeout(
        Duration::from_secs(3),
        tokio_postgres::connect(&format!("{local}/postgres"), NoTls),
    )
    .await
    .is_ok_and(|r| r.is_ok())
    {
        return Ok(Server {
            base: local.to_owned(),
            admin_db: "postgres".to_owned(),
            _cluster: None,
        });
    }
    tokio::task::spawn_blocking(start_private_cluster).await?
}

/// `postgres://u:p@h:5432/db?x` -> base `postgres://u:p@h:5432`, admin `db`.
fn split_url(url: &str) -> anyhow::Result<Server> {
    let (head, query) = url.split_once('?').unwrap_or((url, ""));
    if !query.is_empty() {
        bail!("query parameters are not supported in the test database URL");
    }
    let scheme_end = head.find("://").context("missing scheme")? + 3;
    let (base, db) = match head[scheme_end..].find('/') {
        Some(slash) => (&head[..scheme_end + slash], &head[scheme_end + slash + 1..]),
        None => (head, ""),
    };
    Ok(Server {
        base: base.to_owned(),
        admin_db: if db.is_empty() {
            "postgres".to_owned()
        } else {
            db.to_owned()
        },
        _cluster: None,
    })
}

fn start_private_cluster() -> anyhow::Result<Server> {
    let cluster = Cluster::start(Durability::Off)?;
    Ok(Server {
        base: cluster.base_url(),
        admin_db: "postgres".to_owned(),
        _cluster: Some(cluster),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_split_into_server_and_admin_database() {
        let s = split_url("postgres://u:p@db:5433/admin").unwrap();
        assert_eq!(
            (s.base.as_str(), s.admin_db.as_str()),
            ("postgres://u:p@db:5433", "admin")
        );
        let s = split_url("postgres://u@db").unwrap();
        assert_eq!(
            (s.base.as_str(), s.admin_db.as_str()),
            ("postgres://u@db", "postgres")
        );
        assert!(split_url("postgres://u@db/x?sslmode=require").is_err());
    }

    #[test]
    fn passwords_are_redacted() {
        assert_eq!(redact("postgres://u:secret@h:1/d"), "postgres://u@h:1/d");
        assert_eq!(redact("postgres://h/d"), "postgres://h/d");
    }
}
