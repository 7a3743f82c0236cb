-- One row per artifact version (v0, v1, ... per project and name); read with FINAL.
-- `digest` is the sha256 of the canonical manifest (pulse/artifact_manifest.py): identical
-- files make no new version. `metadata` is JSON text; `size` and `file_count` cover every
-- entry, references included; `state` is `committed` (a version row exists only once all
-- its blobs are stored). Versions are allocated by the ingest under a lock per (project,
-- name) (ingest/artifact_store.py), so on a cluster artifact RPCs go to one replica.
CREATE TABLE IF NOT EXISTS artifact_versions
(
    project        LowCardinality(String),
    name           String,
    version        UInt32,
    type           LowCardinality(String),
    digest         String,
    description    String CODEC(ZSTD),
    metadata       String CODEC(ZSTD),
    size           UInt64,
    file_count     UInt32,
    created_by_run String,
    state          LowCardinality(String),
    created_at     DateTime64(6, 'UTC'),
    updated_at     DateTime64(6, 'UTC')
)
ENGINE = ReplacingMergeTree(updated_at)
ORDER BY (project, name, version)
