-- Artifacts: one row per (project, name), the artifact's type and description as last logged;
-- read with FINAL. Its versions are in artifact_versions, their files in artifact_files.
CREATE TABLE IF NOT EXISTS artifacts
(
    project     LowCardinality(String),
    name        String,
    type        LowCardinality(String),
    description String CODEC(ZSTD),
    created_at  DateTime64(6, 'UTC'),
    updated_at  DateTime64(6, 'UTC')
)
ENGINE = ReplacingMergeTree(updated_at)
ORDER BY (project, name)
