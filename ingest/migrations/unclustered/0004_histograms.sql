-- Gradient and weight histograms: bucket edges (n + 1) and counts (n) as arrays.
CREATE TABLE IF NOT EXISTS histograms
(
    project       LowCardinality(String),
    run_id        String,
    key           LowCardinality(String),
    step          Int64 CODEC(DoubleDelta, ZSTD),
    ts            DateTime64(6, 'UTC'),
    count         UInt64,
    sum           Float64,
    min           Float64,
    max           Float64,
    nonfinite     UInt64,
    bucket_edges  Array(Float64) CODEC(ZSTD),
    bucket_counts Array(UInt64) CODEC(ZSTD)
)
ENGINE = ReplacingMergeTree
ORDER BY (project, run_id, key, step)
