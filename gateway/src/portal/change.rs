//! Changing a registration: its URL, basic-auth credentials and retry
//! policy in one form. The API's `PUT` takes the whole desired state
//! (what it is not sent, it clears), so the form starts from the
//! registration as it is, keeps its merchant id and a custom retry
//! schedule, and asks again for a password it cannot show.

use std::collections::HashMap;

use axum::extract::{Form, Path};
use axum::response::Response;
use http::StatusCode;
use maud::{Markup, html};
use serde_json::{Value, json};

use super::Session;
use super::api::Refusal;
use super::page::text;

const POLICIES: [(&str, &str); 3] = [
    ("default", "default (about two days)"),
    ("short", "short (about 1 h 45 min)"),
    ("long", "long (about a week)"),
];

/// The change form, filled in from registration `r`.
pub(super) fn form(id: i64, r: &Value) -> Markup {
    let policy = r["retryPolicy"]["name"].as_str().unwrap_or("default");
    html! {
        form method="post" action={"/portal/callbacks/" (id)} {
            (super::callbacks::url_field(text(r, "callBackUrl")))
            label for="user" { "Basic-auth user name (optional)" }
            input id="user" name="user" type="text" autocomplete="off" value=(r["callBackUserName"].as_str().unwrap_or_default());
            label for="password" { "Basic-auth password" }
            p.hint id="password-hint" {
                @if r["hasPassword"].as_bool().unwrap_or(false) {
                    "Set, and never shown: enter it again to save, or clear the user name to remove the credentials."
                } @else { "Optional; needs a user name." }
            }
            input id="password" name="password" type="password" autocomplete="new-password" aria-describedby="password-hint";
            label for="policy" { "Retry policy" }
            select id="policy" name="policy" {
                @for (name, label) in POLICIES { option value=(name) selected[policy == name] { (label) } }
                @if policy == "custom" { option value="custom" selected { "custom (kept as it is)" } }
            }
            div { button type="submit" { "Save" } }
        }
    }
}

/// The `PUT` body for `form` over registration `current`, or why not.
fn body(current: &Value, form: &HashMap<String, String>) -> Result<Value, Refusal> {
    let field = |name: &str| {
        form.get(name)
            .map(|v| v.trim().to_owned())
            .unwrap_or_default()
    };
    let (user, password) = (
        field("user"),
        form.get("password").cloned().unwrap_or_default(),
    );
    let same_user = current["callBackUserName"].as_str() == Some(user.as_str());
    if !user.is_empty()
        && password.is_empty()
        && same_user
        && current["hasPassword"].as_bool() == Some(true)
    {
        return Err(Refusal {
            status: StatusCode::BAD_REQUEST,
            title: "Password needed".to_owned(),
            detail: "this callback sends a password that cannot be shown: enter it again, or clear the user name".to_owned(),
            fields: vec![("callBackPassword".to_owned(), "enter it again to keep it".to_owned())],
        });
    }
    let policy = match field("policy").as_str() {
        "custom" => current["retryPolicy"].clone(),
        name => json!({ "name": if name.is_empty() { "default" } else { name } }),
    };
    let mut body = json!({
        "callBackUrl": field("url"),
        "merchantId": current["merchantId"],
        "retryPolicy": policy,
    });
    if !user.is_empty() {
        body["callBackUserName"] = json!(user);
        body["callBackPassword"] = json!(password);
    }
    Ok(body)
}

pub(super) async fn submit(
    session: Session,
    Path(id): Path<i64>,
    Form(form): Form<HashMap<String, String>>,
) -> Response {
    let uri = session.own(&format!("/callbacks/{id}"));
    let result = match session.api.get(&uri).await {
        Ok(current) => match body(&current, &form) {
            Ok(body) => session.api.put(&uri, body).await,
            Err(refused) => Err(refused),
        },
        Err(refused) => Err(refused),
    };
    super::callbacks::act(session, id, result, "saved").await
}

#[cfg(test)]
mod tests {
    use super::*;

    fn form(pairs: &[(&str, &str)]) -> HashMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect()
    }

    #[test]
    fn what_the_form_does_not_show_is_kept() {
        let current = json!({"merchantId": "m-1", "retryPolicy": {"name": "custom", "scheduleSeconds": [10, 60]}});
        let body = body(
            &current,
            &form(&[("url", "https://a.example/h"), ("policy", "custom")]),
        )
        .unwrap();
        assert_eq!(body["merchantId"], "m-1");
        assert_eq!(body["retryPolicy"]["scheduleSeconds"], json!([10, 60]));
        assert!(body.get("callBackUserName").is_none());
    }

    #[test]
    fn a_kept_password_must_be_entered_again() {
        let current = json!({"callBackUserName": "acme", "hasPassword": true});
        let keep = form(&[("url", "https://a.example/h"), ("user", "acme")]);
        assert_eq!(
            body(&current, &keep).unwrap_err().status,
            StatusCode::BAD_REQUEST
        );
        let again = form(&[
            ("url", "https://a.example/h"),
            ("user", "acme"),
            ("password", "pw"),
        ]);
        assert_eq!(body(&current, &again).unwrap()["callBackPassword"], "pw");
        let removed = form(&[("url", "https://a.example/h"), ("user", "")]);
        assert!(
            body(&current, &removed)
                .unwrap()
                .get("callBackUserName")
                .is_none()
        );
    }
}
