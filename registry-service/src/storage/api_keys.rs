//! Queries on `api_keys`. Keys are found by the hash of their token; the
//! token itself is never stored.

use chrono::{DateTime, Utc};
use diesel::prelude::*;
use diesel_async::{AsyncPgConnection, RunQueryDsl};

use super::models::ApiKeyRow;
use super::schema::{api_keys, partners};
use crate::domain::{ApiKey, ApiKeyId, PartnerId, RegistryError};

/// What a new key may open: everything its partner may (an API key), or
/// the portal only until a time (a portal link).
#[derive(Debug, Clone, Copy)]
pub(crate) enum Reach {
    Api,
    PortalUntil(DateTime<Utc>),
}

pub(crate) async fn insert(
    conn: &mut AsyncPgConnection,
    partner_id: PartnerId,
    label: &str,
    token_hash: Vec<u8>,
    token_prefix: String,
    reach: Reach,
) -> Result<ApiKey, RegistryError> {
    let expires_at = match reach {
        Reach::Api => None,
        Reach::PortalUntil(at) => Some(at),
    };
    let row = ApiKeyRow {
        id: ApiKeyId::generate().as_uuid(),
        partner_id: partner_id.as_uuid(),
        label: label.to_owned(),
        token_hash,
        token_prefix,
        created_at: Utc::now(),
        revoked_at: None,
        portal_only: expires_at.is_some(),
        expires_at,
    };
    let row = diesel::insert_into(api_keys::table)
        .values(&row)
        .returning(ApiKeyRow::as_returning())
        .get_result(conn)
        .await?;
    Ok(row.into())
}

pub(crate) async fn list(
    conn: &mut AsyncPgConnection,
    partner_id: PartnerId,
    include_revoked: bool,
) -> Result<Vec<ApiKey>, RegistryError> {
    let mut query = api_keys::table
        .filter(api_keys::partner_id.eq(partner_id.as_uuid()))
        .order((api_keys::created_at, api_keys::id))
        .select(ApiKeyRow::as_select())
        .into_boxed();
    if !include_revoked {
        query = query.filter(api_keys::revoked_at.is_null());
    }
    let rows = query.load(conn).await?;
    Ok(rows.into_iter().map(Into::into).collect())
}

/// Revokes the partner's key; revoking twice keeps the first time.
pub(crate) async fn revoke(
    conn: &mut AsyncPgConnection,
    partner_id: PartnerId,
    key_id: ApiKeyId,
) -> Result<ApiKey, RegistryError> {
    let owned = api_keys::table
        .filter(api_keys::id.eq(key_id.as_uuid()))
        .filter(api_keys::partner_id.eq(partner_id.as_uuid()));
    let revoked = diesel::update(owned.filter(api_keys::revoked_at.is_null()))
        .set(api_keys::revoked_at.eq(Utc::now()))
        .returning(ApiKeyRow::as_returning())
        .get_result(conn)
        .await
        .optional()?;
    let row = match revoked {
        Some(row) => row,
        None => owned
            .select(ApiKeyRow::as_select())
            .first(conn)
            .await
            .optional()?
            .ok_or(RegistryError::ApiKeyNotFound {
                partner: partner_id,
                key: key_id,
            })?,
    };
    Ok(row.into())
}

/// The live key with this token hash whose partner is enabled, if any.
pub(crate) async fn find_live_by_hash(
    conn: &mut AsyncPgConnection,
    token_hash: &[u8],
) -> Result<Option<ApiKey>, RegistryError> {
    let row = api_keys::table
        .inner_join(partners::table)
        .filter(api_keys::token_hash.eq(token_hash))
        .filter(api_keys::revoked_at.is_null())
        .filter(
            api_keys::expires_at
                .is_null()
                .or(api_keys::expires_at.gt(diesel::dsl::now)),
        )
        .filter(partners::disabled_at.is_null())
        .select(ApiKeyRow::as_select())
        .first(conn)
        .await
        .optional()?;
    Ok(row.map(Into::into))
}
