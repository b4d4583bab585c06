-- The dispatcher's tables. Nothing but the dispatcher service writes them.

CREATE TABLE events (
    id                uuid PRIMARY KEY,
    partner_id        uuid NOT NULL,
    notification_type integer NOT NULL CHECK (notification_type > 0),
    -- The body delivered, byte for byte as published (for echo: the rawBody).
    payload           bytea NOT NULL,
    idempotency_key   text,
    is_test           boolean NOT NULL DEFAULT false,
    -- False when the partner had no active registration for the type.
    has_subscriber    boolean NOT NULL,
    occurred_at       timestamptz NOT NULL,
    -- W3C trace context of the publisher, so that deliveries join its trace.
    trace_context     text,
    created_at        timestamptz NOT NULL DEFAULT now()
);
-- A repeated key returns the first event; scoped per partner.
CREATE UNIQUE INDEX events_idempotency_idx ON events (partner_id, idempotency_key)
    WHERE idempotency_key IS NOT NULL;

CREATE TABLE deliveries (
    id                   uuid PRIMARY KEY,
    event_id             uuid NOT NULL REFERENCES events (id),
    partner_id           uuid NOT NULL,
    notification_type    integer NOT NULL,
    is_test              boolean NOT NULL DEFAULT false,
    status               text NOT NULL DEFAULT 'pending'
        CHECK (status IN ('pending', 'delivered', 'failed', 'cancelled')),
    -- All attempts ever (numbers the attempt log) and attempts in the
    -- current series (a redelivery starts a new series and schedule).
    attempt_count        integer NOT NULL DEFAULT 0,
    series_attempts      integer NOT NULL DEFAULT 0,
    -- When a pending delivery is due. A claim moves it to the end of the
    -- lease, so a crashed worker's claim simply comes due again.
    next_attempt_at      timestamptz NOT NULL DEFAULT now(),
    -- Minted at each claim; an outcome is written only with the current one.
    lease_token          uuid,
    last_error           text,
    last_response_status integer,
    created_at           timestamptz NOT NULL DEFAULT now(),
    updated_at           timestamptz NOT NULL DEFAULT now(),
    completed_at         timestamptz
);
-- The queue: only pending rows, in due order. A claim reads the first rows
-- of this index, whatever the size of the table.
CREATE INDEX deliveries_due_idx ON deliveries (next_attempt_at) WHERE status = 'pending';
CREATE INDEX deliveries_partner_idx ON deliveries (partner_id, notification_type, created_at);
CREATE INDEX deliveries_event_idx ON deliveries (event_id);

CREATE TABLE attempts (
    delivery_id       uuid NOT NULL REFERENCES deliveries (id),
    attempt_number    integer NOT NULL,
    registration_id   uuid,
    started_at        timestamptz NOT NULL,
    duration_ms       integer NOT NULL,
    response_status   integer,
    error             text,
    -- The first bytes of the answer, for the partner's delivery log.
    response_excerpt  text NOT NULL DEFAULT '',
    PRIMARY KEY (delivery_id, attempt_number)
);
