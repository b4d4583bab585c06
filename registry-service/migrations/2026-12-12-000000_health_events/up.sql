-- Health events: a registration entered its error state, recovered from
-- it, or was paused automatically. Written in the transaction that makes
-- the change, so that none is lost or made up; numbered, so that the
-- dispatchers relay them in order from where they left off
-- (`ListHealthEvents`). Kept as the change log is: small rows, one per
-- state change, not per attempt.
CREATE TABLE health_events (
    id                bigserial PRIMARY KEY,
    partner_id        uuid NOT NULL,
    notification_type integer NOT NULL,
    registration_id   uuid NOT NULL,
    kind              text NOT NULL
        CHECK (kind IN ('error_state_entered', 'recovered', 'disabled')),
    reason            text,
    occurred_at       timestamptz NOT NULL,
    recorded_at       timestamptz NOT NULL DEFAULT now()
);

-- The notification type partners subscribe to for their registrations'
-- health (and operators, through a partner of their own).
INSERT INTO notification_types (id, name, description, echoable) VALUES
    (900, 'callback.health',
     'Your registrations'' health: a callback entered its error state, recovered, or was paused automatically',
     false)
ON CONFLICT (id) DO NOTHING;
