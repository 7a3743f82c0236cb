-- Clustered twin of unclustered/0120_runs_deleted.sql: the column on every node's runs_local and
-- on the Distributed `runs` over them.
ALTER TABLE runs_local ON CLUSTER '{cluster}' ADD COLUMN IF NOT EXISTS deleted UInt8 DEFAULT 0;

ALTER TABLE runs ON CLUSTER '{cluster}' ADD COLUMN IF NOT EXISTS deleted UInt8 DEFAULT 0
