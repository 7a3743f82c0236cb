-- System samples (CPU, memory, disk, network, per-GPU through NVML).
CREATE TABLE IF NOT EXISTS system_metrics
(
    project LowCardinality(String),
    run_id  String,
    host    LowCardinality(String),
    device  LowCardinality(String),
    key     LowCardinality(String),
    ts      DateTime64(6, 'UTC') CODEC(DoubleDelta, ZSTD),
    value   Float64 CODEC(Gorilla, ZSTD)
)
ENGINE = ReplacingMergeTree
ORDER BY (project, run_id, host, device, key, ts)
