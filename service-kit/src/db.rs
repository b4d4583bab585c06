//! Start-up of a service's own Postgres database: create it when missing
//! (convenient locally; in production the role usually may not, and the
//! database already exists), open a pool, run the embedded migrations.

use diesel::result::{DatabaseErrorKind, Error as DieselError};
use diesel_async::pooled_connection::bb8::Pool;
use diesel_async::pooled_connection::{AsyncDieselConnectionManager, ManagerConfig};
use diesel_async::{AsyncConnection, AsyncMigrationHarness, AsyncPgConnection, RunQueryDsl};
use diesel_migrations::{EmbeddedMigrations, MigrationHarness};

pub type DbPool = Pool<AsyncPgConnection>;

/// Creates the database if needed, runs pending `migrations`, and returns a
/// pool of at most `pool_size` connections. Needs the multi-thread runtime
/// (the migration harness blocks in place).
pub async fn connect(
    database_url: &str,
    pool_size: u32,
    migrations: EmbeddedMigrations,
) -> anyhow::Result<DbPool> {
    ensure_database(database_url).await?;
    let mut config = ManagerConfig::default();
    config.custom_setup = Box::new(|url| Box::pin(establish(url)));
    let manager =
        AsyncDieselConnectionManager::<AsyncPgConnection>::new_with_config(database_url, config);
    let pool = Pool::builder()
        .max_size(pool_size)
        .connection_timeout(std::time::Duration::from_secs(10))
        .build(manager)
        .await?;
    let mut harness = AsyncMigrationHarness::new(pool.get_owned().await?);
    let applied = harness
        .run_pending_migrations(migrations)
        .map_err(|e| anyhow::anyhow!(e))?;
    for version in applied {
        tracing::info!(%version, "applied migration");
    }
    Ok(pool)
}

/// The longest a session may idle inside a transaction before the server
/// ends it, releasing its locks. A service cut off from its database in
/// the middle of a transaction cannot say so, and the server, seeing no
/// error on the socket (a proxy keeps it open; otherwise the kernel's
/// keepalive takes two hours), would keep its row locks held meanwhile.
/// No transaction here waits on anything but Postgres between statements.
const IDLE_IN_TRANSACTION: &str = "SET idle_in_transaction_session_timeout = '30s'";

async fn establish(url: &str) -> diesel::ConnectionResult<AsyncPgConnection> {
    use diesel_async::SimpleAsyncConnection as _;
    let mut connection = AsyncPgConnection::establish(url).await?;
    connection
        .batch_execute(IDLE_IN_TRANSACTION)
        .await
        .map_err(|e| diesel::ConnectionError::BadConnection(e.to_string()))?;
    Ok(connection)
}

async fn ensure_database(database_url: &str) -> anyhow::Result<()> {
    match AsyncPgConnection::establish(database_url).await {
        Ok(_) => Ok(()),
        Err(e) if e.to_string().contains("does not exist") => {
            let mut url = url::Url::parse(database_url)?;
            let name = url.path().trim_start_matches('/').to_owned();
            anyhow::ensure!(
                !name.is_empty() && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_'),
                "refusing to create database {name:?}: use letters, digits and '_'"
            );
            url.set_path("/postgres");
            let mut admin = AsyncPgConnection::establish(url.as_str()).await?;
            match diesel::sql_query(format!("CREATE DATABASE \"{name}\""))
                .execute(&mut admin)
                .await
            {
                Ok(_) => tracing::info!(database = %name, "created database"),
                // Another replica created it first.
                Err(DieselError::DatabaseError(DatabaseErrorKind::UniqueViolation, _)) => {}
                Err(e) if e.to_string().contains("already exists") => {}
                Err(e) => return Err(e.into()),
            }
            Ok(())
        }
        Err(e) => Err(e.into()),
    }
}
