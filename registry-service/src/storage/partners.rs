//! Queries on `partners`.

use chrono::Utc;
use diesel::prelude::*;
use diesel_async::{AsyncPgConnection, RunQueryDsl};

use super::models::PartnerRow;
use super::schema::partners;
use crate::domain::{Page, PageRequest, Partner, PartnerId, RegistryError};

pub(crate) async fn insert(
    conn: &mut AsyncPgConnection,
    id: PartnerId,
    name: &str,
) -> Result<Partner, RegistryError> {
    let row = PartnerRow {
        id: id.as_uuid(),
        name: name.to_owned(),
        created_at: Utc::now(),
        disabled_at: None,
    };
    let row = diesel::insert_into(partners::table)
        .values(&row)
        .returning(PartnerRow::as_returning())
        .get_result(conn)
        .await?;
    Ok(row.into())
}

pub(crate) async fn find(
    conn: &mut AsyncPgConnection,
    id: PartnerId,
) -> Result<Option<Partner>, RegistryError> {
    let row = partners::table
        .find(id.as_uuid())
        .select(PartnerRow::as_select())
        .first(conn)
        .await
        .optional()?;
    Ok(row.map(Into::into))
}

/// The partner, or `NotFound` naming it.
pub(crate) async fn get(
    conn: &mut AsyncPgConnection,
    id: PartnerId,
) -> Result<Partner, RegistryError> {
    find(conn, id)
        .await?
        .ok_or(RegistryError::PartnerNotFound(id))
}

/// The partner if it exists and is not disabled; the error names which.
pub(crate) async fn get_enabled(
    conn: &mut AsyncPgConnection,
    id: PartnerId,
) -> Result<Partner, RegistryError> {
    let partner = get(conn, id).await?;
    if partner.disabled_at.is_some() {
        return Err(RegistryError::PartnerDisabled(id));
    }
    Ok(partner)
}

pub(crate) async fn list(
    conn: &mut AsyncPgConnection,
    page: PageRequest,
) -> Result<Page<Partner>, RegistryError> {
    let rows = partners::table
        .order((partners::created_at, partners::id))
        .select(PartnerRow::as_select())
        .offset(page.offset())
        .limit(page.fetch_limit())
        .load(conn)
        .await?;
    Ok(page.finish(rows.into_iter().map(Into::into).collect()))
}

/// Sets `disabled_at` once; a second call keeps the first time.
pub(crate) async fn disable(
    conn: &mut AsyncPgConnection,
    id: PartnerId,
) -> Result<Partner, RegistryError> {
    let updated = diesel::update(partners::table.find(id.as_uuid()))
        .filter(partners::disabled_at.is_null())
        .set(partners::disabled_at.eq(Utc::now()))
        .returning(PartnerRow::as_returning())
        .get_result(conn)
        .await
        .optional()?;
    match updated {
        Some(row) => Ok(row.into()),
        None => get(conn, id).await,
    }
}
