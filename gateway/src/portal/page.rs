//! The frame every portal page shares (navigation, notices, the sign-out
//! button), the static files, and the small pieces pages are made of.

use axum::response::{IntoResponse, Response};
use http::{StatusCode, header};
use maud::{DOCTYPE, Markup, html};
use serde_json::Value;

use super::api::Refusal;

/// The portal's sections, as the navigation lists them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Section {
    Callbacks,
    Deliveries,
    Recover,
    Catalogue,
    None,
}

/// A whole page: `title`, the section it belongs to, and its content.
pub(super) fn frame(title: &str, section: Section, signed_in: bool, content: Markup) -> Markup {
    frame_with(title, section, signed_in, None, content)
}

/// A page that reloads itself every `refresh` seconds (while something it
/// shows is still changing).
pub(super) fn frame_with(
    title: &str,
    section: Section,
    signed_in: bool,
    refresh: Option<u32>,
    content: Markup,
) -> Markup {
    let link = |href: &str, label: &str, this: Section| {
        html! {
            li { a href=(href) aria-current=[(section == this).then_some("page")] { (label) } }
        }
    };
    html! {
        (DOCTYPE)
        html lang="en" {
            (head(title, refresh))
            body {
                a.skip href="#main" { "Skip to content" }
                header {
                    span.brand { "Partner Callbacks" }
                    @if signed_in {
                        nav aria-label="Portal" {
                            ul {
                                (link("/portal/callbacks", "Callbacks", Section::Callbacks))
                                (link("/portal/deliveries", "Deliveries", Section::Deliveries))
                                (link("/portal/recoveries", "Recover", Section::Recover))
                                (link("/portal/catalogue", "Notification types", Section::Catalogue))
                                li { a href="/docs" { "API reference" } }
                            }
                        }
                        form.inline method="post" action="/portal/sign-out" {
                            button.secondary type="submit" { "Sign out" }
                        }
                    }
                }
                main id="main" { (content) }
                script src="/portal/static/portal.js" defer {}
            }
        }
    }
}

/// The `<head>` of every page, the API reference's included: the
/// stylesheet served from the binary, nothing from elsewhere.
pub(crate) fn head(title: &str, refresh: Option<u32>) -> Markup {
    html! {
        head {
            meta charset="utf-8";
            meta name="viewport" content="width=device-width, initial-scale=1";
            @if let Some(seconds) = refresh { meta http-equiv="refresh" content=(seconds); }
            title { (title) " · Partner Callbacks" }
            link rel="stylesheet" href="/portal/static/portal.css";
        }
    }
}

/// A refusal of the API, explained: its title, its detail and each field.
pub(super) fn refusal(refused: &Refusal) -> Markup {
    html! {
        div.notice.bad role="alert" {
            strong { (refused.title) }
            @if refused.fields.is_empty() {
                ": " (refused.detail)
            } @else {
                ul { @for (name, reason) in &refused.fields { li { code { (name) } ": " (reason) } } }
            }
        }
    }
}

/// A success notice.
pub(super) fn done(text: &str) -> Markup {
    html! { div.notice.ok role="status" { (text) } }
}

/// A JSON string field, or an empty string.
pub(super) fn text<'a>(value: &'a Value, field: &str) -> &'a str {
    value[field].as_str().unwrap_or_default()
}

/// A timestamp as the API gives it, shortened for reading (UTC).
pub(super) fn when(value: &Value) -> String {
    value
        .as_str()
        .map(|t| t.replace('T', " ").chars().take(19).collect::<String>() + " UTC")
        .unwrap_or_else(|| "—".to_owned())
}

/// A delivery's status as a badge.
pub(super) fn status_badge(status: &str) -> Markup {
    let class = match status {
        "delivered" => "ok",
        "failed" => "bad",
        "pending" => "warn",
        _ => "muted",
    };
    html! { span class={"badge " (class)} { (status) } }
}

/// A page for a refusal that has nowhere else to go.
pub(super) fn refused_page(refused: &Refusal) -> Response {
    let status = refused.status;
    let body = frame(
        &refused.title,
        Section::None,
        true,
        html! { h1 { (refused.title) } (refusal(refused)) p { a href="/portal/callbacks" { "Back to your callbacks" } } },
    );
    (status, body).into_response()
}

pub(super) fn unavailable(detail: &str) -> Response {
    let body = frame(
        "Unavailable",
        Section::None,
        false,
        html! { h1 { "Try again in a moment" } p { "The portal cannot check your session now: " (detail) } },
    );
    (StatusCode::SERVICE_UNAVAILABLE, body).into_response()
}

pub(super) fn refused_cross_site() -> Response {
    let body = frame(
        "Refused",
        Section::None,
        false,
        html! { h1 { "Refused" } p { "This form was sent from another site." } },
    );
    (StatusCode::FORBIDDEN, body).into_response()
}

pub(super) async fn stylesheet() -> Response {
    static_file("text/css; charset=utf-8", include_str!("static/portal.css"))
}

pub(super) async fn script() -> Response {
    static_file(
        "text/javascript; charset=utf-8",
        include_str!("static/portal.js"),
    )
}

fn static_file(content_type: &'static str, body: &'static str) -> Response {
    (
        [
            (header::CONTENT_TYPE, content_type),
            (header::CACHE_CONTROL, "public, max-age=3600"),
        ],
        body,
    )
        .into_response()
}
