-- Sweeps: the W&B YAML as JSON text; read with FINAL.
CREATE TABLE IF NOT EXISTS sweeps
(
    project    LowCardinality(String),
    sweep_id   String,
    config     String CODEC(ZSTD),
    state      LowCardinality(String),
    created_at DateTime64(6, 'UTC'),
    updated_at DateTime64(6, 'UTC')
)
ENGINE = ReplacingMergeTree(updated_at)
ORDER BY (project, sweep_id)
