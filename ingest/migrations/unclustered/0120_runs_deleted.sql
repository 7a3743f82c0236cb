-- A run deleted from the dashboard (the Runs service's DeleteRun): a soft delete. The row stays,
-- the dashboard's queries leave the run out (`NOT deleted`) unless asked to show deleted runs,
-- and RestoreRun sets it back to 0. Users' SQL sees every run; add `WHERE NOT deleted` to match.
ALTER TABLE runs ADD COLUMN IF NOT EXISTS deleted UInt8 DEFAULT 0
