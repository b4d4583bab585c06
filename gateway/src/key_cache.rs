//! Successful API-key checks, kept between requests and used only once the
//! registry's changes up to the request's arrival are applied
//! ([`service_kit::freshness`], `ListChanges`): a key revoked or a partner
//! disabled before a request arrives is refused, on every replica, while a
//! burst of requests still costs one registry call. Each check is tagged
//! with the registry version applied when it was asked, as the
//! dispatcher's resolutions are; one that a sync overtook is not kept.

use std::collections::HashMap;
use std::sync::Arc;

use parking_lot::Mutex;
use std::time::{Duration, Instant};

use callbacks_proto::registry::v1 as pb;
use callbacks_proto::registry::v1::registry_service_client::RegistryServiceClient;
use pb::registry_change::Kind;
use service_kit::freshness::Freshness;
use service_kit::telemetry::OutboundChannel;
use uuid::Uuid;

/// Beyond this many entries, expired ones are dropped, then all.
const MAX_ENTRIES: usize = 10_000;

#[derive(Debug)]
pub(crate) struct KeyCache {
    /// The longest a check is kept, changes or none; zero keeps none.
    ttl: Duration,
    checks: Arc<Mutex<Checks>>,
    freshness: Arc<Freshness>,
    registry: RegistryServiceClient<OutboundChannel>,
}

#[derive(Debug, Default)]
struct Checks {
    entries: HashMap<SecretKey, Check>,
    /// Every change up to this version is applied.
    applied: u64,
}

#[derive(Debug, Clone, Copy)]
struct Check {
    partner_id: Uuid,
    key_id: Uuid,
    tag: u64,
    expires: Instant,
}

/// A token as a map key that never shows up in `Debug`.
#[derive(PartialEq, Eq, Hash)]
struct SecretKey(String);

impl std::fmt::Debug for SecretKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SecretKey(..)")
    }
}

impl Checks {
    fn apply(&mut self, answer: &pb::ListChangesResponse) {
        if !answer.complete {
            self.entries.clear();
        }
        for change in &answer.changes {
            let stale = |check: &Check| check.tag < change.version;
            match change.kind() {
                Kind::ApiKey => match Uuid::try_parse(&change.api_key_id) {
                    Ok(key) => self
                        .entries
                        .retain(|_, check| check.key_id != key || !stale(check)),
                    Err(_) => self.entries.clear(),
                },
                Kind::Partner => match Uuid::try_parse(&change.partner_id) {
                    Ok(partner) => self
                        .entries
                        .retain(|_, check| check.partner_id != partner || !stale(check)),
                    Err(_) => self.entries.clear(),
                },
                // Registrations and the catalogue are not key checks.
                Kind::Callback | Kind::Catalogue => {}
                Kind::Unspecified => self.entries.clear(),
            }
        }
        self.applied = self.applied.max(answer.version);
    }
}

impl KeyCache {
    pub(crate) fn new(ttl: Duration, registry: RegistryServiceClient<OutboundChannel>) -> Self {
        Self {
            ttl,
            checks: Arc::new(Mutex::new(Checks::default())),
            freshness: Freshness::new(),
            registry,
        }
    }

    fn checks(&self) -> parking_lot::MutexGuard<'_, Checks> {
        self.checks.lock()
    }

    fn cached(&self, token: &str) -> Option<Uuid> {
        self.checks()
            .entries
            .get(&SecretKey(token.to_owned()))
            .filter(|check| check.expires > Instant::now())
            .map(|check| check.partner_id)
    }

    /// The partner of `token` if a check is kept and still holds for a
    /// request that arrived at `arrived`; `None` means: ask the registry.
    pub(crate) async fn check(&self, token: &str, arrived: Instant) -> Option<Uuid> {
        self.cached(token)?;
        let (registry, checks) = (self.registry.clone(), self.checks.clone());
        let sync = move || async move {
            let after = checks.lock().applied;
            let answer = registry
                .clone()
                .list_changes(pb::ListChangesRequest {
                    after_version: after,
                })
                .await
                .map_err(|status| status.message().to_owned())?
                .into_inner();
            checks.lock().apply(&answer);
            Ok(())
        };
        // Unknown changes: ask the registry about the key itself instead.
        self.freshness.since(arrived, sync).await.ok()?;
        self.cached(token)
    }

    /// The version to tag a check about to be asked with.
    pub(crate) fn applied(&self) -> u64 {
        self.checks().applied
    }

    /// Keeps a check asked with `tag`, unless a sync has applied changes
    /// since.
    pub(crate) fn put(&self, token: &str, partner_id: Uuid, key_id: Uuid, tag: u64) {
        if self.ttl.is_zero() {
            return;
        }
        let now = Instant::now();
        let mut checks = self.checks();
        if tag != checks.applied {
            return;
        }
        if checks.entries.len() >= MAX_ENTRIES {
            checks.entries.retain(|_, check| check.expires > now);
            if checks.entries.len() >= MAX_ENTRIES {
                checks.entries.clear();
            }
        }
        let check = Check {
            partner_id,
            key_id,
            tag,
            expires: now + self.ttl,
        };
        checks.entries.insert(SecretKey(token.to_owned()), check);
    }

    /// Forgets every check (after a revocation through this gateway).
    pub(crate) fn clear(&self) {
        self.checks().entries.clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn change(version: u64, kind: Kind, partner: Uuid, key: Uuid) -> pb::RegistryChange {
        let mut change = pb::RegistryChange {
            version,
            partner_id: partner.to_string(),
            api_key_id: key.to_string(),
            ..Default::default()
        };
        change.set_kind(kind);
        change
    }

    fn check(partner_id: Uuid, key_id: Uuid, tag: u64) -> Check {
        Check {
            partner_id,
            key_id,
            tag,
            expires: Instant::now() + Duration::from_secs(60),
        }
    }

    #[test]
    fn a_revoked_key_or_a_disabled_partner_is_forgotten() {
        let (p1, p2, k1, k2, k3) = (
            Uuid::new_v4(),
            Uuid::new_v4(),
            Uuid::new_v4(),
            Uuid::new_v4(),
            Uuid::new_v4(),
        );
        let mut checks = Checks::default();
        checks
            .entries
            .insert(SecretKey("a".into()), check(p1, k1, 0));
        checks
            .entries
            .insert(SecretKey("b".into()), check(p1, k2, 0));
        checks
            .entries
            .insert(SecretKey("c".into()), check(p2, k3, 0));
        checks.apply(&pb::ListChangesResponse {
            version: 2,
            complete: true,
            changes: vec![change(2, Kind::ApiKey, p1, k1)],
        });
        assert!(!checks.entries.contains_key(&SecretKey("a".into())));
        assert!(checks.entries.contains_key(&SecretKey("b".into())));
        checks.apply(&pb::ListChangesResponse {
            version: 3,
            complete: true,
            changes: vec![change(3, Kind::Partner, p1, Uuid::nil())],
        });
        assert!(!checks.entries.contains_key(&SecretKey("b".into())));
        assert!(checks.entries.contains_key(&SecretKey("c".into())));
        // A registration change is not a key check's business.
        checks.apply(&pb::ListChangesResponse {
            version: 4,
            complete: true,
            changes: vec![change(4, Kind::Callback, p2, Uuid::nil())],
        });
        assert!(checks.entries.contains_key(&SecretKey("c".into())));
        checks.apply(&pb::ListChangesResponse {
            version: 9,
            complete: false,
            changes: Vec::new(),
        });
        assert!(checks.entries.is_empty());
        assert_eq!(checks.applied, 9);
    }
}
