ALTER TABLE registrations
    ADD COLUMN previous_secret_sealed bytea,
    ADD COLUMN previous_secret_expires_at timestamptz;
UPDATE registrations
SET previous_secret_sealed = previous_keys_sealed[1],
    previous_secret_expires_at = previous_keys_expire_at[1]
WHERE cardinality(previous_keys_sealed) > 0 AND previous_keys_scheme[1] = 'hmac-sha256';
ALTER TABLE registrations
    DROP CONSTRAINT registrations_previous_keys_parallel,
    DROP COLUMN previous_keys_expire_at,
    DROP COLUMN previous_keys_scheme,
    DROP COLUMN previous_keys_sealed,
    DROP COLUMN signature_scheme;
