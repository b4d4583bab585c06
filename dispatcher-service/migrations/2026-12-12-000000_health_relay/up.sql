-- Where the relay of the registry's health events stands: the last event
-- stored as notifications. One replica at a time holds this row's lock
-- (SKIP LOCKED), stores the next events and moves the cursor in the same
-- transaction, so each event becomes notifications exactly once.
CREATE TABLE health_relay (
    only_row boolean PRIMARY KEY DEFAULT true CHECK (only_row),
    after_id bigint NOT NULL
);
INSERT INTO health_relay (after_id) VALUES (0);
