//! The sealed columns of `registrations` as bytes, for moving them to the
//! current key. A value's first nine bytes are its format and key id
//! (`crypto`), so which key sealed it is a question SQL can answer.

use diesel::prelude::*;
use diesel::sql_types::{Array, BigInt, Bytea, Uuid as SqlUuid};
use diesel_async::{AsyncPgConnection, RunQueryDsl};

use super::schema::registrations;
use crate::domain::RegistryError;

/// The header length: format byte and key id.
const HEADER: &str = "9";

/// A registration's sealed values.
#[derive(Debug, QueryableByName)]
#[diesel(table_name = registrations)]
pub(crate) struct SealedRow {
    pub id: uuid::Uuid,
    pub callback_password_sealed: Option<Vec<u8>>,
    pub signing_secret_sealed: Vec<u8>,
    pub previous_keys_sealed: Vec<Vec<u8>>,
}

/// True where a value of the row is not sealed under `$1` (a header).
const NOT_UNDER: &str = "(substring(signing_secret_sealed for 9) <> $1 \
     OR substring(callback_password_sealed for 9) <> $1 \
     OR EXISTS (SELECT 1 FROM unnest(previous_keys_sealed) AS k WHERE substring(k for 9) <> $1))";

/// Up to `limit` rows after `after` (in id order) holding a value not
/// sealed under `header`, locked until the transaction ends, so a partner's
/// change to the same row waits for the re-seal instead of being undone.
pub(crate) async fn lock_not_under(
    conn: &mut AsyncPgConnection,
    header: &[u8],
    after: uuid::Uuid,
    limit: i64,
) -> Result<Vec<SealedRow>, RegistryError> {
    Ok(diesel::sql_query(format!(
        "SELECT id, callback_password_sealed, signing_secret_sealed, previous_keys_sealed \
         FROM registrations WHERE id > $2 AND {NOT_UNDER} ORDER BY id LIMIT $3 FOR UPDATE"
    ))
    .bind::<Bytea, _>(header)
    .bind::<SqlUuid, _>(after)
    .bind::<BigInt, _>(limit)
    .load(conn)
    .await?)
}

/// How many rows hold a value not sealed under `header`.
pub(crate) async fn count_not_under(
    conn: &mut AsyncPgConnection,
    header: &[u8],
) -> Result<i64, RegistryError> {
    let found: Count = diesel::sql_query(format!(
        "SELECT count(*) AS n FROM registrations WHERE {NOT_UNDER}"
    ))
    .bind::<Bytea, _>(header)
    .get_result(conn)
    .await?;
    Ok(found.n)
}

/// How many rows hold a value that names a key outside `headers`: values
/// no key of the ring opens.
pub(crate) async fn count_under_other_keys(
    conn: &mut AsyncPgConnection,
    headers: Vec<Vec<u8>>,
) -> Result<i64, RegistryError> {
    let outside = |column: &str| {
        format!("(get_byte({column}, 0) = 2 AND substring({column} for {HEADER}) <> ALL($1))")
    };
    let found: Count = diesel::sql_query(format!(
        "SELECT count(*) AS n FROM registrations WHERE {} OR {} \
         OR EXISTS (SELECT 1 FROM unnest(previous_keys_sealed) AS k WHERE {})",
        outside("signing_secret_sealed"),
        outside("callback_password_sealed"),
        outside("k"),
    ))
    .bind::<Array<Bytea>, _>(headers)
    .get_result(conn)
    .await?;
    Ok(found.n)
}

#[derive(QueryableByName)]
struct Count {
    #[diesel(sql_type = BigInt)]
    n: i64,
}

/// Writes a row's values back.
pub(crate) async fn update(
    conn: &mut AsyncPgConnection,
    row: &SealedRow,
) -> Result<(), RegistryError> {
    diesel::update(registrations::table.find(row.id))
        .set((
            registrations::callback_password_sealed.eq(&row.callback_password_sealed),
            registrations::signing_secret_sealed.eq(&row.signing_secret_sealed),
            registrations::previous_keys_sealed.eq(&row.previous_keys_sealed),
        ))
        .execute(conn)
        .await?;
    Ok(())
}
