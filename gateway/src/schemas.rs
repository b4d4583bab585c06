//! OpenAPI schemas for rules that the derives cannot state: which values a
//! query parameter takes, and the bodies whose fields depend on each other.
//! Each states, for the document, a rule a handler enforces; the handler
//! stays the authority, and schemathesis checks the two agree.

use utoipa::openapi::schema::{
    AdditionalProperties, AllOfBuilder, AnyOfBuilder, ArrayBuilder, ObjectBuilder, OneOfBuilder,
    Schema, SchemaType, Type,
};
use utoipa::openapi::{Ref, RefOr};
use utoipa::{PartialSchema, ToSchema};

use crate::dto::UpsertCallbackBody;

/// `isActive`: which registrations a list shows.
#[derive(Debug, ToSchema)]
#[schema(as = IsActive)]
#[allow(
    dead_code,
    reason = "describes the query parameter in the OpenAPI document only"
)]
pub(crate) enum IsActive {
    #[schema(rename = "true")]
    True,
    #[schema(rename = "false")]
    False,
    #[schema(rename = "all")]
    All,
}

/// `status`: which deliveries a list shows.
#[derive(Debug, ToSchema)]
#[schema(as = DeliveryStatusFilter, rename_all = "lowercase")]
#[allow(
    dead_code,
    reason = "describes the query parameter in the OpenAPI document only"
)]
pub(crate) enum StatusFilter {
    Pending,
    Delivered,
    Failed,
    Cancelled,
}

/// The rawBody's schema for the seeded types 5, 6 and 7: a JSON object in
/// which exactly one of the two ids is given (present and not null), the
/// payload schema those types are seeded with (registry migration
/// `2026-12-09-000000_payload_schemas`). Other types may set others; the
/// catalogue route serves each.
#[derive(Debug)]
pub(crate) struct EchoRawBody;

impl PartialSchema for EchoRawBody {
    fn schema() -> RefOr<Schema> {
        let given = || {
            ObjectBuilder::new().schema_type(SchemaType::from_iter([
                Type::String,
                Type::Number,
                Type::Boolean,
                Type::Object,
                Type::Array,
            ]))
        };
        let only = |id: &str, absent: &str| {
            ObjectBuilder::new()
                .schema_type(Type::Object)
                .required(id)
                .property(id, given())
                .property(absent, ObjectBuilder::new().schema_type(Type::Null))
        };
        OneOfBuilder::new()
            .schema_type(Type::Object)
            .description(Some(
                "Delivered byte for byte, and checked against the type's payload schema \
                 (GET /v1/callbacks/notification-types). For types 5, 6 and 7: exactly one \
                 of processUniqueId and simulationUniqueId is given (present and not null); \
                 both or neither is a 400.",
            ))
            .item(only("processUniqueId", "simulationUniqueId"))
            .item(only("simulationUniqueId", "processUniqueId"))
            .examples([serde_json::json!({
                "processUniqueId": "7c0e5d5e-2b1e-4f7a-9d0e-2f4b5c6d7e8f",
                "status": "completed"
            })])
            .into()
    }
}

impl ToSchema for EchoRawBody {}

/// The PUT body: [`UpsertCallbackBody`], with a password only beside a
/// user name.
#[derive(Debug)]
pub(crate) struct UpsertCallbackRequest;

impl PartialSchema for UpsertCallbackRequest {
    fn schema() -> RefOr<Schema> {
        // No password (absent, null or empty), or a user name (not empty).
        let no_password = ObjectBuilder::new().property(
            "callBackPassword",
            ObjectBuilder::new()
                .schema_type(SchemaType::from_iter([Type::String, Type::Null]))
                .max_length(Some(0)),
        );
        let user_named = ObjectBuilder::new().required("callBackUserName").property(
            "callBackUserName",
            ObjectBuilder::new()
                .schema_type(Type::String)
                .min_length(Some(1)),
        );
        AllOfBuilder::new()
            .item(Ref::from_schema_name(UpsertCallbackBody::name()))
            .item(AnyOfBuilder::new().item(no_password).item(user_named))
            .description(Some("A callBackPassword needs a callBackUserName."))
            .into()
    }
}

impl ToSchema for UpsertCallbackRequest {
    fn schemas(schemas: &mut Vec<(String, RefOr<Schema>)>) {
        schemas.push((
            UpsertCallbackBody::name().into_owned(),
            UpsertCallbackBody::schema(),
        ));
        UpsertCallbackBody::schemas(schemas);
    }
}

/// `retryPolicy` in the PUT body: a named policy without waits, or
/// `custom` with 1 to 20 waits of 1 to 86,400 seconds.
pub(crate) fn retry_policy_choice() -> Schema {
    let policy = |names: &[&str], min, max| {
        let name = ObjectBuilder::new()
            .schema_type(Type::String)
            .enum_values(Some(names.iter().copied()));
        let wait = ObjectBuilder::new()
            .schema_type(Type::Integer)
            .minimum(Some(1))
            .maximum(Some(86_400));
        let waits = ArrayBuilder::new()
            .items(wait)
            .min_items(Some(min))
            .max_items(Some(max));
        ObjectBuilder::new()
            .property("name", name)
            .required("name")
            .property("scheduleSeconds", waits)
            .additional_properties(Some(AdditionalProperties::FreeForm(false)))
    };
    let named = policy(&["default", "short", "long"], 0, 0);
    let custom = policy(&["custom"], 1, 20).required("scheduleSeconds");
    OneOfBuilder::new()
        .item(named)
        .item(custom)
        .item(ObjectBuilder::new().schema_type(Type::Null))
        .description(Some(
            "How long failing deliveries are retried: `default` (the operator's schedule, \
             about two days), `short` (about 1 h 45 min), `long` (about a week), or `custom` \
             with your own waits between attempts, in seconds. Left out or null: `default`.",
        ))
        .into()
}
