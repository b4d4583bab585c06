//! The registry's health events, read in order for the relay
//! (`service::health`).

use callbacks_proto::registry::v1 as pb;

use super::RegistryClient;
use crate::domain::DispatchError;

impl RegistryClient {
    /// Up to `limit` health events numbered after `after`, in order.
    pub(crate) async fn health_events(
        &self,
        after: i64,
        limit: u32,
    ) -> Result<Vec<pb::HealthEvent>, DispatchError> {
        let answer = self
            .client
            .clone()
            .list_health_events(pb::ListHealthEventsRequest {
                after_id: after,
                limit,
            })
            .await
            .map_err(|status| {
                DispatchError::Unavailable(format!(
                    "the registry's health events could not be read: {}",
                    status.message()
                ))
            })?;
        Ok(answer.into_inner().events)
    }
}
