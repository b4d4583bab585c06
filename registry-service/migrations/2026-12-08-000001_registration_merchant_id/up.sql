-- Seed 003's merchantId: the partner's own identifier of the merchant a
-- registration is for. Optional, partner-supplied, filterable.
ALTER TABLE registrations ADD COLUMN merchant_id text;
