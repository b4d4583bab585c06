//! A notification type's payload schema: a JSON Schema document that an
//! operator sets on the type, compiled once, and applied to every payload
//! published and every test body sent for the type.
//!
//! The registry compiles a schema before it stores it (so a stored schema
//! always compiles); the dispatcher compiles it again where it applies it.
//! A violation names the place in the payload (a JSON Pointer) and the rule
//! it broke, and never quotes the payload: error texts travel to callers
//! and logs that should not carry partners' data.

use jsonschema::Validator;
use serde_json::Value;

/// The largest schema document accepted, in bytes.
pub const MAX_SCHEMA_BYTES: usize = 64 * 1024;

/// Violations reported for one payload; the rest are counted.
const MAX_REPORTED: usize = 20;

/// The longest `description` quoted from the schema beside a violation.
const MAX_DESCRIPTION_CHARS: usize = 200;

/// A compiled payload schema.
#[derive(Debug)]
pub struct PayloadSchema {
    document: Value,
    validator: Validator,
}

impl PayloadSchema {
    /// Compiles `text`, or says what is wrong with it. Formats (`uuid`,
    /// `date-time`, `email`, ...) are checked, and references must stay
    /// inside the document: nothing is fetched.
    pub fn compile(text: &str) -> Result<Self, String> {
        if text.len() > MAX_SCHEMA_BYTES {
            return Err(format!("must be at most {MAX_SCHEMA_BYTES} bytes"));
        }
        let document: Value =
            serde_json::from_str(text).map_err(|e| format!("is not valid JSON ({e})"))?;
        if !document.is_object() {
            return Err("must be a JSON object (a JSON Schema document)".to_owned());
        }
        if let Err(error) = jsonschema::meta::validate(&document) {
            return Err(format!(
                "is not a valid JSON Schema: at {}: {}",
                pointer(error.instance_path().as_str()),
                error.masked()
            ));
        }
        let validator = jsonschema::options()
            .should_validate_formats(true)
            .build(&document)
            .map_err(|e| {
                format!(
                    "cannot be compiled: at {}: {}",
                    pointer(e.instance_path().as_str()),
                    e.masked()
                )
            })?;
        Ok(Self {
            document,
            validator,
        })
    }

    /// The schema as stored and served: compact JSON.
    pub fn to_text(&self) -> String {
        self.document.to_string()
    }

    /// Every rule `payload` breaks (empty when it conforms), each as
    /// "`<pointer>`: `<rule>`", with the `description` the schema gives the
    /// rule's subschema, when it gives one.
    pub fn violations(&self, payload: &[u8]) -> Vec<String> {
        match serde_json::from_slice::<Value>(payload) {
            Ok(value) => self.violations_of(&value),
            Err(e) => vec![format!("is not valid JSON ({e})")],
        }
    }

    /// As [`PayloadSchema::violations`], for a parsed document.
    pub fn violations_of(&self, value: &Value) -> Vec<String> {
        if self.validator.is_valid(value) {
            return Vec::new();
        }
        let mut found = Vec::new();
        let mut more = 0usize;
        for error in self.validator.iter_errors(value) {
            if found.len() == MAX_REPORTED {
                more += 1;
                continue;
            }
            let mut text = format!(
                "at {}: {}",
                pointer(error.instance_path().as_str()),
                error.masked()
            );
            if let Some(description) = self.description_of(error.schema_path().as_str()) {
                text.push_str(" (");
                text.extend(description.chars().take(MAX_DESCRIPTION_CHARS));
                text.push(')');
            }
            found.push(text);
        }
        if more > 0 {
            found.push(format!("and {more} more violations"));
        }
        found
    }

    /// The `description` of the subschema that holds the keyword at
    /// `keyword_path` (e.g. `/oneOf` -> the root's description).
    fn description_of(&self, keyword_path: &str) -> Option<&str> {
        let parent = keyword_path
            .rsplit_once('/')
            .map_or("", |(parent, _)| parent);
        self.document.pointer(parent)?.get("description")?.as_str()
    }
}

/// A JSON Pointer as people read it: the root is `/`.
fn pointer(path: &str) -> &str {
    if path.is_empty() { "/" } else { path }
}

#[cfg(test)]
mod tests {
    use super::*;

    const EXACTLY_ONE: &str = r#"{
        "type": "object",
        "description": "exactly one of a and b",
        "properties": {"n": {"type": "integer"}, "id": {"type": "string", "format": "uuid"}},
        "oneOf": [{"required": ["a"]}, {"required": ["b"]}]
    }"#;

    #[test]
    fn names_each_broken_rule_with_its_place_and_never_the_value() {
        let schema = PayloadSchema::compile(EXACTLY_ONE).unwrap();
        assert!(schema.violations(br#"{"a": 1, "n": 2}"#).is_empty());
        let found = schema.violations(br#"{"a": "secret-value", "b": 1, "n": "x", "id": "no"}"#);
        assert_eq!(found.len(), 3, "{found:?}");
        assert!(found.iter().any(|v| v.starts_with("at /n: ")), "{found:?}");
        assert!(found.iter().any(|v| v.starts_with("at /id: ")), "{found:?}");
        assert!(
            found
                .iter()
                .any(|v| v.starts_with("at /: ") && v.ends_with("(exactly one of a and b)")),
            "{found:?}"
        );
        assert!(found.iter().all(|v| !v.contains("secret-value")));
        assert_eq!(schema.violations(b"[1]").len(), 2);
        assert!(
            schema
                .violations(b"{")
                .first()
                .unwrap()
                .contains("not valid JSON")
        );
    }

    #[test]
    fn refuses_what_is_not_a_self_contained_schema() {
        for (text, says) in [
            ("{", "not valid JSON"),
            ("true", "JSON object"),
            (r#"{"type": 12}"#, "not a valid JSON Schema: at /type"),
            (
                r#"{"type": "string", "pattern": "(a"}"#,
                "cannot be compiled: at /pattern",
            ),
            (
                r#"{"$ref": "https://example.com/s.json"}"#,
                "cannot be compiled",
            ),
        ] {
            let error = PayloadSchema::compile(text).unwrap_err();
            assert!(error.contains(says), "{text}: {error}");
        }
        let huge = format!(r#"{{"description": "{}"}}"#, "x".repeat(MAX_SCHEMA_BYTES));
        assert!(
            PayloadSchema::compile(&huge)
                .unwrap_err()
                .contains("at most")
        );
    }

    #[test]
    fn reports_at_most_twenty_violations_and_counts_the_rest() {
        let schema = PayloadSchema::compile(r#"{"items": {"type": "string"}}"#).unwrap();
        let found = schema.violations(&serde_json::to_vec(&vec![1; 25]).unwrap());
        assert_eq!(found.len(), MAX_REPORTED + 1);
        assert_eq!(found.last().unwrap(), "and 5 more violations");
    }
}
