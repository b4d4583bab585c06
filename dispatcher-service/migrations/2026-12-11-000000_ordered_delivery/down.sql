DROP INDEX deliveries_lanes_idx;
DROP SEQUENCE deliveries_ordering_seq;
ALTER TABLE deliveries
    DROP CONSTRAINT deliveries_ordered_have_a_place,
    DROP COLUMN ordering_seq,
    DROP COLUMN ordering_key;
ALTER TABLE events DROP COLUMN ordering_key;
