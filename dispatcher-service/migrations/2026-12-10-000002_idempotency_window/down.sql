DROP INDEX events_keyed_idx;
