//! The partner portal at `/portal`: a partner, signed in, sees and manages their registrations, signing secrets, test
//! notifications, deliveries and recoveries, and reads the catalogue.
//!
//! Server-rendered HTML ([`maud`], escaped by default) with plain forms
//! and one small script of our own for the copy buttons: no front-end
//! build, no CDN, no external font or script, so it works on a closed
//! network and every page works without JavaScript. Every action goes
//! through the REST API in process ([`api`]) with the session's key, so
//! partner isolation, validation and rates are the API's own.
//!
//! Signing in: with the partner's API key, or through a portal link an
//! operator minted (a key of its own that opens the portal only, until it
//! expires; [`sign_in`]). Sessions: [`session`]. Cross-site requests: the cookie is
//! `SameSite=Strict`, and a form post whose `Origin` is not this host is
//! refused ([`same_origin`]).

mod api;
mod callbacks;
mod catalogue;
mod change;
mod deliveries;
mod example;
pub(crate) mod page;
pub(crate) mod session;
mod sign_in;

use std::sync::Arc;
use std::time::Instant;

use axum::Router;
use axum::extract::{FromRequestParts, Request};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use http::request::Parts;
use http::{HeaderMap, Method, StatusCode, header};
use secrecy::ExposeSecret as _;
use uuid::Uuid;

use crate::state::AppState;
use api::Api;
use session::Sealer;

/// What the portal's handlers share: the REST API to call, the state to
/// authenticate sessions with, and the cookie sealer.
#[derive(Clone, Debug)]
pub(crate) struct Portal {
    api: Router,
    state: AppState,
    sealer: Arc<Sealer>,
}

/// A signed-in partner, and the API acting as them.
#[derive(Debug)]
pub(crate) struct Session {
    pub partner: Uuid,
    pub api: Api,
}

impl FromRequestParts<Portal> for Session {
    type Rejection = Response;

    async fn from_request_parts(parts: &mut Parts, portal: &Portal) -> Result<Self, Response> {
        let arrived = Instant::now();
        let Some(key) = session::cookie_value(&parts.headers).and_then(|v| portal.sealer.open(v))
        else {
            return Err(Redirect::to("/portal/sign-in").into_response());
        };
        match crate::auth::partner_of(&portal.state, key.expose_secret(), arrived).await {
            Ok(who) => Ok(Self {
                partner: who.partner_id,
                api: Api::new(portal.api.clone(), key),
            }),
            Err(error) if error.status() == StatusCode::UNAUTHORIZED => Err((
                [(header::SET_COOKIE, session::clear_cookie())],
                Redirect::to("/portal/sign-in?ended=1"),
            )
                .into_response()),
            Err(error) => Err(page::unavailable(error.detail())),
        }
    }
}

/// The portal's routes, acting through `api` (the REST router).
pub(crate) fn router(api: Router, state: AppState, sealer: Sealer) -> Router {
    let portal = Portal {
        api,
        state,
        sealer: Arc::new(sealer),
    };
    Router::new()
        .route(
            "/portal",
            get(|| async { Redirect::to("/portal/callbacks") }),
        )
        .route(
            "/portal/",
            get(|| async { Redirect::to("/portal/callbacks") }),
        )
        .route("/portal/static/portal.css", get(page::stylesheet))
        .route("/portal/static/portal.js", get(page::script))
        .route("/portal/sign-in", get(sign_in::form).post(sign_in::submit))
        .route("/portal/sign-out", post(sign_in::sign_out))
        .route(
            "/portal/link",
            get(sign_in::link_form).post(sign_in::link_submit),
        )
        .merge(callbacks::routes())
        .merge(deliveries::routes())
        .route("/portal/catalogue", get(catalogue::catalogue))
        .layer(middleware::from_fn(same_origin))
        .with_state(portal)
}

/// Refuses a state-changing request whose `Origin` is another site's (a
/// browser sends it with every form post); the `SameSite=Strict` cookie
/// already keeps such a request signed out, this makes it fail loudly.
async fn same_origin(request: Request, next: Next) -> Response {
    if request.method() != Method::GET
        && request.method() != Method::HEAD
        && !from_this_host(request.headers())
    {
        return page::refused_cross_site();
    }
    next.run(request).await
}

fn from_this_host(headers: &HeaderMap) -> bool {
    let Some(origin) = headers.get(header::ORIGIN) else {
        return true;
    };
    let host = headers.get(header::HOST).and_then(|h| h.to_str().ok());
    let origin_host = origin
        .to_str()
        .ok()
        .and_then(|o| o.split_once("://"))
        .map(|(_, rest)| rest);
    matches!((origin_host, host), (Some(o), Some(h)) if o == h)
}

/// The portal's state from the partner's point of view, for handlers.
impl Session {
    /// `/{partner}{rest}`, the partner's own REST path.
    fn own(&self, rest: &str) -> String {
        format!("/{}{rest}", self.partner)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(origin: Option<&str>, host: &str) -> HeaderMap {
        let mut headers = HeaderMap::new();
        headers.insert(header::HOST, host.parse().unwrap());
        if let Some(origin) = origin {
            headers.insert(header::ORIGIN, origin.parse().unwrap());
        }
        headers
    }

    #[test]
    fn only_this_hosts_origin_may_post() {
        assert!(from_this_host(&headers(
            Some("http://127.0.0.1:8080"),
            "127.0.0.1:8080"
        )));
        assert!(from_this_host(&headers(None, "127.0.0.1:8080")));
        assert!(!from_this_host(&headers(
            Some("https://evil.example"),
            "127.0.0.1:8080"
        )));
        assert!(!from_this_host(&headers(Some("null"), "127.0.0.1:8080")));
    }
}
