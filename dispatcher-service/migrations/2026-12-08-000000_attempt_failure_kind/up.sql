-- Why a failed attempt failed, as a stable code (`FailureKind::code`):
-- what machines read, beside the reason text people read. NULL for a
-- delivered attempt, a 410, and attempts logged before this column.
ALTER TABLE attempts ADD COLUMN failure_kind text;
