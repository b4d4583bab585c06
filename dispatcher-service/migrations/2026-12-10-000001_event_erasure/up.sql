-- Erasure: an event's payload removed on request (one event, or all of a
-- partner's), its delivery and attempts kept as metadata. The payload
-- becomes empty and `erased_at` says when; a delivery still pending is
-- cancelled in the same transaction.
ALTER TABLE events ADD COLUMN erased_at timestamptz;
