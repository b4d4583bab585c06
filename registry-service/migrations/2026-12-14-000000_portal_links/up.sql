-- Portal links: keys an operator mints for a partner that open the partner
-- portal only (the gateway refuses them on the REST API) and stop working
-- at `expires_at`. Revoked like any key, so the change log tells the
-- gateways at once.
ALTER TABLE api_keys
    ADD COLUMN portal_only boolean NOT NULL DEFAULT false,
    ADD COLUMN expires_at timestamptz;
