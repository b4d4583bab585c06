-- Signing keys: a registration signs with HMAC-SHA256 (Standard Webhooks
-- `v1`, the default) or Ed25519 (`v1a`, the partner holds only the public
-- key). `signing_secret_sealed` holds the current key's bytes (the HMAC
-- secret, or the Ed25519 seed) for the scheme named here.
--
-- Several previous keys stay valid at once, each until its own expiry, so
-- rotations may overlap: the three arrays are parallel (the sealed key,
-- its scheme, when it stops being used), newest first. Expired entries are
-- dropped at the next rotation and ignored before.
ALTER TABLE registrations
    ADD COLUMN signature_scheme text NOT NULL DEFAULT 'hmac-sha256'
        CHECK (signature_scheme IN ('hmac-sha256', 'ed25519')),
    ADD COLUMN previous_keys_sealed bytea[] NOT NULL DEFAULT '{}',
    ADD COLUMN previous_keys_scheme text[] NOT NULL DEFAULT '{}',
    ADD COLUMN previous_keys_expire_at timestamptz[] NOT NULL DEFAULT '{}',
    ADD CONSTRAINT registrations_previous_keys_parallel CHECK (
        cardinality(previous_keys_sealed) = cardinality(previous_keys_scheme)
        AND cardinality(previous_keys_sealed) = cardinality(previous_keys_expire_at));

UPDATE registrations
SET previous_keys_sealed = ARRAY[previous_secret_sealed],
    previous_keys_scheme = ARRAY['hmac-sha256'],
    previous_keys_expire_at = ARRAY[previous_secret_expires_at]
WHERE previous_secret_sealed IS NOT NULL AND previous_secret_expires_at > now();

ALTER TABLE registrations
    DROP COLUMN previous_secret_sealed,
    DROP COLUMN previous_secret_expires_at;
