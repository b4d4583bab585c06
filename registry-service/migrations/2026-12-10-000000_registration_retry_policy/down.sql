ALTER TABLE registrations
    DROP CONSTRAINT registrations_custom_policy_has_waits,
    DROP COLUMN retry_schedule_secs,
    DROP COLUMN retry_policy;
