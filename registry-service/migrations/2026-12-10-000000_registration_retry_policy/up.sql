-- A registration's retry policy: a name the registry resolves to waits, or
-- `custom` with the partner's own waits (seconds). `default` leaves the
-- dispatcher's configured schedule.
ALTER TABLE registrations
    ADD COLUMN retry_policy text NOT NULL DEFAULT 'default'
        CHECK (retry_policy IN ('default', 'short', 'long', 'custom')),
    ADD COLUMN retry_schedule_secs integer[],
    ADD CONSTRAINT registrations_custom_policy_has_waits
        CHECK ((retry_policy = 'custom') = (retry_schedule_secs IS NOT NULL));
