-- The module graph of a watched model, stored once per run.
CREATE TABLE IF NOT EXISTS model_graphs
(
    project LowCardinality(String),
    run_id  String,
    ts      DateTime64(6, 'UTC'),
    graph   String CODEC(ZSTD)
)
ENGINE = ReplacingMergeTree(ts)
ORDER BY (project, run_id)
