//! Postgres through diesel-async: the pool, the embedded migrations, and one
//! module of queries per table. Queries are plain
//! `async fn(&mut AsyncPgConnection, ..) -> Result<DomainType, RegistryError>`;
//! rows are their own structs (`models.rs`) and become domain values here,
//! so no row type leaves this module.

pub mod api_keys;
pub mod models;
pub mod notification_types;
pub mod partners;
pub mod registrations;
pub mod schema;

use diesel::result::{DatabaseErrorKind, Error as DieselError};
use diesel_async::pooled_connection::AsyncDieselConnectionManager;
use diesel_async::pooled_connection::bb8::{Pool, PooledConnection, RunError};
use diesel_async::{AsyncConnection, AsyncMigrationHarness, AsyncPgConnection, RunQueryDsl};
use diesel_migrations::{EmbeddedMigrations, MigrationHarness, embed_migrations};

use crate::domain::RegistryError;

pub const MIGRATIONS: EmbeddedMigrations = embed_migrations!("migrations");

pub type DbPool = Pool<AsyncPgConnection>;
pub type DbConn<'a> = PooledConnection<'a, AsyncPgConnection>;

/// Creates the database if it does not exist yet (convenient locally; in
/// production the role usually lacks the right and the database exists),
/// runs pending migrations and returns a pool.
pub async fn connect(database_url: &str, pool_size: u32) -> anyhow::Result<DbPool> {
    ensure_database(database_url).await?;
    let manager = AsyncDieselConnectionManager::<AsyncPgConnection>::new(database_url);
    let pool = Pool::builder()
        .max_size(pool_size)
        .connection_timeout(std::time::Duration::from_secs(10))
        .build(manager)
        .await?;
    let mut harness = AsyncMigrationHarness::new(pool.get_owned().await?);
    let applied = harness
        .run_pending_migrations(MIGRATIONS)
        .map_err(|e| anyhow::anyhow!(e))?;
    for version in applied {
        tracing::info!(%version, "applied migration");
    }
    Ok(pool)
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

/// Any storage failure we did not map to a meaning is ours, not the caller's.
impl From<DieselError> for RegistryError {
    fn from(e: DieselError) -> Self {
        match e {
            DieselError::NotFound => RegistryError::NotFound("not found".into()),
            other => RegistryError::internal(other),
        }
    }
}

impl From<RunError> for RegistryError {
    fn from(e: RunError) -> Self {
        RegistryError::internal(e)
    }
}

/// The name of the constraint a unique or foreign-key violation broke.
pub(crate) fn violated_constraint(e: &DieselError) -> Option<(&DatabaseErrorKind, &str)> {
    match e {
        DieselError::DatabaseError(kind, info) => info.constraint_name().map(|c| (kind, c)),
        _ => None,
    }
}
