ALTER TABLE attempts DROP COLUMN failure_kind;
