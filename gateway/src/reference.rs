//! `/docs`: the API reference, rendered on the server from the same
//! OpenAPI document as `/openapi.json`, with no script, font or style from
//! elsewhere (it must read on a closed network). Each operation shows its
//! parameters, body and answers; each schema its JSON Schema, linked from
//! where it is used.

use maud::{DOCTYPE, Markup, html};
use serde_json::Value;

/// The order the tags are read in.
const TAGS: [&str; 5] = ["callbacks", "echo", "deliveries", "operators", "health"];
const METHODS: [&str; 5] = ["get", "put", "post", "delete", "patch"];

/// The reference page of `document` (the OpenAPI document as JSON).
pub(crate) fn page(document: &Value) -> Markup {
    html! {
        (DOCTYPE)
        html lang="en" {
            (crate::portal::page::head("API reference", None))
            body {
                a.skip href="#main" { "Skip to content" }
                header { span.brand { "Partner Callbacks API" } nav aria-label="Reference" { ul {
                    li { a href="/openapi.json" { "OpenAPI document" } }
                    li { a href="/docs/postman.json" download="partner-callbacks.postman_collection.json" { "Postman collection" } }
                    li { a href="/docs/postman-environment.json" download="local.postman_environment.json" { "Postman environment (local stack)" } }
                    li { a href="/portal" { "Partner portal" } }
                } } }
                main id="main" {
                    h1 { (document["info"]["title"].as_str().unwrap_or("API")) " " (document["info"]["version"].as_str().unwrap_or_default()) }
                    p { (document["info"]["description"].as_str().unwrap_or_default()) }
                    p { "Partners authenticate with " code { "Authorization: Bearer <API key>" } "; operators with the admin key." }
                    (contents(document))
                    @for tag in TAGS { (tag_section(document, tag)) }
                    (schemas(document))
                }
            }
        }
    }
}

/// Every (path, method, operation) of `tag`, in path order.
fn operations<'a>(document: &'a Value, tag: &str) -> Vec<(&'a str, &'static str, &'a Value)> {
    let mut found = Vec::new();
    for (path, item) in document["paths"].as_object().into_iter().flatten() {
        for method in METHODS {
            let operation = &item[method];
            let tagged = operation["tags"]
                .as_array()
                .is_some_and(|tags| tags.iter().any(|t| t == tag));
            if tagged {
                found.push((path.as_str(), method, operation));
            }
        }
    }
    found
}

fn anchor(method: &str, path: &str) -> String {
    let slug: String = path
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() { c } else { '-' })
        .collect();
    format!("{method}{slug}")
}

fn contents(document: &Value) -> Markup {
    html! {
        nav aria-label="Operations" {
            h2 { "Operations" }
            @for tag in TAGS {
                h3 { (tag) }
                ul { @for (path, method, operation) in operations(document, tag) {
                    li { a href={"#" (anchor(method, path))} { code { (method.to_uppercase()) " " (path) } } " " (summary(operation)) }
                } }
            }
        }
    }
}

fn summary(operation: &Value) -> &str {
    operation["summary"]
        .as_str()
        .or(operation["description"].as_str())
        .unwrap_or_default()
        .lines()
        .next()
        .unwrap_or_default()
}

fn tag_section(document: &Value, tag: &str) -> Markup {
    html! {
        section {
            h2 id={"tag-" (tag)} { (tag) }
            @for (path, method, operation) in operations(document, tag) {
                article {
                    h3 id=(anchor(method, path)) { code { (method.to_uppercase()) " " (path) } }
                    @if let Some(description) = operation["description"].as_str() { p { (description) } }
                    @else { p { (summary(operation)) } }
                    (parameters(operation))
                    (body(operation))
                    (responses(operation))
                }
            }
        }
    }
}

/// A schema reference as a link, or the inline schema as JSON.
fn schema(value: &Value) -> Markup {
    match value["$ref"].as_str().and_then(|r| r.rsplit('/').next()) {
        Some(name) => html! { a href={"#schema-" (name)} { code { (name) } } },
        None if value.is_null() => html! {},
        None => html! { code { (value) } },
    }
}

fn parameters(operation: &Value) -> Markup {
    let Some(parameters) = operation["parameters"].as_array().filter(|p| !p.is_empty()) else {
        return html! {};
    };
    html! {
        div.wrap { table {
            caption { "Parameters" }
            thead { tr { th { "Name" } th { "In" } th { "Required" } th { "Schema" } th { "Description" } } }
            tbody { @for p in parameters { tr {
                td { code { (p["name"].as_str().unwrap_or_default()) } }
                td { (p["in"].as_str().unwrap_or_default()) }
                td { @if p["required"].as_bool().unwrap_or(false) { "yes" } @else { "no" } }
                td { (schema(&p["schema"])) }
                td { (p["description"].as_str().unwrap_or_default()) }
            } } }
        } }
    }
}

fn body(operation: &Value) -> Markup {
    let Some(content) = operation["requestBody"]["content"].as_object() else {
        return html! {};
    };
    html! {
        p { "Body: " @for (media, c) in content { code { (media) } " " (schema(&c["schema"])) " " } }
    }
}

fn responses(operation: &Value) -> Markup {
    html! {
        div.wrap { table {
            caption { "Answers" }
            thead { tr { th { "Status" } th { "Description" } th { "Body" } } }
            tbody { @for (status, response) in operation["responses"].as_object().into_iter().flatten() { tr {
                td { (status) }
                td { (response["description"].as_str().unwrap_or_default()) }
                td { @for (media, c) in response["content"].as_object().into_iter().flatten() { code { (media) } " " (schema(&c["schema"])) br; } }
            } } }
        } }
    }
}

fn schemas(document: &Value) -> Markup {
    html! {
        section {
            h2 { "Schemas" }
            @for (name, definition) in document["components"]["schemas"].as_object().into_iter().flatten() {
                h3 id={"schema-" (name)} { (name) }
                pre { (serde_json::to_string_pretty(definition).unwrap_or_default()) }
            }
        }
    }
}
