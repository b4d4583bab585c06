-- Bulk recovery: a job that makes a partner's failed (and, if asked,
-- cancelled) deliveries of a time range due again, a chunk at a time, so
-- that a large recovery does not crowd out fresh deliveries. The job's
-- deliveries are listed when it is made (`recovery_items`); a replica
-- takes a running job under its row lock (SKIP LOCKED) and removes the
-- chunk it resends from the list in the same transaction: a crash repeats
-- nothing and skips nothing.
CREATE TABLE recoveries (
    id uuid PRIMARY KEY,
    partner_id uuid NOT NULL,
    -- NULL: every type.
    notification_type integer,
    statuses text[] NOT NULL,
    since timestamptz NOT NULL,
    until timestamptz NOT NULL CHECK (until > since),
    -- Deliveries listed when the job was made.
    total bigint NOT NULL,
    -- Deliveries made due again so far (one no longer failed or cancelled
    -- when its turn comes is left alone).
    resent bigint NOT NULL DEFAULT 0,
    state text NOT NULL CHECK (state IN ('running', 'done')),
    created_at timestamptz NOT NULL DEFAULT now(),
    finished_at timestamptz
);
CREATE INDEX recoveries_running_idx ON recoveries (created_at) WHERE state = 'running';

CREATE TABLE recovery_items (
    recovery_id uuid NOT NULL,
    delivery_id uuid NOT NULL,
    PRIMARY KEY (recovery_id, delivery_id)
);
