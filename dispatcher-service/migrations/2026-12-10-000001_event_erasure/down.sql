ALTER TABLE events DROP COLUMN erased_at;
