// The diesel view of `migrations/`. Kept in step with the migrations by
// `tests/it/schema.rs`, which compares it with the migrated database.

diesel::table! {
    api_keys (id) {
        id -> Uuid,
        partner_id -> Uuid,
        label -> Text,
        token_hash -> Bytea,
        token_prefix -> Text,
        created_at -> Timestamptz,
        revoked_at -> Nullable<Timestamptz>,
        portal_only -> Bool,
        expires_at -> Nullable<Timestamptz>,
    }
}

diesel::table! {
    health_events (id) {
        id -> Int8,
        partner_id -> Uuid,
        notification_type -> Int4,
        registration_id -> Uuid,
        kind -> Text,
        reason -> Nullable<Text>,
        occurred_at -> Timestamptz,
        recorded_at -> Timestamptz,
    }
}

diesel::table! {
    notification_types (id) {
        id -> Int4,
        name -> Text,
        description -> Text,
        echoable -> Bool,
        created_at -> Timestamptz,
        payload_schema -> Nullable<Text>,
    }
}

diesel::table! {
    partners (id) {
        id -> Uuid,
        name -> Text,
        created_at -> Timestamptz,
        disabled_at -> Nullable<Timestamptz>,
    }
}

diesel::table! {
    registrations (id) {
        id -> Uuid,
        partner_id -> Uuid,
        notification_type_id -> Int4,
        callback_url -> Text,
        callback_user_name -> Nullable<Text>,
        callback_password_sealed -> Nullable<Bytea>,
        signing_secret_sealed -> Bytea,
        is_active -> Bool,
        deactivated_at -> Nullable<Timestamptz>,
        deactivation_reason -> Nullable<Text>,
        is_in_error_state -> Bool,
        error_state_reason -> Nullable<Text>,
        detected_error_state_at -> Nullable<Timestamptz>,
        last_outcome_at -> Nullable<Timestamptz>,
        created_at -> Timestamptz,
        updated_at -> Timestamptz,
        merchant_id -> Nullable<Text>,
        retry_policy -> Text,
        retry_schedule_secs -> Nullable<Array<Int4>>,
        paused_at -> Nullable<Timestamptz>,
        pause_reason -> Nullable<Text>,
        signature_scheme -> Text,
        previous_keys_sealed -> Array<Bytea>,
        previous_keys_scheme -> Array<Text>,
        previous_keys_expire_at -> Array<Timestamptz>,
    }
}

diesel::table! {
    registry_version (id) {
        id -> Bool,
        version -> Int8,
    }
}

diesel::table! {
    registry_changes (version) {
        version -> Int8,
        kind -> Text,
        partner_id -> Nullable<Uuid>,
        notification_type -> Nullable<Int4>,
        api_key_id -> Nullable<Uuid>,
        changed_at -> Timestamptz,
    }
}

diesel::joinable!(api_keys -> partners (partner_id));
diesel::joinable!(registrations -> notification_types (notification_type_id));
diesel::joinable!(registrations -> partners (partner_id));

diesel::allow_tables_to_appear_in_same_query!(
    api_keys,
    notification_types,
    partners,
    registrations
);
