//! Pausing a registration and resuming it. A pause keeps the registration
//! active, with its secret, history and incoming events; the dispatcher
//! learns of it through the change log and holds the deliveries until the
//! resume, when they flow again.

use super::*;

/// The reason recorded when the caller gives none.
const PAUSED: &str = "paused";

impl Registry {
    /// Pauses the active registration for (partner, type). Pausing a paused
    /// one is refused, naming since when it is paused: the caller's intent
    /// may be stale, and the first reason stays.
    pub(crate) async fn pause_callback(
        &self,
        partner_id: PartnerId,
        notification_type: NotificationTypeId,
        reason: Option<String>,
    ) -> Result<Registration, RegistryError> {
        let reason = reason.unwrap_or_else(|| PAUSED.to_owned());
        self.change_pause(partner_id, notification_type, |row, now| {
            match row.paused_at {
                Some(since) => Err(RegistryError::AlreadyPaused {
                    partner: partner_id,
                    notification_type,
                    since,
                }),
                None => Ok(Some((now, reason.clone()))),
            }
        })
        .await
    }

    /// Resumes the paused registration for (partner, type); its held
    /// deliveries are due again within the dispatcher's recheck interval.
    /// A registration still in error state has its failing streak counted
    /// from now.
    pub(crate) async fn resume_callback(
        &self,
        partner_id: PartnerId,
        notification_type: NotificationTypeId,
    ) -> Result<Registration, RegistryError> {
        self.change_pause(partner_id, notification_type, |row, _| {
            match row.paused_at {
                Some(_) => Ok(None),
                None => Err(RegistryError::NotPaused {
                    partner: partner_id,
                    notification_type,
                }),
            }
        })
        .await
    }

    /// Sets the pause `decide` chooses for the locked active registration,
    /// and records the change for the dispatchers' caches.
    async fn change_pause(
        &self,
        partner_id: PartnerId,
        notification_type: NotificationTypeId,
        decide: impl Fn(
            &RegistrationRow,
            DateTime<Utc>,
        ) -> Result<Option<(DateTime<Utc>, String)>, RegistryError>
        + Send
        + Sync,
    ) -> Result<Registration, RegistryError> {
        let mut conn = self.pool.get().await?;
        conn.transaction(async |conn| {
            partners::get(conn, partner_id).await?;
            let row = registrations::lock_active(conn, partner_id, notification_type)
                .await?
                .ok_or_else(|| no_active(partner_id, notification_type))?;
            let now = Utc::now();
            let pause = decide(&row, now)?;
            let id = RegistrationId::from_uuid(row.id);
            let pause = pause.as_ref().map(|(since, why)| (*since, why.as_str()));
            let mut row = registrations::set_pause(conn, id, pause, now).await?;
            if pause.is_none() && row.is_in_error_state {
                // A resume starts the failing streak again, so that the
                // first failure after it does not pause it at once.
                row = registrations::restart_streak(conn, id, now).await?;
            }
            changes::record(conn, Change::Callback(partner_id, notification_type)).await?;
            Ok(row.to_domain())
        })
        .await
    }
}
