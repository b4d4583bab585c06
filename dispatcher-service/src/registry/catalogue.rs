//! The notification-type catalogue as publishing needs it: which types
//! exist, and the payload schema each applies, compiled once per schema
//! text (not per read, not per publish).
//!
//! A read is tagged with the registry version applied when it was asked,
//! like a resolution, and is stale once a catalogue change after that tag
//! is applied (`Resolutions::catalogue_changed`).

use std::sync::Arc;
use std::time::{Duration, Instant};

use callbacks_proto::registry::v1 as pb;
use foldhash::{HashMap, HashMapExt as _};
use service_kit::payload_schema::PayloadSchema;

/// What publishing may do with a type.
#[derive(Debug, Clone)]
pub enum TypeRules {
    /// Not in the catalogue: refused.
    Unknown,
    /// In the catalogue; payloads must satisfy the schema, if there is one.
    Known(Option<Arc<PayloadSchema>>),
}

#[derive(Debug)]
struct Kind {
    /// The schema's text as the registry answered it, and its compilation.
    schema: Option<(String, Arc<PayloadSchema>)>,
}

#[derive(Debug, Default)]
pub(super) struct Catalogue {
    types: HashMap<i32, Kind>,
    /// The version the read was tagged with, and when it was made.
    read: Option<(u64, Instant)>,
}

impl Catalogue {
    pub(super) fn new() -> Self {
        Self {
            types: HashMap::new(),
            read: None,
        }
    }

    pub(super) fn was_read(&self) -> bool {
        self.read.is_some()
    }

    /// Whether the read is younger than `ttl` and no catalogue change
    /// newer than its tag (`changed`) has been applied.
    pub(super) fn is_current(&self, changed: u64, ttl: Duration) -> bool {
        self.read
            .is_some_and(|(tag, at)| tag >= changed && at.elapsed() < ttl)
    }

    pub(super) fn rules(&self, id: i32) -> TypeRules {
        match self.types.get(&id) {
            None => TypeRules::Unknown,
            Some(kind) => TypeRules::Known(kind.schema.as_ref().map(|(_, s)| s.clone())),
        }
    }

    /// Replaces the catalogue with the registry's answer, asked with `tag`.
    /// A schema whose text is unchanged keeps its compilation. One that
    /// does not compile here (the registry compiled it, so only a version
    /// skew between the two could cause it) is not applied: refusing every
    /// event of the type would lose them.
    pub(super) fn refresh(&mut self, answer: Vec<pb::NotificationType>, tag: u64) {
        let mut types = HashMap::with_capacity(answer.len());
        for t in answer {
            let id = t.notification_type_id;
            let kept = self
                .types
                .remove(&id)
                .and_then(|kind| kind.schema)
                .filter(|(text, _)| Some(text) == t.payload_schema_json.as_ref());
            let schema = kept.or_else(|| {
                let text = t.payload_schema_json?;
                match PayloadSchema::compile(&text) {
                    Ok(schema) => Some((text, Arc::new(schema))),
                    Err(error) => {
                        tracing::error!(notification.type = id, %error, "cannot compile the type's payload schema; its payloads are not checked");
                        None
                    }
                }
            });
            types.insert(id, Kind { schema });
        }
        self.types = types;
        self.read = Some((tag, Instant::now()));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn kind(id: i32, schema: Option<&str>) -> pb::NotificationType {
        pb::NotificationType {
            notification_type_id: id,
            payload_schema_json: schema.map(str::to_owned),
            ..Default::default()
        }
    }

    fn schema_of(catalogue: &Catalogue, id: i32) -> Option<Arc<PayloadSchema>> {
        match catalogue.rules(id) {
            TypeRules::Known(schema) => schema,
            TypeRules::Unknown => panic!("type {id} is unknown"),
        }
    }

    #[test]
    fn a_read_is_current_until_a_newer_catalogue_change_or_its_age() {
        let mut catalogue = Catalogue::new();
        let hour = Duration::from_secs(3600);
        assert!(!catalogue.is_current(0, hour));
        catalogue.refresh(vec![kind(5, None)], 4);
        assert!(catalogue.is_current(4, hour));
        assert!(!catalogue.is_current(5, hour));
        assert!(!catalogue.is_current(0, Duration::ZERO));
        assert!(matches!(catalogue.rules(9), TypeRules::Unknown));
    }

    #[test]
    fn an_unchanged_schema_keeps_its_compilation_and_a_changed_one_is_compiled() {
        let mut catalogue = Catalogue::new();
        let object = r#"{"type":"object"}"#;
        catalogue.refresh(vec![kind(5, Some(object)), kind(6, None)], 1);
        let first = schema_of(&catalogue, 5).unwrap();
        assert!(schema_of(&catalogue, 6).is_none());

        catalogue.refresh(vec![kind(5, Some(object)), kind(6, Some("{}"))], 2);
        assert!(Arc::ptr_eq(&first, &schema_of(&catalogue, 5).unwrap()));
        assert!(schema_of(&catalogue, 6).is_some());

        catalogue.refresh(vec![kind(5, Some(r#"{"type":"array"}"#))], 3);
        let second = schema_of(&catalogue, 5).unwrap();
        assert!(!Arc::ptr_eq(&first, &second));
        assert!(second.violations(b"[]").is_empty());
        assert!(matches!(catalogue.rules(6), TypeRules::Unknown));
    }

    #[test]
    fn a_schema_that_does_not_compile_here_checks_nothing() {
        let mut catalogue = Catalogue::new();
        catalogue.refresh(vec![kind(5, Some("not json"))], 1);
        assert!(schema_of(&catalogue, 5).is_none());
    }
}
