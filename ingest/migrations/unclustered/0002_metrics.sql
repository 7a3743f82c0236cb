-- Scalar series. A retried point has the same sorting key and collapses on
-- merge, so `count() FROM metrics FINAL` counts every point exactly once.
CREATE TABLE IF NOT EXISTS metrics
(
    project LowCardinality(String),
    run_id  String,
    key     LowCardinality(String),
    step    Int64 CODEC(DoubleDelta, ZSTD),
    ts      DateTime64(6, 'UTC') CODEC(DoubleDelta, ZSTD),
    value   Float64 CODEC(Gorilla, ZSTD)
)
ENGINE = ReplacingMergeTree
ORDER BY (project, run_id, key, step)
