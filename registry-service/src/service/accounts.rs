//! Partners, their API keys, the notification-type catalogue, and the
//! change log other services' caches follow.

use super::*;

impl Registry {
    // ------------------------------------------------------------ partners

    pub(crate) async fn create_partner(
        &self,
        name: String,
        key_label: String,
    ) -> Result<(Partner, IssuedKey), RegistryError> {
        let new_key = self.cipher.new_api_key().map_err(RegistryError::internal)?;
        let mut conn = self.pool.get().await?;
        conn.transaction(async |conn| {
            let partner = partners::insert(conn, PartnerId::generate(), &name).await?;
            let key = api_keys::insert(
                conn,
                partner.id,
                &key_label,
                new_key.hash,
                new_key.prefix,
                api_keys::Reach::Api,
            )
            .await?;
            Ok((
                partner,
                IssuedKey {
                    key,
                    token: new_key.token,
                },
            ))
        })
        .await
    }

    pub(crate) async fn get_partner(&self, id: PartnerId) -> Result<Partner, RegistryError> {
        let mut conn = self.pool.get().await?;

        partners::get(&mut conn, id).await
    }

    pub(crate) async fn list_partners(
        &self,
        page: PageRequest,
    ) -> Result<Page<Partner>, RegistryError> {
        let mut conn = self.pool.get().await?;

        partners::list(&mut conn, page).await
    }

    pub(crate) async fn disable_partner(&self, id: PartnerId) -> Result<Partner, RegistryError> {
        let mut conn = self.pool.get().await?;
        conn.transaction(async |conn| {
            let partner = partners::disable(conn, id).await?;
            changes::record(conn, Change::Partner(id)).await?;
            Ok(partner)
        })
        .await
    }

    // ------------------------------------------------------------ API keys

    pub(crate) async fn issue_api_key(
        &self,
        partner_id: PartnerId,
        label: String,
    ) -> Result<IssuedKey, RegistryError> {
        let new_key = self.cipher.new_api_key().map_err(RegistryError::internal)?;
        let mut conn = self.pool.get().await?;
        partners::get_enabled(&mut conn, partner_id).await?;
        let key = api_keys::insert(
            &mut conn,
            partner_id,
            &label,
            new_key.hash,
            new_key.prefix,
            api_keys::Reach::Api,
        )
        .await?;
        Ok(IssuedKey {
            key,
            token: new_key.token,
        })
    }

    /// A portal link for the partner: a key that opens the portal only,
    /// until `lasts` from now.
    pub(crate) async fn issue_portal_link(
        &self,
        partner_id: PartnerId,
        lasts: std::time::Duration,
    ) -> Result<IssuedKey, RegistryError> {
        let new_key = self.cipher.new_api_key().map_err(RegistryError::internal)?;
        let until = chrono::Utc::now()
            + chrono::Duration::from_std(lasts).map_err(RegistryError::internal)?;
        let mut conn = self.pool.get().await?;
        partners::get_enabled(&mut conn, partner_id).await?;
        let key = api_keys::insert(
            &mut conn,
            partner_id,
            "portal link",
            new_key.hash,
            new_key.prefix,
            api_keys::Reach::PortalUntil(until),
        )
        .await?;
        Ok(IssuedKey {
            key,
            token: new_key.token,
        })
    }

    pub(crate) async fn list_api_keys(
        &self,
        partner_id: PartnerId,
        include_revoked: bool,
    ) -> Result<Vec<ApiKey>, RegistryError> {
        let mut conn = self.pool.get().await?;
        partners::get(&mut conn, partner_id).await?;
        api_keys::list(&mut conn, partner_id, include_revoked).await
    }

    pub(crate) async fn revoke_api_key(
        &self,
        partner_id: PartnerId,
        key_id: ApiKeyId,
    ) -> Result<ApiKey, RegistryError> {
        let mut conn = self.pool.get().await?;
        conn.transaction(async |conn| {
            let key = api_keys::revoke(conn, partner_id, key_id).await?;
            changes::record(conn, Change::ApiKey(partner_id, key_id)).await?;
            Ok(key)
        })
        .await
    }

    /// Token -> key, one indexed lookup. Malformed tokens never reach the
    /// database.
    pub(crate) async fn authenticate(&self, token: &SecretString) -> Result<ApiKey, RegistryError> {
        let token = token.expose_secret();
        if !crypto::looks_like_api_key(token) {
            return Err(RegistryError::Unauthenticated);
        }
        let hash = crypto::hash_api_key(token);
        let mut conn = self.pool.get().await?;

        api_keys::find_live_by_hash(&mut conn, &hash)
            .await?
            .ok_or(RegistryError::Unauthenticated)
    }

    // -------------------------------------------------- notification types

    pub(crate) async fn list_notification_types(
        &self,
    ) -> Result<Vec<NotificationType>, RegistryError> {
        let mut conn = self.pool.get().await?;

        notification_types::list(&mut conn).await
    }

    pub(crate) async fn get_notification_type(
        &self,
        id: NotificationTypeId,
    ) -> Result<NotificationType, RegistryError> {
        let mut conn = self.pool.get().await?;

        notification_types::find(&mut conn, id)
            .await?
            .ok_or(RegistryError::NotificationTypeNotFound(id))
    }

    pub(crate) async fn create_notification_type(
        &self,
        new: NewNotificationType,
    ) -> Result<NotificationType, RegistryError> {
        let mut conn = self.pool.get().await?;
        conn.transaction(async |conn| {
            let created = notification_types::insert(conn, new).await?;
            changes::record(conn, Change::Catalogue).await?;
            Ok(created)
        })
        .await
    }

    /// Sets or removes the type's payload schema (already compiled); the
    /// next publish of the type on any dispatcher that has learnt the
    /// change applies it.
    pub(crate) async fn set_payload_schema(
        &self,
        id: NotificationTypeId,
        schema: Option<String>,
    ) -> Result<NotificationType, RegistryError> {
        let mut conn = self.pool.get().await?;
        conn.transaction(async |conn| {
            let updated = notification_types::set_payload_schema(conn, id, schema)
                .await?
                .ok_or(RegistryError::NotificationTypeNotFound(id))?;
            changes::record(conn, Change::Catalogue).await?;
            Ok(updated)
        })
        .await
    }

    // ----------------------------------------------------------- changes

    /// The changes after version `after` (at most `limit`), for the caches
    /// of other services.
    pub(crate) async fn changes_since(
        &self,
        after: u64,
        limit: usize,
    ) -> Result<ChangesSince, RegistryError> {
        self.changes.since(after, limit).await
    }

    /// Health events after `after`, in order (for the dispatchers' relay).
    pub(crate) async fn health_events_after(
        &self,
        after: i64,
        limit: i64,
    ) -> Result<Vec<crate::domain::health::HealthEvent>, RegistryError> {
        let mut conn = self.pool.get().await?;
        crate::storage::health_events::after(&mut conn, after, limit).await
    }
}
