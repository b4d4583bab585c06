//! The notification-type catalogue: each type with its description,
//! whether it takes test notifications, its payload schema and an example.

use axum::response::{IntoResponse, Response};
use maud::html;

use super::Session;
use super::page::{self, Section, text};

pub(super) async fn catalogue(session: Session) -> Response {
    let types = match super::callbacks::types(&session).await {
        Ok(types) => types,
        Err(refused) => return page::refused_page(&refused),
    };
    let content = html! {
        h1 { "Notification types" }
        @for t in &types {
            @let id = t["notificationTypeId"].as_i64().unwrap_or_default();
            section {
                h2 id={"type-" (id)} { (text(t, "name")) " (" (id) ")" }
                p { (text(t, "description")) }
                p { @if t["echoable"].as_bool().unwrap_or(false) { span.badge.ok { "test notifications allowed" } } @else { span.badge.muted { "no test notifications" } } }
                @if t["payloadSchema"].is_null() {
                    p.hint { "Any JSON object." }
                } @else {
                    details { summary { "Payload schema" } pre { (serde_json::to_string_pretty(&t["payloadSchema"]).unwrap_or_default()) } }
                    p { "Example:" } pre { (serde_json::to_string_pretty(&super::example::of(&t["payloadSchema"])).unwrap_or_default()) }
                }
            }
        }
    };
    page::frame("Notification types", Section::Catalogue, true, content).into_response()
}
