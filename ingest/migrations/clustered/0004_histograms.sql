-- Gradient and weight histograms: bucket edges (n + 1) and counts (n) as arrays.
--
-- Clustered twin of unclustered/0004_histograms.sql: `histograms_local` is a replicated table on
-- every node (one Keeper path per shard, one replica per node), and `histograms` is the
-- Distributed table over all shards that the ingest and users' SQL use.
-- Sharded by cityHash64(project, run_id): every row of a run, retried batches included,
-- lands on one shard.
-- That matters: ReplacingMergeTree (and FINAL) collapse duplicates only within a
-- shard, never across shards.
-- Columns are identical to the unclustered twin (tests/test_deploy.py checks it).
CREATE TABLE IF NOT EXISTS histograms_local ON CLUSTER '{cluster}'
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
ENGINE = ReplicatedReplacingMergeTree('/clickhouse/tables/{shard}/{database}/histograms_local', '{replica}')
ORDER BY (project, run_id, key, step);

CREATE TABLE IF NOT EXISTS histograms ON CLUSTER '{cluster}' AS {database}.histograms_local
ENGINE = Distributed('{cluster}', '{database}', histograms_local, cityHash64(project, run_id));
