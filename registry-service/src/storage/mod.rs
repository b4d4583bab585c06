//! Postgres through diesel-async: the pool, the embedded migrations, and one
//! module of queries per table. Queries are plain
//! `async fn(&mut AsyncPgConnection, ..) -> Result<DomainType, RegistryError>`;
//! rows are their own structs (`models.rs`) and become domain values here,
//! so no row type leaves this module.

pub(crate) mod api_keys;
pub(crate) mod changes;
pub(crate) mod health_events;
pub(crate) mod models;
pub(crate) mod notification_types;
pub(crate) mod partners;
pub(crate) mod registrations;
pub mod schema;
pub(crate) mod sealed;

use diesel::result::{DatabaseErrorKind, Error as DieselError};
use diesel_async::pooled_connection::bb8::RunError;
use diesel_migrations::{EmbeddedMigrations, embed_migrations};
pub use service_kit::db::DbPool;

use crate::domain::RegistryError;

pub const MIGRATIONS: EmbeddedMigrations = embed_migrations!("migrations");

/// Creates the database if needed, migrates it, and returns a pool.
pub async fn connect(database_url: &str, pool_size: u32) -> anyhow::Result<DbPool> {
    service_kit::db::connect(database_url, pool_size, MIGRATIONS).await
}

/// Any storage failure we did not map to a meaning is ours, not the caller's.
impl From<DieselError> for RegistryError {
    fn from(e: DieselError) -> Self {
        match e {
            DieselError::NotFound => RegistryError::Vanished,
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
