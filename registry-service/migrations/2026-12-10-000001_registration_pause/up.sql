-- A paused registration stays active and keeps its events: the dispatcher
-- holds its deliveries until it is resumed. Since when, and why.
ALTER TABLE registrations
    ADD COLUMN paused_at timestamptz,
    ADD COLUMN pause_reason text,
    ADD CONSTRAINT registrations_pause_has_a_reason
        CHECK ((paused_at IS NULL) = (pause_reason IS NULL));
