-- Idempotency keys are kept for a window (DISPATCHER_IDEMPOTENCY_WINDOW)
-- and then forgotten: the keyed events, oldest first.
CREATE INDEX events_keyed_idx ON events (created_at) WHERE idempotency_key IS NOT NULL;
