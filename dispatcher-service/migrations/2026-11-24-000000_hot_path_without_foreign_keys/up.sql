-- The delivery hot path without foreign-key checks.
--
-- Each check is a query of its own per row: on every delivery inserted at
-- publish (deliveries -> events) and every attempt logged (attempts ->
-- deliveries). Nothing but the dispatcher writes these tables, and it
-- writes each reference in the same statement that makes or finds its
-- target (`storage/events.rs` inserts an event and its delivery together;
-- `storage/queue.rs` logs an attempt only for the delivery row it just
-- updated), and nothing is ever deleted. So the checks cannot fail, and
-- they cost about a quarter of those statements (docs/benchmarks.md).
ALTER TABLE deliveries DROP CONSTRAINT deliveries_event_id_fkey;
ALTER TABLE attempts DROP CONSTRAINT attempts_delivery_id_fkey;
