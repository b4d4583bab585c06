//! Who is calling. Partners send `Authorization: Bearer <api key>`; the
//! registry says which partner a key belongs to, and the answer is kept
//! ([`KeyCache`]) and used once the registry's changes up to the request's
//! arrival are known, so a revoked key or a disabled partner is refused
//! from the next request on, on every replica. A key opens only its own
//! partner's paths. Operators send the admin key from configuration,
//! compared in constant time. Each partner request counts against the
//! partner's rate ([`crate::limits`]).

use std::time::Instant;

use axum::extract::{FromRequestParts, RawPathParams};
use http::header::AUTHORIZATION;
use http::request::Parts;
use secrecy::ExposeSecret;
use subtle::ConstantTimeEq;
use uuid::Uuid;

pub(crate) use crate::key_cache::KeyCache;
use crate::problem::ApiError;
use crate::state::AppState;

/// A partner whose API key checked out.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Partner {
    pub partner_id: Uuid,
}

/// A partner acting under its own path: the key checked, and the path's
/// `{partnerUniqueID}` parsed and found to be the key's partner. Every
/// route under a partner's path takes this rather than [`Partner`], so no
/// handler can forget the check: another partner's id answers 403 and
/// never that partner's data.
#[derive(Debug, Clone, Copy)]
pub(crate) struct OwnPartner {
    pub partner_id: Uuid,
}

/// The path parameter that names the partner.
const PARTNER_PARAM: &str = "partnerUniqueID";

impl Partner {
    fn require(&self, path_partner: Uuid) -> Result<(), ApiError> {
        if self.partner_id == path_partner {
            Ok(())
        } else {
            Err(ApiError::forbidden(
                "this API key does not belong to the partner in the path",
            ))
        }
    }
}

/// Marks a request the partner portal makes to the API in process. Only
/// such a request may carry a portal link's key: a request from outside
/// cannot set a request extension.
#[derive(Debug, Clone, Copy)]
pub(crate) struct PortalCall;

/// Whom a token authenticates: the partner, and whether the token is a
/// portal link's (which opens the portal only).
#[derive(Debug, Clone, Copy)]
pub(crate) struct Authenticated {
    pub partner_id: Uuid,
    pub portal_only: bool,
}

/// An operator holding the admin key.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Operator;

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
        let arrived = Instant::now();
        let token = bearer(parts)?;
        let who = partner_of(state, token, arrived).await?;
        if who.portal_only && parts.extensions.get::<PortalCall>().is_none() {
            return Err(ApiError::unauthorized(
                "this token is a portal link's: it opens the partner portal only",
            ));
        }
        state.limits.request(who.partner_id)?;
        Ok(Partner {
            partner_id: who.partner_id,
        })
    }
}

/// The partner whose key `token` is, as of a request that arrived at
/// `arrived`: from the cache when its answer is current, else from the
/// registry (and then cached, unless it is a portal link's: those expire
/// by the clock, so the registry is asked each time).
pub(crate) async fn partner_of(
    state: &AppState,
    token: &str,
    arrived: Instant,
) -> Result<Authenticated, ApiError> {
    if let Some(partner_id) = state.auth_cache.check(token, arrived).await {
        return Ok(Authenticated {
            partner_id,
            portal_only: false,
        });
    }
    let tag = state.auth_cache.applied();
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
    if let Ok(key_id) = Uuid::try_parse(&response.key_id)
        && !response.portal_only
    {
        state.auth_cache.put(token, partner_id, key_id, tag);
    }
    Ok(Authenticated {
        partner_id,
        portal_only: response.portal_only,
    })
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

impl FromRequestParts<AppState> for OwnPartner {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        let auth = Partner::from_request_parts(parts, state).await?;
        let params = RawPathParams::from_request_parts(parts, state)
            .await
            .map_err(|_| ApiError::internal())?;
        let Some((_, raw)) = params.iter().find(|(name, _)| *name == PARTNER_PARAM) else {
            tracing::error!("a route without {{{PARTNER_PARAM}}} asks for its partner");
            return Err(ApiError::internal());
        };
        let partner_id = crate::routes::guid(PARTNER_PARAM, raw)?;
        auth.require(partner_id)?;
        Ok(Self { partner_id })
    }
}
