-- One row per run version; read with FINAL (or argMax(..., updated_at)).
CREATE TABLE IF NOT EXISTS runs
(
    project      LowCardinality(String),
    run_id       String,
    name         String,
    `group`      String,
    job_type     LowCardinality(String),
    tags         Array(String),
    notes        String,
    sweep_id     String,
    config       String CODEC(ZSTD),
    state        LowCardinality(String),
    exit_code    Int32,
    error        String,
    host         String,
    created_at   DateTime64(6, 'UTC'),
    updated_at   DateTime64(6, 'UTC'),
    heartbeat_at DateTime64(6, 'UTC'),
    summary      String CODEC(ZSTD),
    metric_defs  String CODEC(ZSTD)
)
ENGINE = ReplacingMergeTree(updated_at)
ORDER BY (project, run_id)
