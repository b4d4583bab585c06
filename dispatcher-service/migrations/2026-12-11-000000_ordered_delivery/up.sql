-- Ordered delivery, opt in: deliveries published with the same ordering
-- key to the same registration (partner, type) form a lane, attempted one
-- at a time in publish order. A delivery behind another pending one of its
-- lane waits with `next_attempt_at = 'infinity'`, out of every claim's
-- reach; when the one ahead ends (delivered, failed or cancelled), the
-- next in `ordering_seq` order is made due (`storage/ordering.rs`).
--
-- Publishers and promotions take the lane's advisory lock, so that the
-- one that comes second sees what the first wrote: the sequence is drawn
-- under that lock, in publish order.
ALTER TABLE events ADD COLUMN ordering_key text;
ALTER TABLE deliveries
    ADD COLUMN ordering_key text,
    ADD COLUMN ordering_seq bigint,
    ADD CONSTRAINT deliveries_ordered_have_a_place
        CHECK ((ordering_key IS NULL) = (ordering_seq IS NULL));
CREATE SEQUENCE deliveries_ordering_seq;
-- The pending deliveries of each lane in order: only ordered ones, so the
-- deliveries of unordered events never enter it.
CREATE INDEX deliveries_lanes_idx
    ON deliveries (partner_id, notification_type, ordering_key, ordering_seq)
    WHERE ordering_key IS NOT NULL AND status = 'pending';
