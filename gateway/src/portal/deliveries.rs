//! Deliveries: browsing them by type and status, one with its attempts,
//! redelivery, and recovery in bulk with its dry run first.

use std::collections::HashMap;

use axum::Router;
use axum::extract::{Form, Path, Query};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use maud::{Markup, html};
use serde_json::{Value, json};

use super::page::{self, Section, status_badge, text, when};
use super::{Portal, Session};

pub(super) fn routes() -> Router<Portal> {
    Router::new()
        .route("/portal/deliveries", get(list))
        .route("/portal/deliveries/{id}", get(show))
        .route("/portal/deliveries/{id}/redeliver", post(redeliver))
        .route("/portal/recoveries", get(recover_form).post(recover))
        .route("/portal/recoveries/{id}", get(recovery))
}

/// A table of deliveries (as a page of the API lists them).
pub(super) fn table(deliveries: &[Value]) -> Markup {
    html! {
        @if deliveries.is_empty() {
            p.empty { "No deliveries here yet." }
        } @else {
            div.wrap { table {
                thead { tr { th { "Delivery" } th { "Status" } th { "Attempts" } th { "Created" } th { "Next attempt" } } }
                tbody { @for d in deliveries {
                    tr {
                        td.mono { a href={"/portal/deliveries/" (text(d, "deliveryId"))} { (text(d, "deliveryId")) } @if d["isTest"].as_bool().unwrap_or(false) { " " span.badge.muted { "test" } } }
                        td { (status_badge(text(d, "status"))) }
                        td { (d["attemptCount"].as_i64().unwrap_or_default()) }
                        td { (when(&d["createdAt"])) }
                        td { (when(&d["nextAttemptAt"])) }
                    }
                } }
            } }
        }
    }
}

const STATUSES: [&str; 4] = ["pending", "delivered", "failed", "cancelled"];

/// The filters of the deliveries page, as its form sent them.
struct Filters {
    kind: Option<i64>,
    status: Option<String>,
    /// `datetime-local` values (UTC), as typed.
    since: String,
    until: String,
    page: u32,
}

impl Filters {
    fn of(query: &HashMap<String, String>, types: &[i64]) -> Self {
        let field = |name: &str| {
            query
                .get(name)
                .map(|v| v.trim().to_owned())
                .unwrap_or_default()
        };
        Self {
            kind: query
                .get("type")
                .and_then(|t| t.parse().ok())
                .or(types.first().copied()),
            status: query
                .get("status")
                .filter(|s| STATUSES.contains(&s.as_str()))
                .cloned(),
            since: field("since"),
            until: field("until"),
            page: query
                .get("page")
                .and_then(|p| p.parse().ok())
                .unwrap_or(1)
                .max(1),
        }
    }

    /// The query string of these filters on `page`, for the API (`api`:
    /// times as RFC 3339) or for this page's own links.
    fn query(&self, page: u32, api: bool) -> String {
        let mut pairs = url::form_urlencoded::Serializer::new(String::new());
        if let Some(status) = &self.status {
            pairs.append_pair("status", status);
        }
        for (name, value) in [("since", &self.since), ("until", &self.until)] {
            if !value.is_empty() {
                pairs.append_pair(name, &if api { utc(value) } else { value.clone() });
            }
        }
        if api {
            pairs.append_pair("pageSize", "25");
            pairs.append_pair("pageNumber", &page.to_string());
        } else {
            pairs.append_pair("type", &self.kind.unwrap_or_default().to_string());
            pairs.append_pair("page", &page.to_string());
        }
        pairs.finish()
    }
}

async fn list(session: Session, Query(query): Query<HashMap<String, String>>) -> Response {
    let registrations = match session
        .api
        .get(&session.own("/callbacks?pageSize=100"))
        .await
    {
        Ok(page) => page["results"].as_array().cloned().unwrap_or_default(),
        Err(refused) => return page::refused_page(&refused),
    };
    let types: Vec<i64> = registrations
        .iter()
        .filter_map(|r| r["notificationType"].as_i64())
        .collect();
    let filters = Filters::of(&query, &types);
    let found = match filters.kind {
        Some(id) => {
            let uri = session.own(&format!(
                "/callbacks/{id}/deliveries?{}",
                filters.query(filters.page, true)
            ));
            Some(session.api.get(&uri).await)
        }
        None => None,
    };
    let content = html! {
        h1 { "Deliveries" }
        (filter_form(&types, &filters))
        @match found {
            None => p.empty { "No callbacks yet, so no deliveries. " a href="/portal/callbacks/new" { "Register a callback" } },
            Some(Err(refused)) => (page::refusal(&refused)),
            Some(Ok(page)) => {
                (table(page["results"].as_array().map(Vec::as_slice).unwrap_or_default()))
                (pager(&page, &filters))
            }
        }
    };
    page::frame("Deliveries", Section::Deliveries, true, content).into_response()
}

fn filter_form(types: &[i64], filters: &Filters) -> Markup {
    html! {
        form method="get" action="/portal/deliveries" {
            label for="type" { "Notification type" }
            select id="type" name="type" { @for id in types { option value=(id) selected[Some(*id) == filters.kind] { (id) } } }
            label for="status" { "Status" }
            select id="status" name="status" {
                option value="" { "any" }
                @for s in STATUSES { option value=(s) selected[filters.status.as_deref() == Some(s)] { (s) } }
            }
            label for="since" { "Published from (UTC)" }
            input id="since" name="since" type="datetime-local" value=(filters.since);
            label for="until" { "Published before (UTC)" }
            input id="until" name="until" type="datetime-local" value=(filters.until);
            div { button type="submit" { "Show" } }
        }
    }
}

fn pager(page: &Value, filters: &Filters) -> Markup {
    let number = u32::try_from(page["pageNumber"].as_u64().unwrap_or(1)).unwrap_or(1);
    let link = |n: u32| format!("/portal/deliveries?{}", filters.query(n, false));
    html! {
        nav aria-label="Pages" {
            @if page["hasPreviousPage"].as_bool().unwrap_or(false) { a href=(link(number - 1)) { "Newer" } " " }
            @if page["hasNextPage"].as_bool().unwrap_or(false) { a href=(link(number + 1)) { "Older" } }
        }
    }
}

async fn show(
    session: Session,
    Path(id): Path<String>,
    Query(query): Query<HashMap<String, String>>,
) -> Response {
    let delivery = match session
        .api
        .get(&format!("/v1/callbacks/deliveries/{id}"))
        .await
    {
        Ok(delivery) => delivery,
        Err(refused) => return page::refused_page(&refused),
    };
    let pending = text(&delivery, "status") == "pending";
    let content = html! {
        h1 { "Delivery " span.mono { (id) } }
        @if query.contains_key("redelivered") { (page::done("Scheduled again: it is attempted in a moment.")) }
        dl {
            dt { "Status" } dd { (status_badge(text(&delivery, "status"))) @if delivery["isTest"].as_bool().unwrap_or(false) { " " span.badge.muted { "test" } } }
            dt { "Notification type" } dd { a href={"/portal/callbacks/" (delivery["notificationType"])} { (delivery["notificationType"]) } }
            dt { "Event" } dd.mono { (text(&delivery, "eventId")) }
            dt { "Created" } dd { (when(&delivery["createdAt"])) }
            dt { "Next attempt" } dd { (when(&delivery["nextAttemptAt"])) }
        }
        @if pending { p.hint { "This page reloads every 2 seconds while the delivery is pending." } }
        @else {
            form method="post" action={"/portal/deliveries/" (id) "/redeliver"} { button type="submit" { "Redeliver" } }
        }
        h2 { "Attempts" }
        (attempts(delivery["attempts"].as_array().map(Vec::as_slice).unwrap_or_default()))
    };
    page::frame_with(
        "Delivery",
        Section::Deliveries,
        true,
        pending.then_some(2),
        content,
    )
    .into_response()
}

fn attempts(attempts: &[Value]) -> Markup {
    html! {
        @if attempts.is_empty() {
            p.empty { "No attempt yet." }
        } @else {
            div.wrap { table {
                thead { tr { th { "#" } th { "Started" } th { "Answer" } th { "Took" } th { "Failure" } th { "Response excerpt" } } }
                tbody { @for a in attempts {
                    tr {
                        td { (a["attemptNumber"]) }
                        td { (when(&a["startedAt"])) }
                        td { @if let Some(status) = a["responseStatus"].as_i64() { (status) } @else { "none" } }
                        td { (a["durationMs"].as_i64().unwrap_or_default()) " ms" }
                        td { (a["failureKind"].as_str().unwrap_or("—")) @if let Some(error) = a["error"].as_str() { div.hint { (error) } } }
                        td.mono { (a["responseExcerpt"].as_str().unwrap_or_default()) }
                    }
                } }
            } }
        }
    }
}

async fn redeliver(session: Session, Path(id): Path<String>) -> Response {
    match session
        .api
        .post(&format!("/v1/callbacks/deliveries/{id}/redeliver"), None)
        .await
    {
        Ok(_) => Redirect::to(&format!("/portal/deliveries/{id}?redelivered=1")).into_response(),
        Err(refused) => page::refused_page(&refused),
    }
}

async fn recover_form(_session: Session) -> Response {
    // The last day, to the minute: the range a partner most often means.
    let now = chrono::Utc::now();
    let minute = |t: chrono::DateTime<chrono::Utc>| t.format("%Y-%m-%dT%H:%M").to_string();
    let form = HashMap::from([
        ("since".to_owned(), minute(now - chrono::Duration::days(1))),
        (
            "until".to_owned(),
            minute(now + chrono::Duration::minutes(1)),
        ),
    ]);
    recover_page(None, &form).into_response()
}

fn recover_page(result: Option<Markup>, form: &HashMap<String, String>) -> Markup {
    let field = |name: &str| form.get(name).cloned().unwrap_or_default();
    let content = html! {
        h1 { "Recover failed deliveries" }
        p { "Sends again every failed delivery (and, if you choose, every cancelled one) created in a time range, paced by your endpoint's limits. Look first: the dry run says how many and over which span." }
        @if let Some(result) = result { (result) }
        form method="post" action="/portal/recoveries" {
            label for="type" { "Notification type (empty: all)" }
            input id="type" name="type" type="text" inputmode="numeric" value=(field("type"));
            label for="since" { "From (UTC)" }
            input id="since" name="since" type="datetime-local" value=(field("since")) required;
            label for="until" { "Until (UTC)" }
            input id="until" name="until" type="datetime-local" value=(field("until")) required;
            label { input type="checkbox" name="cancelled" value="1" checked[form.contains_key("cancelled")]; " Include cancelled deliveries" }
            div {
                button.secondary type="submit" name="run" value="dry" { "Dry run" }
                button type="submit" name="run" value="real" { "Recover" }
            }
        }
    };
    page::frame("Recover", Section::Recover, true, content)
}

/// A `datetime-local` value as RFC 3339 in UTC.
fn utc(local: &str) -> String {
    match local.len() {
        16 => format!("{local}:00Z"),
        _ => format!("{local}Z"),
    }
}

async fn recover(session: Session, Form(form): Form<HashMap<String, String>>) -> Response {
    let kind = form.get("type").map(|t| t.trim()).filter(|t| !t.is_empty());
    let dry = form.get("run").map(String::as_str) != Some("real");
    let body = json!({
        "dryRun": dry,
        "includeCancelled": form.contains_key("cancelled"),
        "notificationType": kind.map(|k| k.parse::<i64>().map_or_else(|_| json!(k), |n| json!(n))),
        "since": utc(form.get("since").map(String::as_str).unwrap_or_default()),
        "until": utc(form.get("until").map(String::as_str).unwrap_or_default()),
    });
    let uri = format!("/v1/callbacks/recoveries/{}", session.partner);
    match session.api.post(&uri, Some(body)).await {
        Ok(view) if dry => {
            let total = view["total"].as_i64().unwrap_or_default();
            let result = html! {
                div.notice.ok role="status" {
                    strong { (total) " deliveries" } " would be sent again"
                    @if total > 0 { ", created from " (when(&view["earliest"])) " to " (when(&view["latest"])) }
                    "."
                }
            };
            recover_page(Some(result), &form).into_response()
        }
        Ok(view) => Redirect::to(&format!("/portal/recoveries/{}", text(&view, "recoveryId")))
            .into_response(),
        Err(refused) => {
            let status = refused.status;
            (status, recover_page(Some(page::refusal(&refused)), &form)).into_response()
        }
    }
}

async fn recovery(session: Session, Path(id): Path<String>) -> Response {
    let uri = format!("/v1/callbacks/recoveries/{}/{id}", session.partner);
    let view = match session.api.get(&uri).await {
        Ok(view) => view,
        Err(refused) => return page::refused_page(&refused),
    };
    let running = view["finishedAt"].is_null();
    let content = html! {
        h1 { "Recovery " span.mono { (id) } }
        dl {
            dt { "State" } dd { (text(&view, "state")) }
            dt { "Sent again" } dd { (view["resent"]) " of " (view["total"]) }
            dt { "Range" } dd { (when(&view["since"])) " to " (when(&view["until"])) }
            dt { "Finished" } dd { (when(&view["finishedAt"])) }
        }
        @if running { p.hint { "This page reloads every 2 seconds until the recovery finishes." } }
    };
    page::frame_with(
        "Recovery",
        Section::Recover,
        true,
        running.then_some(2),
        content,
    )
    .into_response()
}
