-- Clustered twin of unclustered/0121_runs_metadata.sql.
ALTER TABLE runs_local ON CLUSTER '{cluster}' ADD COLUMN IF NOT EXISTS metadata String DEFAULT '{}' CODEC(ZSTD);

ALTER TABLE runs ON CLUSTER '{cluster}' ADD COLUMN IF NOT EXISTS metadata String DEFAULT '{}' CODEC(ZSTD)
