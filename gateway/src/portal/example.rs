//! An example payload for a notification type, made from its JSON Schema:
//! what the portal puts in a test notification's form and shows in the
//! catalogue. It follows the shapes the catalogue uses (an object with
//! required properties, `oneOf` alternatives, typed properties); an
//! `examples` entry in the schema wins.

use serde_json::{Map, Value, json};

/// An example value satisfying `schema` where its shape is a simple one.
pub(super) fn of(schema: &Value) -> Value {
    if let Some(first) = schema["examples"].as_array().and_then(|e| e.first()) {
        return first.clone();
    }
    if let Some(first) = schema["oneOf"]
        .as_array()
        .or(schema["anyOf"].as_array())
        .and_then(|a| a.first())
    {
        let mut merged = schema.clone();
        if let (Some(merged), Some(first)) = (merged.as_object_mut(), first.as_object()) {
            merged.remove("oneOf");
            merged.remove("anyOf");
            for (key, value) in first {
                merged.entry(key.clone()).or_insert_with(|| value.clone());
            }
        }
        return of(&merged);
    }
    if let Some(first) = schema["enum"].as_array().and_then(|e| e.first()) {
        return first.clone();
    }
    match schema["type"].as_str() {
        Some("integer" | "number") => json!(1),
        Some("boolean") => json!(true),
        Some("array") => json!([]),
        Some("string") => json!("example"),
        Some("null") => Value::Null,
        _ if schema.is_null()
            || schema["type"] == "object"
            || schema.get("properties").is_some()
            || schema.get("required").is_some() =>
        {
            object(schema)
        }
        _ => json!("example"),
    }
}

/// The object's required properties, each with an example value; a
/// property whose schema only says "not null" gets a string.
fn object(schema: &Value) -> Value {
    let mut out = Map::new();
    for name in schema["required"].as_array().into_iter().flatten() {
        let Some(name) = name.as_str() else { continue };
        let property = &schema["properties"][name];
        let value = if property.is_null() || property.get("not").is_some() {
            json!(format!("{name}-example"))
        } else {
            of(property)
        };
        out.insert(name.to_owned(), value);
    }
    Value::Object(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_seeded_one_of_gives_its_first_alternative() {
        let schema = json!({
            "type": "object",
            "oneOf": [
                {"required": ["processUniqueId"], "properties": {"processUniqueId": {"not": {"type": "null"}}, "simulationUniqueId": {"type": "null"}}},
                {"required": ["simulationUniqueId"], "properties": {"simulationUniqueId": {"not": {"type": "null"}}, "processUniqueId": {"type": "null"}}}
            ]
        });
        assert_eq!(
            of(&schema),
            json!({"processUniqueId": "processUniqueId-example"})
        );
    }

    #[test]
    fn typed_properties_and_examples() {
        let schema = json!({"type": "object", "required": ["n", "ok", "kind"], "properties": {
            "n": {"type": "integer"}, "ok": {"type": "boolean"}, "kind": {"enum": ["a", "b"]}}});
        assert_eq!(of(&schema), json!({"n": 1, "ok": true, "kind": "a"}));
        assert_eq!(of(&json!({"examples": [{"x": 2}]})), json!({"x": 2}));
        assert_eq!(of(&Value::Null), json!({}), "no schema: an empty object");
    }
}
