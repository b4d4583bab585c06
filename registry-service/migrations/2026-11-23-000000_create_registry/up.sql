-- The registry's tables. Nothing but the registry service writes them.

CREATE TABLE partners (
    id          uuid PRIMARY KEY,
    name        text NOT NULL,
    created_at  timestamptz NOT NULL DEFAULT now(),
    disabled_at timestamptz
);
CREATE INDEX partners_created_idx ON partners (created_at, id);

CREATE TABLE api_keys (
    id           uuid PRIMARY KEY,
    partner_id   uuid NOT NULL REFERENCES partners (id),
    label        text NOT NULL DEFAULT '',
    -- SHA-256 of the token; the token itself is never stored.
    token_hash   bytea NOT NULL,
    token_prefix text NOT NULL,
    created_at   timestamptz NOT NULL DEFAULT now(),
    revoked_at   timestamptz,
    CONSTRAINT api_keys_token_hash_key UNIQUE (token_hash)
);
CREATE INDEX api_keys_partner_idx ON api_keys (partner_id, created_at);

CREATE TABLE notification_types (
    id          integer PRIMARY KEY CHECK (id > 0),
    name        text NOT NULL,
    description text NOT NULL DEFAULT '',
    echoable    boolean NOT NULL DEFAULT false,
    created_at  timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT notification_types_name_key UNIQUE (name)
);

-- The seed documents name 5, 6 and 7 as the types a partner can echo.
INSERT INTO notification_types (id, name, description, echoable) VALUES
    (5, 'notification-type-5', 'Notification type 5 (echo-able)', true),
    (6, 'notification-type-6', 'Notification type 6 (echo-able)', true),
    (7, 'notification-type-7', 'Notification type 7 (echo-able)', true);

CREATE TABLE registrations (
    id                         uuid PRIMARY KEY,
    partner_id                 uuid NOT NULL REFERENCES partners (id),
    notification_type_id       integer NOT NULL REFERENCES notification_types (id),
    callback_url               text NOT NULL,
    callback_user_name         text,
    -- AES-256-GCM sealed (see crypto.rs); never plain text.
    callback_password_sealed   bytea,
    signing_secret_sealed      bytea NOT NULL,
    previous_secret_sealed     bytea,
    previous_secret_expires_at timestamptz,
    is_active                  boolean NOT NULL DEFAULT true,
    deactivated_at             timestamptz,
    deactivation_reason        text,
    is_in_error_state          boolean NOT NULL DEFAULT false,
    error_state_reason         text,
    detected_error_state_at    timestamptz,
    -- When the newest applied delivery outcome happened; older reports are
    -- ignored so that out-of-order reports cannot undo newer ones.
    last_outcome_at            timestamptz,
    created_at                 timestamptz NOT NULL DEFAULT now(),
    updated_at                 timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT registrations_password_needs_user
        CHECK (callback_password_sealed IS NULL OR callback_user_name IS NOT NULL),
    CONSTRAINT registrations_inactive_has_time
        CHECK (is_active OR deactivated_at IS NOT NULL)
);
-- One active registration per partner and type; inactive ones are history.
CREATE UNIQUE INDEX registrations_one_active_idx
    ON registrations (partner_id, notification_type_id) WHERE is_active;
CREATE INDEX registrations_partner_idx ON registrations (partner_id, created_at, id);
CREATE INDEX registrations_error_state_idx ON registrations (detected_error_state_at)
    WHERE is_in_error_state AND is_active;
