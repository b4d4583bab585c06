//! A partner's registrations: the list, one registration with its secret,
//! test notification and recent deliveries, and the forms that change them.

use std::collections::HashMap;

use axum::Router;
use axum::extract::{Form, Path, Query};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use maud::{Markup, html};
use serde_json::{Value, json};

use super::api::Refusal;
use super::page::{self, Section, text, when};
use super::{Portal, Session};

pub(super) fn routes() -> Router<Portal> {
    Router::new()
        .route("/portal/callbacks", get(list).post(create))
        .route("/portal/callbacks/new", get(new_form))
        .route(
            "/portal/callbacks/{type}",
            get(show).post(super::change::submit),
        )
        .route("/portal/callbacks/{type}/pause", post(pause))
        .route("/portal/callbacks/{type}/resume", post(resume))
        .route("/portal/callbacks/{type}/delete", post(delete))
        .route("/portal/callbacks/{type}/secret", get(reveal))
        .route("/portal/callbacks/{type}/secret/rotate", post(rotate))
        .route("/portal/callbacks/{type}/echo", post(echo))
}

/// What a form sent, by field name.
type Fields = Form<HashMap<String, String>>;

/// The notification types, by id.
pub(super) async fn types(session: &Session) -> Result<Vec<Value>, Refusal> {
    let list = session.api.get("/v1/callbacks/notification-types").await?;
    Ok(list["results"].as_array().cloned().unwrap_or_default())
}

fn type_name(types: &[Value], id: i64) -> String {
    types
        .iter()
        .find(|t| t["notificationTypeId"].as_i64() == Some(id))
        .map_or_else(
            || format!("type {id}"),
            |t| format!("{} ({id})", text(t, "name")),
        )
}

/// A registration's state as badges.
fn state_badges(registration: &Value) -> Markup {
    html! {
        @if !registration["isActive"].as_bool().unwrap_or(true) {
            span.badge.muted { "deleted" } " "
        }
        @if !registration["pausedAt"].is_null() {
            span.badge.warn { "paused" } " "
        }
        @if registration["isInErrorState"].as_bool().unwrap_or(false) {
            span.badge.bad { "in error state" }
        } @else {
            span.badge.ok { "healthy" }
        }
    }
}

async fn list(session: Session) -> Response {
    let page = session
        .api
        .get(&session.own("/callbacks?pageSize=100"))
        .await;
    let (registrations, types) = match (page, types(&session).await) {
        (Ok(page), Ok(types)) => (
            page["results"].as_array().cloned().unwrap_or_default(),
            types,
        ),
        (Err(refused), _) | (_, Err(refused)) => return page::refused_page(&refused),
    };
    let content = html! {
        h1 { "Your callbacks" }
        p { a.button href="/portal/callbacks/new" { "Register a callback" } }
        @if registrations.is_empty() {
            p.empty { "No callbacks yet. Register one to start receiving notifications." }
        } @else {
            div.wrap { table {
                thead { tr { th { "Notification type" } th { "URL" } th { "State" } th { "Error since" } } }
                tbody { @for r in &registrations {
                    @let id = r["notificationType"].as_i64().unwrap_or_default();
                    tr {
                        td { a href={"/portal/callbacks/" (id)} { (type_name(&types, id)) } }
                        td.mono { (text(r, "callBackUrl")) }
                        td { (state_badges(r)) @if let Some(reason) = r["errorStateReason"].as_str() { div.hint { (reason) } } }
                        td { (when(&r["detectedErrorStateAt"])) }
                    }
                } }
            } }
        }
    };
    page::frame("Callbacks", Section::Callbacks, true, content).into_response()
}

async fn new_form(session: Session) -> Response {
    match types(&session).await {
        Ok(types) => new_page(&types, None, "", "").into_response(),
        Err(refused) => page::refused_page(&refused),
    }
}

fn new_page(types: &[Value], refused: Option<&Refusal>, chosen: &str, url: &str) -> Markup {
    let content = html! {
        h1 { "Register a callback" }
        @if let Some(refused) = refused { (page::refusal(refused)) }
        form method="post" action="/portal/callbacks" {
            label for="type" { "Notification type" }
            select id="type" name="type" required {
                @for t in types {
                    @let id = t["notificationTypeId"].as_i64().unwrap_or_default().to_string();
                    option value=(id) selected[id == chosen] { (text(t, "name")) " (" (id) ")" }
                }
            }
            (url_field(url))
            div { button type="submit" { "Register" } }
        }
    };
    page::frame("Register a callback", Section::Callbacks, true, content)
}

pub(super) fn url_field(url: &str) -> Markup {
    html! {
        label for="url" { "Callback URL" }
        p.hint id="url-hint" {
            "An " code { "https://" } " URL on the public internet that answers a POST with a 2xx. "
            "Private, loopback and link-local addresses are refused, and so are credentials in the URL."
        }
        input id="url" name="url" type="url" value=(url) required aria-describedby="url-hint";
    }
}

async fn create(session: Session, Form(form): Fields) -> Response {
    let chosen = form.get("type").cloned().unwrap_or_default();
    let url = form.get("url").cloned().unwrap_or_default();
    let uri = session.own(&format!("/callbacks/{chosen}"));
    match session.api.put(&uri, json!({ "callBackUrl": url })).await {
        Ok(_) => Redirect::to(&format!("/portal/callbacks/{chosen}?done=saved")).into_response(),
        Err(refused) => {
            let types = types(&session).await.unwrap_or_default();
            (
                refused.status,
                new_page(&types, Some(&refused), &chosen, &url),
            )
                .into_response()
        }
    }
}

/// What a detail page shows besides the registration.
#[derive(Default)]
struct Extras {
    notice: Option<Markup>,
    secret: Option<Value>,
}

async fn show(
    session: Session,
    Path(id): Path<i64>,
    Query(query): Query<HashMap<String, String>>,
) -> Response {
    let notice = query
        .get("done")
        .and_then(|done| done_text(done))
        .map(page::done);
    detail(
        &session,
        id,
        Extras {
            notice,
            secret: None,
        },
    )
    .await
}

fn done_text(done: &str) -> Option<&'static str> {
    Some(match done {
        "saved" => "Saved: the next event goes to this URL.",
        "paused" => "Paused: events are kept and delivered when you resume.",
        "resumed" => "Resumed: waiting events are on their way.",
        "rotated" => "Rotated: new deliveries are signed with the new secret.",
        _ => return None,
    })
}

async fn detail(session: &Session, id: i64, extras: Extras) -> Response {
    let registration = session
        .api
        .get(&session.own(&format!("/callbacks/{id}")))
        .await;
    let deliveries = session
        .api
        .get(&session.own(&format!("/callbacks/{id}/deliveries?pageSize=10")))
        .await;
    let (registration, types) = match (registration, types(session).await) {
        (Ok(r), Ok(t)) => (r, t),
        (Err(refused), _) | (_, Err(refused)) => return page::refused_page(&refused),
    };
    let kind = types
        .iter()
        .find(|t| t["notificationTypeId"].as_i64() == Some(id))
        .cloned()
        .unwrap_or(Value::Null);
    let recent = deliveries
        .map(|page| page["results"].as_array().cloned().unwrap_or_default())
        .unwrap_or_default();
    let content = html! {
        h1 { (type_name(&types, id)) }
        @if let Some(notice) = &extras.notice { (notice) }
        (registration_facts(&registration))
        (change_forms(id, &registration))
        (secret_section(id, extras.secret.as_ref()))
        (echo_section(id, &kind))
        h2 { "Recent deliveries" }
        (super::deliveries::table(&recent))
    };
    page::frame(&type_name(&types, id), Section::Callbacks, true, content).into_response()
}

fn registration_facts(r: &Value) -> Markup {
    html! {
        dl {
            dt { "URL" } dd.mono { (text(r, "callBackUrl")) }
            dt { "State" } dd { (state_badges(r)) }
            @if let Some(reason) = r["errorStateReason"].as_str() {
                dt { "Error" } dd { (reason) " (since " (when(&r["detectedErrorStateAt"])) ")" }
            }
            @if !r["pausedAt"].is_null() {
                dt { "Paused" } dd { (when(&r["pausedAt"])) @if let Some(reason) = r["pauseReason"].as_str() { ": " (reason) } }
            }
            dt { "Retry policy" } dd { (r["retryPolicy"]["name"].as_str().unwrap_or("default")) }
            dt { "Signatures" } dd { (r["signatureScheme"].as_str().unwrap_or("hmac-sha256")) }
            dt { "Registration id" } dd.mono { (text(r, "registrationId")) }
            dt { "Updated" } dd { (when(&r["updatedAt"])) }
        }
    }
}

fn change_forms(id: i64, r: &Value) -> Markup {
    let paused = !r["pausedAt"].is_null();
    html! {
        h2 { "Change" }
        (super::change::form(id, r))
        @if paused {
            form.inline method="post" action={"/portal/callbacks/" (id) "/resume"} {
                button type="submit" { "Resume deliveries" }
            }
        } @else {
            form.inline method="post" action={"/portal/callbacks/" (id) "/pause"} {
                button.secondary type="submit" { "Pause deliveries" }
            }
        }
        form.inline method="post" action={"/portal/callbacks/" (id) "/delete"} {
            button.danger type="submit" { "Delete this callback" }
        }
    }
}

fn secret_section(id: i64, secret: Option<&Value>) -> Markup {
    html! {
        h2 { "Signing secret" }
        p.hint { "Verify each delivery's " code { "webhook-signature" } " with it (Standard Webhooks)." }
        @if let Some(secret) = secret {
            @let shown = secret["secret"].as_str().or(secret["publicKey"].as_str()).unwrap_or_default();
            p { code.secret id="secret" { (shown) } " " button.secondary type="button" data-copy="secret" hidden { "Copy" } }
            @if let Some(expires) = secret["previousSecretExpiresAt"].as_str() {
                p.hint { "The previous secret still signs until " (expires) "." }
            }
        } @else {
            p { a.button.secondary href={"/portal/callbacks/" (id) "/secret"} { "Reveal secret" } }
        }
        form method="post" action={"/portal/callbacks/" (id) "/secret/rotate"} {
            button.secondary type="submit" { "Rotate secret" }
            span.hint { " The previous one keeps signing for a day, so your receiver can switch." }
        }
    }
}

fn echo_section(id: i64, kind: &Value) -> Markup {
    let echoable = kind["echoable"].as_bool().unwrap_or(false);
    let example = super::example::of(&kind["payloadSchema"]);
    html! {
        h2 { "Test notification" }
        @if echoable {
            p.hint { "Sends this body to your URL, marked as a test (header " code { "partner-callbacks-test: true" } ")." }
            form method="post" action={"/portal/callbacks/" (id) "/echo"} {
                label for="body" { "Body (JSON)" }
                textarea id="body" name="body" { (serde_json::to_string_pretty(&example).unwrap_or_default()) }
                div { button type="submit" { "Send test notification" } }
            }
            @if !kind["payloadSchema"].is_null() {
                details { summary { "The type's payload schema" } pre { (serde_json::to_string_pretty(&kind["payloadSchema"]).unwrap_or_default()) } }
            }
        } @else {
            p.empty { "This notification type cannot be sent as a test." }
        }
    }
}

/// Runs `action` on registration `id`; back to its page with `done`, or the
/// page with the refusal explained.
pub(super) async fn act(
    session: Session,
    id: i64,
    action: Result<Value, Refusal>,
    done: &str,
) -> Response {
    match action {
        Ok(_) => Redirect::to(&format!("/portal/callbacks/{id}?done={done}")).into_response(),
        Err(refused) => refused_on_detail(&session, id, &refused).await,
    }
}

/// Registration `id`'s page with `refused` explained at its top, answered
/// with the refusal's status.
async fn refused_on_detail(session: &Session, id: i64, refused: &Refusal) -> Response {
    let notice = Some(page::refusal(refused));
    let extras = Extras {
        notice,
        secret: None,
    };
    let mut response = detail(session, id, extras).await;
    *response.status_mut() = refused.status;
    response
}

async fn pause(session: Session, Path(id): Path<i64>) -> Response {
    let uri = session.own(&format!("/callbacks/{id}/pause"));
    let result = session.api.post(&uri, None).await;
    act(session, id, result, "paused").await
}

async fn resume(session: Session, Path(id): Path<i64>) -> Response {
    let uri = session.own(&format!("/callbacks/{id}/resume"));
    let result = session.api.post(&uri, None).await;
    act(session, id, result, "resumed").await
}

async fn delete(session: Session, Path(id): Path<i64>) -> Response {
    match session
        .api
        .delete(&session.own(&format!("/callbacks/{id}")))
        .await
    {
        Ok(_) => Redirect::to("/portal/callbacks").into_response(),
        Err(refused) => page::refused_page(&refused),
    }
}

async fn reveal(session: Session, Path(id): Path<i64>) -> Response {
    match session
        .api
        .get(&session.own(&format!("/callbacks/{id}/secret")))
        .await
    {
        Ok(secret) => {
            detail(
                &session,
                id,
                Extras {
                    notice: None,
                    secret: Some(secret),
                },
            )
            .await
        }
        Err(refused) => page::refused_page(&refused),
    }
}

async fn rotate(session: Session, Path(id): Path<i64>) -> Response {
    let uri = session.own(&format!("/callbacks/{id}/secret/rotate"));
    match session.api.post(&uri, None).await {
        Ok(secret) => {
            let notice = done_text("rotated").map(page::done);
            detail(
                &session,
                id,
                Extras {
                    notice,
                    secret: Some(secret),
                },
            )
            .await
        }
        Err(refused) => page::refused_page(&refused),
    }
}

async fn echo(session: Session, Path(id): Path<i64>, Form(form): Fields) -> Response {
    let body = form.get("body").cloned().unwrap_or_default();
    let uri = format!("/v1/callbacks/echo/{}/{id}", session.partner);
    match session.api.post_raw(&uri, body).await {
        Ok(accepted) => Redirect::to(&format!(
            "/portal/deliveries/{}",
            text(&accepted, "deliveryId")
        ))
        .into_response(),
        Err(refused) => refused_on_detail(&session, id, &refused).await,
    }
}
