ALTER TABLE notification_types DROP COLUMN payload_schema;
