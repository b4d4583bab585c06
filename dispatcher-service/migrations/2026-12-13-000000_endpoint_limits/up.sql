-- The dispatcher replicas alive, each seen at its last heartbeat (the
-- database's clock, so that a replica's own clock does not matter). A
-- replica's share of an endpoint's limit is computed from this list.
CREATE TABLE dispatcher_replicas (
    id uuid PRIMARY KEY,
    seen_at timestamptz NOT NULL
);

-- Endpoints that throttled or kept failing, as every replica must see
-- them: held until `held_until`, allowed `allowance` attempts at once in
-- all, limited since `limited_since` (held again before the row expired).
-- A row goes when the endpoint is back to its full allowance, or a while
-- after its last hold. `noticed_at`: when the partner was told that it
-- has been throttled for long (once per streak).
CREATE TABLE endpoint_limits (
    registration_id uuid PRIMARY KEY,
    partner_id uuid NOT NULL,
    notification_type int4 NOT NULL,
    reason text NOT NULL CHECK (reason IN ('throttled', 'circuit_open')),
    held_until timestamptz NOT NULL,
    allowance int4 NOT NULL CHECK (allowance >= 1),
    limited_since timestamptz NOT NULL,
    updated_at timestamptz NOT NULL,
    noticed_at timestamptz
);
