CREATE INDEX deliveries_event_idx ON deliveries (event_id);
CREATE INDEX deliveries_partner_idx ON deliveries (partner_id, notification_type, created_at);
DROP INDEX events_partner_deliveries_idx;
ALTER TABLE events DROP COLUMN delivery_id;
