-- The registry's change log: what other services' caches must forget.
-- Every change that alters what a resolution, a key check or the catalogue
-- answers takes the next version in the same transaction, so versions
-- commit in order (the counter row serialises the writers) and a reader
-- that has applied every change up to version v knows exactly which
-- cached answers changed after it.
CREATE TABLE registry_version (
    id       boolean PRIMARY KEY DEFAULT true CHECK (id),
    version  bigint  NOT NULL DEFAULT 0
);
INSERT INTO registry_version DEFAULT VALUES;

CREATE TABLE registry_changes (
    version            bigint      PRIMARY KEY,
    -- 'callback' (partner_id, notification_type), 'partner' (partner_id),
    -- 'api_key' (api_key_id, partner_id) or 'catalogue'.
    kind               text        NOT NULL CHECK (kind IN ('callback', 'partner', 'api_key', 'catalogue')),
    partner_id         uuid,
    notification_type  integer,
    api_key_id         uuid,
    changed_at         timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX registry_changes_changed_at ON registry_changes (changed_at);
