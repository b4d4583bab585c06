-- Claims that write no delivery row (docs/decisions/0005-claims-read-from-a-shared-cursor.md).
--
-- A claim used to rewrite each row it took (a lease token, and the due
-- time moved to the lease's end): a new version of the row and a new
-- entry in both of its indexes, as costly as the completion that follows.
-- Now a claim reads its rows from where the last claim stopped, an exact
-- place in the due index kept in `queue_cursor`, and writes one `claims`
-- row for the whole batch. What lies behind the cursor is in a live batch
-- (in flight) or waits for the dispatcher's sweep (`storage/queue.rs`).
--
-- Not rolling-safe: a dispatcher from before this migration would claim
-- rows that the new ones hold. Upgrade across it with every dispatcher
-- stopped (docs/operations.md, "Upgrades"). Deliveries claimed the old way
-- and still in flight look like hand-offs (a token on the row, due at the
-- end of its lease) and are claimed again when that lease ends.

-- One row: the (due, id) place of the last delivery a claim took.
CREATE TABLE queue_cursor (
    only_row boolean PRIMARY KEY DEFAULT true CHECK (only_row),
    due      timestamptz NOT NULL,
    id       uuid NOT NULL
);
INSERT INTO queue_cursor (due, id) VALUES ('-infinity', '00000000-0000-0000-0000-000000000000');

-- One row per batch in flight: its token, when its lease ends, and its
-- deliveries. Deleted when the batch's last outcome is written, or by the
-- sweep once the lease has ended (its worker is gone).
CREATE TABLE claims (
    token uuid PRIMARY KEY,
    until timestamptz NOT NULL,
    ids   uuid[] NOT NULL
);

-- The due index, ordered by the cursor's (due, id).
DROP INDEX deliveries_due_idx;
CREATE INDEX deliveries_due_idx ON deliveries (next_attempt_at, id) WHERE status = 'pending';
