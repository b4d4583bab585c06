//! Who may call an internal gRPC service, and which of its methods.
//!
//! Each caller (the gateway, the dispatcher, an operator's CLI, a platform
//! service that publishes) presents a token of its own, as
//! `authorization: Bearer <token>`. A service is configured with
//! `role=token` pairs and keeps only their SHA-256 digests; its policy says
//! which roles may call each method. An unknown or missing token is
//! `UNAUTHENTICATED`, a known one outside its role `PERMISSION_DENIED`.
//! Health and reflection stay open: probes, and `grpcurl list`/`describe`,
//! reveal no data. The caller's role goes into the request's extensions,
//! so that a handler can narrow further (the dispatcher's unscoped
//! delivery reads are for operators only).
//!
//! Per-caller tokens rather than mutual TLS: every caller is named and can
//! be revoked (rotate by configuring the new token beside the old one),
//! the check is the same behind any proxy or mesh, and no certificate
//! authority has to be run for the local stack. Tokens travel in the
//! clear unless the channel is encrypted: in production the channel is a
//! mesh's mutual TLS, and the NetworkPolicies keep strangers off the ports
//! in the first place.

use secrecy::{ExposeSecret as _, SecretString};
use std::collections::HashMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use anyhow::Context as _;

/// The shortest token accepted: 128 bits of base64.
const MIN_TOKEN_LEN: usize = 22;

/// Who is calling: a configured role, or anybody (a service started open,
/// for tests and local experiments only).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Caller {
    Role(&'static str),
    Open,
}

impl Caller {
    /// Whether the caller may act as `role` (an open service lets anybody).
    pub fn is(&self, role: &str) -> bool {
        match self {
            Caller::Role(r) => *r == role,
            Caller::Open => true,
        }
    }
}

/// The tokens a service accepts, by the digest of each.
#[derive(Debug, Clone)]
pub struct Callers {
    roles: Option<Arc<HashMap<[u8; 32], &'static str>>>,
}

fn digest(token: &str) -> [u8; 32] {
    let digest = ring::digest::digest(&ring::digest::SHA256, token.as_bytes());
    digest.as_ref().try_into().expect("SHA-256 is 32 bytes")
}

impl Callers {
    /// Parses `role=token` pairs; each role must be one of `roles`.
    pub fn parse<'a>(
        pairs: impl IntoIterator<Item = &'a str>,
        roles: &'static [&'static str],
    ) -> anyhow::Result<Self> {
        let mut by_digest = HashMap::new();
        for pair in pairs {
            let (role, token) = pair.split_once('=').context("a caller is role=token")?;
            let role = roles.iter().find(|r| **r == role.trim()).with_context(|| {
                format!("unknown caller role {role:?}; roles: {}", roles.join(", "))
            })?;
            let token = token.trim();
            anyhow::ensure!(
                token.len() >= MIN_TOKEN_LEN,
                "the {role} token is shorter than {MIN_TOKEN_LEN} characters"
            );
            by_digest.insert(digest(token), *role);
        }
        anyhow::ensure!(
            !by_digest.is_empty(),
            "no callers are configured: give each internal caller a token (role=token; roles: {})",
            roles.join(", ")
        );
        Ok(Self {
            roles: Some(Arc::new(by_digest)),
        })
    }

    /// The configured `role=token` entries, or anybody when `open` (a
    /// service's `--open-grpc`).
    pub fn configured(
        open: bool,
        entries: &[SecretString],
        roles: &'static [&'static str],
    ) -> anyhow::Result<Self> {
        if open {
            Ok(Self::open())
        } else {
            Self::parse(entries.iter().map(|e| e.expose_secret()), roles)
        }
    }

    /// Every call allowed, as [`Caller::Open`]. Never the default of a
    /// binary: it must be asked for by name.
    pub fn open() -> Self {
        Self { roles: None }
    }

    pub fn is_open(&self) -> bool {
        self.roles.is_none()
    }

    fn caller(&self, headers: &http::HeaderMap) -> Option<Caller> {
        let Some(roles) = &self.roles else {
            return Some(Caller::Open);
        };
        let token = headers
            .get(http::header::AUTHORIZATION)?
            .to_str()
            .ok()?
            .strip_prefix("Bearer ")?;
        roles
            .get(&digest(token.trim()))
            .map(|role| Caller::Role(role))
    }
}

/// Which roles may call a method (by its name, e.g. `ResolveCallback`).
pub type Policy = fn(&str) -> &'static [&'static str];

/// The server layer that enforces [`Callers`] and a [`Policy`].
#[derive(Debug, Clone)]
pub struct CallerLayer {
    callers: Callers,
    policy: Policy,
}

impl CallerLayer {
    pub fn new(callers: Callers, policy: Policy) -> Self {
        Self { callers, policy }
    }
}

impl<S> tower::Layer<S> for CallerLayer {
    type Service = CallerService<S>;

    fn layer(&self, inner: S) -> Self::Service {
        CallerService {
            inner,
            layer: self.clone(),
        }
    }
}

#[derive(Debug, Clone)]
pub struct CallerService<S> {
    inner: S,
    layer: CallerLayer,
}

impl<S, B, RB> tower::Service<http::Request<B>> for CallerService<S>
where
    S: tower::Service<http::Request<B>, Response = http::Response<RB>> + Send,
    S::Future: Send + 'static,
    S::Error: Send + 'static,
    RB: Default + Send + 'static,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = Pin<Box<dyn Future<Output = Result<S::Response, S::Error>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut request: http::Request<B>) -> Self::Future {
        let path = request.uri().path().trim_start_matches('/');
        let (service, method) = path.split_once('/').unwrap_or((path, ""));
        if service.starts_with("grpc.health.") || service.starts_with("grpc.reflection.") {
            return Box::pin(self.inner.call(request));
        }
        let refused = match self.layer.callers.caller(request.headers()) {
            None => Some(tonic::Status::unauthenticated(
                "send this caller's token as authorization: Bearer <token>",
            )),
            Some(caller) => {
                let allowed = (self.layer.policy)(method);
                if allowed.iter().any(|role| caller.is(role)) {
                    request.extensions_mut().insert(caller);
                    None
                } else {
                    Some(tonic::Status::permission_denied(format!(
                        "{method} is not open to this caller"
                    )))
                }
            }
        };
        match refused {
            Some(status) => Box::pin(std::future::ready(Ok(status.into_http()))),
            None => Box::pin(self.inner.call(request)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const ROLES: &[&str] = &["gateway", "dispatcher"];

    fn headers(token: Option<&str>) -> http::HeaderMap {
        let mut headers = http::HeaderMap::new();
        if let Some(token) = token {
            headers.insert(
                http::header::AUTHORIZATION,
                format!("Bearer {token}").parse().unwrap(),
            );
        }
        headers
    }

    #[test]
    fn tokens_name_their_roles_and_nothing_else_passes() {
        let callers = Callers::parse(
            [
                "gateway=gateway-token-0123456789abcdef",
                "dispatcher = dispatcher-token-0123456789abc",
            ],
            ROLES,
        )
        .unwrap();
        assert_eq!(
            callers.caller(&headers(Some("gateway-token-0123456789abcdef"))),
            Some(Caller::Role("gateway"))
        );
        assert_eq!(
            callers.caller(&headers(Some("dispatcher-token-0123456789abc"))),
            Some(Caller::Role("dispatcher"))
        );
        assert_eq!(callers.caller(&headers(Some("guess"))), None);
        assert_eq!(callers.caller(&headers(None)), None);
        assert_eq!(Callers::open().caller(&headers(None)), Some(Caller::Open));
    }

    #[test]
    fn bad_configurations_are_refused() {
        let parse = |pairs: &[&str]| {
            Callers::parse(pairs.iter().copied(), ROLES)
                .map(|_| ())
                .unwrap_err()
                .to_string()
        };
        assert!(parse(&[]).contains("no callers"));
        assert!(parse(&["operator=0123456789abcdef0123456789"]).contains("unknown caller role"));
        assert!(parse(&["gateway=short"]).contains("shorter than"));
        assert!(parse(&["gateway"]).contains("role=token"));
    }
}
