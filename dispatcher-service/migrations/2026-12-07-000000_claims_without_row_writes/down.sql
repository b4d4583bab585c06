DROP INDEX deliveries_due_idx;
CREATE INDEX deliveries_due_idx ON deliveries (next_attempt_at) WHERE status = 'pending';
DROP TABLE claims;
DROP TABLE queue_cursor;
