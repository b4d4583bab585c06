//! Signing in with an API key or through a portal link an operator
//! minted, and out.

use std::collections::HashMap;
use std::time::Instant;

use axum::Form;
use axum::extract::{Query, State};
use axum::response::{IntoResponse, Redirect, Response};
use http::{StatusCode, header};
use maud::{Markup, html};

use super::page::{self, Section};
use super::{Portal, session};

pub(super) async fn form(Query(query): Query<HashMap<String, String>>) -> Markup {
    let ended = query.contains_key("ended");
    sign_in_page(ended.then_some(
        "Your session ended: the key was revoked, or the session timed out. Sign in again.",
    ))
}

fn sign_in_page(problem: Option<&str>) -> Markup {
    page::frame(
        "Sign in",
        Section::None,
        false,
        html! {
            h1 { "Sign in to the partner portal" }
            @if let Some(problem) = problem {
                div.notice.bad role="alert" { (problem) }
            }
            form method="post" action="/portal/sign-in" {
                label for="key" { "API key" }
                p.hint id="key-hint" { "The key your operator issued you (it starts with " code { "pcb_" } "). It stays in this browser's session cookie, sealed, and is never shown again." }
                input id="key" name="key" type="password" autocomplete="current-password" required aria-describedby="key-hint";
                div { button type="submit" { "Sign in" } }
            }
        },
    )
}

pub(super) async fn submit(
    State(portal): State<Portal>,
    Form(form): Form<HashMap<String, String>>,
) -> Response {
    let key = form.get("key").map(|k| k.trim()).unwrap_or_default();
    if key.is_empty() {
        return (
            StatusCode::BAD_REQUEST,
            sign_in_page(Some("Enter your API key.")),
        )
            .into_response();
    }
    start(&portal, key, || {
        sign_in_page(Some(
            "That key is not valid: check it, or ask your operator for a new one.",
        ))
    })
    .await
}

/// Starts a session for `token` (an API key or a portal link's key), or
/// answers 401 with `refused`.
async fn start(portal: &Portal, token: &str, refused: impl FnOnce() -> Markup) -> Response {
    match crate::auth::partner_of(&portal.state, token, Instant::now()).await {
        Ok(_) => match portal.sealer.seal(token) {
            Some(cookie) => (
                [(
                    header::SET_COOKIE,
                    session::set_cookie(&cookie, portal.sealer.lasts()),
                )],
                Redirect::to("/portal/callbacks"),
            )
                .into_response(),
            None => page::unavailable("the session could not be sealed"),
        },
        Err(error) if error.status() == StatusCode::UNAUTHORIZED => {
            (StatusCode::UNAUTHORIZED, refused()).into_response()
        }
        Err(error) => page::unavailable(error.detail()),
    }
}

/// A portal link opened: a button to go on, so that a link scanner that
/// fetches it starts nothing.
pub(super) async fn link_form(Query(query): Query<HashMap<String, String>>) -> Markup {
    let token = query.get("token").cloned().unwrap_or_default();
    page::frame(
        "Open the portal",
        Section::None,
        false,
        html! {
            h1 { "Open the partner portal" }
            p { "Your operator sent you this link. It opens the portal for your account until it expires." }
            form method="post" action="/portal/link" {
                input type="hidden" name="token" value=(token);
                button type="submit" { "Open the portal" }
            }
        },
    )
}

pub(super) async fn link_submit(
    State(portal): State<Portal>,
    Form(form): Form<HashMap<String, String>>,
) -> Response {
    let token = form.get("token").map(|t| t.trim()).unwrap_or_default();
    start(&portal, token, link_refused).await
}

fn link_refused() -> Markup {
    page::frame(
        "Link not valid",
        Section::None,
        false,
        html! {
            h1 { "This link does not open the portal" }
            div.notice.bad role="alert" { "It has expired or was revoked. Ask your operator for a new one, or sign in with your API key." }
            p { a href="/portal/sign-in" { "Sign in with an API key" } }
        },
    )
}

pub(super) async fn sign_out() -> Response {
    (
        [(header::SET_COOKIE, session::clear_cookie())],
        Redirect::to("/portal/sign-in"),
    )
        .into_response()
}
