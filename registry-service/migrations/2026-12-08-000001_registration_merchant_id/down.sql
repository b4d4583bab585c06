ALTER TABLE registrations DROP COLUMN merchant_id;
