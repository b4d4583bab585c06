// The diesel view of `migrations/`. Kept in step with the migrations by
// `tests/it/schema.rs`, which compares it with the migrated database.

diesel::table! {
    attempts (delivery_id, attempt_number) {
        delivery_id -> Uuid,
        attempt_number -> Int4,
        registration_id -> Nullable<Uuid>,
        started_at -> Timestamptz,
        duration_ms -> Int4,
        response_status -> Nullable<Int4>,
        error -> Nullable<Text>,
        response_excerpt -> Text,
        failure_kind -> Nullable<Text>,
    }
}

diesel::table! {
    deliveries (id) {
        id -> Uuid,
        event_id -> Uuid,
        partner_id -> Uuid,
        notification_type -> Int4,
        is_test -> Bool,
        status -> Text,
        attempt_count -> Int4,
        series_attempts -> Int4,
        next_attempt_at -> Timestamptz,
        lease_token -> Nullable<Uuid>,
        last_error -> Nullable<Text>,
        last_response_status -> Nullable<Int4>,
        created_at -> Timestamptz,
        updated_at -> Timestamptz,
        completed_at -> Nullable<Timestamptz>,
        ordering_key -> Nullable<Text>,
        ordering_seq -> Nullable<Int8>,
    }
}

diesel::table! {
    health_relay (only_row) {
        only_row -> Bool,
        after_id -> Int8,
    }
}

diesel::table! {
    events (id) {
        id -> Uuid,
        partner_id -> Uuid,
        notification_type -> Int4,
        payload -> Bytea,
        idempotency_key -> Nullable<Text>,
        is_test -> Bool,
        has_subscriber -> Bool,
        occurred_at -> Timestamptz,
        trace_context -> Nullable<Text>,
        created_at -> Timestamptz,
        delivery_id -> Nullable<Uuid>,
        erased_at -> Nullable<Timestamptz>,
        ordering_key -> Nullable<Text>,
    }
}

diesel::joinable!(attempts -> deliveries (delivery_id));
diesel::joinable!(deliveries -> events (event_id));

diesel::allow_tables_to_appear_in_same_query!(attempts, deliveries, events);
