ALTER TABLE registrations
    DROP CONSTRAINT registrations_pause_has_a_reason,
    DROP COLUMN pause_reason,
    DROP COLUMN paused_at;
