//! Who is calling. Partners send `Authorization: Bearer <api key>`; the
//! registry says which partner a key belongs to, and the answer is kept for
//! a short while so that a burst of requests costs one registry call. A key
//! opens only its own partner's paths. Operators send the admin key from
//! configuration, compared in constant time.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use axum::extract::FromRequestParts;
use http::header::AUTHORIZATION;
use http::request::Parts;
use secrecy::ExposeSecret;
use subtle::ConstantTimeEq;
use uuid::Uuid;

use crate::problem::ApiError;
use crate::state::AppState;

/// A partner whose API key checked out.
#[derive(Debug, Clone, Copy)]
pub struct Partner {
    pub partner_id: Uuid,
}

impl Partner {
    /// The key must belong to the partner named in the path: another
    /// partner's id answers 403 and never that partner's data.
    pub fn require(&self, path_partner: Uuid) -> Result<(), ApiError> {
        if self.partner_id == path_partner {
            Ok(())
        } else {
            Err(ApiError::forbidden(
                "this API key does not belong to the partner in the path",
            ))
        }
    }
}

/// An operator holding the admin key.
#[derive(Debug, Clone, Copy)]
pub struct Operator;

fn bearer(parts: &Parts) -> Result<&str, ApiError> {
    let value = parts
        .headers
        .get(AUTHORIZATION)
        .ok_or_else(|| ApiError::unauthorized("send an API key as Authorization: Bearer <key>"))?;
    let value = value
        .to_str()
        .map_err(|_| ApiError::unauthorized("the Authorization header is not valid text"))?;
    match value.split_once(' ') {
        Some((scheme, token))
            if scheme.eq_ignore_ascii_case("bearer") && !token.trim().is_empty() =>
        {
            Ok(token.trim())
        }
        _ => Err(ApiError::unauthorized(
            "the Authorization header must be: Bearer <key>",
        )),
    }
}

impl FromRequestParts<AppState> for Partner {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        let token = bearer(parts)?;
        if let Some(partner_id) = state.auth_cache.get(token) {
            return Ok(Partner { partner_id });
        }
        let response = state
            .registry()
            .authenticate(crate::state::grpc_request(
                callbacks_proto::registry::v1::AuthenticateRequest {
                    token: token.to_owned(),
                },
            ))
            .await
            .map_err(ApiError::from)?
            .into_inner();
        let partner_id = Uuid::try_parse(&response.partner_id).map_err(|_| {
            tracing::error!("the registry answered a malformed partner id");
            ApiError::internal()
        })?;
        state.auth_cache.put(token, partner_id);
        Ok(Partner { partner_id })
    }
}

impl FromRequestParts<AppState> for Operator {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        let token = bearer(parts)?;
        let Some(admin) = &state.admin_api_key else {
            return Err(ApiError::unauthorized(
                "the operator API is disabled: no admin key is configured",
            ));
        };
        if bool::from(token.as_bytes().ct_eq(admin.expose_secret().as_bytes())) {
            Ok(Operator)
        } else {
            Err(ApiError::unauthorized("invalid admin key"))
        }
    }
}

/// Successful key checks, remembered for `ttl`. Bounded: when full, expired
/// entries are dropped, and if that frees nothing, everything is.
#[derive(Debug)]
pub struct AuthCache {
    ttl: Duration,
    entries: Mutex<HashMap<SecretKey, (Uuid, Instant)>>,
}

const MAX_ENTRIES: usize = 10_000;

/// A token as a map key that never shows up in `Debug`.
#[derive(PartialEq, Eq, Hash)]
struct SecretKey(String);

impl std::fmt::Debug for SecretKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SecretKey(..)")
    }
}

impl AuthCache {
    pub fn new(ttl: Duration) -> Self {
        Self {
            ttl,
            entries: Mutex::new(HashMap::new()),
        }
    }

    pub fn get(&self, token: &str) -> Option<Uuid> {
        if self.ttl.is_zero() {
            return None;
        }
        let entries = self
            .entries
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        entries
            .get(&SecretKey(token.to_owned()))
            .filter(|(_, expires)| *expires > Instant::now())
            .map(|(partner, _)| *partner)
    }

    /// Forgets every remembered check (after a revocation).
    pub fn clear(&self) {
        self.entries
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .clear();
    }

    pub fn put(&self, token: &str, partner_id: Uuid) {
        if self.ttl.is_zero() {
            return;
        }
        let now = Instant::now();
        let mut entries = self
            .entries
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        if entries.len() >= MAX_ENTRIES {
            entries.retain(|_, (_, expires)| *expires > now);
            if entries.len() >= MAX_ENTRIES {
                entries.clear();
            }
        }
        entries.insert(SecretKey(token.to_owned()), (partner_id, now + self.ttl));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cache_remembers_until_ttl() {
        let cache = AuthCache::new(Duration::from_secs(60));
        let id = Uuid::new_v4();
        assert_eq!(cache.get("t"), None);
        cache.put("t", id);
        assert_eq!(cache.get("t"), Some(id));
        let off = AuthCache::new(Duration::ZERO);
        off.put("t", id);
        assert_eq!(off.get("t"), None);
    }
}
