//! Queries on the notification-type catalogue.

use chrono::Utc;
use diesel::prelude::*;
use diesel::result::DatabaseErrorKind;
use diesel_async::{AsyncPgConnection, RunQueryDsl};

use super::models::NotificationTypeRow;
use super::schema::notification_types;
use super::violated_constraint;
use crate::domain::{NewNotificationType, NotificationType, NotificationTypeId, RegistryError};

pub(crate) async fn list(
    conn: &mut AsyncPgConnection,
) -> Result<Vec<NotificationType>, RegistryError> {
    let rows = notification_types::table
        .order(notification_types::id)
        .select(NotificationTypeRow::as_select())
        .load(conn)
        .await?;
    Ok(rows.into_iter().map(Into::into).collect())
}

pub(crate) async fn find(
    conn: &mut AsyncPgConnection,
    id: NotificationTypeId,
) -> Result<Option<NotificationType>, RegistryError> {
    let row = notification_types::table
        .find(id.get())
        .select(NotificationTypeRow::as_select())
        .first(conn)
        .await
        .optional()?;
    Ok(row.map(Into::into))
}

pub(crate) async fn insert(
    conn: &mut AsyncPgConnection,
    new: NewNotificationType,
) -> Result<NotificationType, RegistryError> {
    let NewNotificationType {
        id,
        name,
        description,
        echoable,
        payload_schema,
    } = new;
    let row = NotificationTypeRow {
        id: id.get(),
        name: name.clone(),
        description,
        echoable,
        created_at: Utc::now(),
        payload_schema,
    };
    diesel::insert_into(notification_types::table)
        .values(&row)
        .returning(NotificationTypeRow::as_returning())
        .get_result(conn)
        .await
        .map(Into::into)
        .map_err(|e| match violated_constraint(&e) {
            Some((DatabaseErrorKind::UniqueViolation, "notification_types_pkey")) => {
                RegistryError::NotificationTypeExists(id)
            }
            Some((DatabaseErrorKind::UniqueViolation, "notification_types_name_key")) => {
                RegistryError::NotificationTypeNameTaken(name.clone())
            }
            _ => e.into(),
        })
}

/// Sets (or, with `None`, removes) the type's payload schema; `None` when
/// the type does not exist.
pub(crate) async fn set_payload_schema(
    conn: &mut AsyncPgConnection,
    id: NotificationTypeId,
    schema: Option<String>,
) -> Result<Option<NotificationType>, RegistryError> {
    let row = diesel::update(notification_types::table.find(id.get()))
        .set(notification_types::payload_schema.eq(schema))
        .returning(NotificationTypeRow::as_returning())
        .get_result(conn)
        .await
        .optional()?;
    Ok(row.map(Into::into))
}
