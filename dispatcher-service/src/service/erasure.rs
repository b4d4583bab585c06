//! Erasing payloads on request (`storage::erasure`): one event's, or all
//! of a partner's.

use super::*;
use crate::storage::erasure::{self, Erased};

/// Events emptied per transaction when a partner's payloads are erased.
const ERASE_CHUNK: i64 = 5_000;

impl Dispatcher {
    /// Erases event `id`'s payload (of `partner`, when given).
    pub(crate) async fn erase_event(
        &self,
        id: Uuid,
        partner: Option<Uuid>,
    ) -> Result<Erased, DispatchError> {
        let mut conn = self.pool.get().await?;
        let erased = erasure::erase_event(&mut conn, id, partner)
            .await?
            .ok_or(DispatchError::EventNotFound(id))?;
        tracing::info!(event.id = %id, erased = erased.events, cancelled = erased.cancelled, "payload erased");
        Ok(erased)
    }

    /// Erases every payload of `partner`.
    pub(crate) async fn erase_partner(&self, partner: Uuid) -> Result<Erased, DispatchError> {
        let mut conn = self.pool.get().await?;
        let erased = erasure::erase_partner(&mut conn, partner, ERASE_CHUNK).await?;
        tracing::info!(partner.id = %partner, erased = erased.events, cancelled = erased.cancelled, "payloads erased");
        Ok(erased)
    }
}
