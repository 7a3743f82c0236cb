-- Scalar series. A retried point has the same sorting key and collapses on
-- merge, so `count() FROM metrics FINAL` counts every point exactly once.
--
-- Clustered twin of unclustered/0002_metrics.sql: `metrics_local` is a replicated table on
-- every node (one Keeper path per shard, one replica per node), and `metrics` is the
-- Distributed table over all shards that the ingest and users' SQL use.
-- Sharded by cityHash64(project, run_id): every row of a run, retried batches included,
-- lands on one shard.
-- That matters: ReplacingMergeTree (and FINAL) collapse duplicates only within a
-- shard, never across shards.
-- Columns are identical to the unclustered twin (tests/test_deploy.py checks it).
CREATE TABLE IF NOT EXISTS metrics_local ON CLUSTER '{cluster}'
(
    project LowCardinality(String),
    run_id  String,
    key     LowCardinality(String),
    step    Int64 CODEC(DoubleDelta, ZSTD),
    ts      DateTime64(6, 'UTC') CODEC(DoubleDelta, ZSTD),
    value   Float64 CODEC(Gorilla, ZSTD)
)
ENGINE = ReplicatedReplacingMergeTree('/clickhouse/tables/{shard}/{database}/metrics_local', '{replica}')
ORDER BY (project, run_id, key, step);

CREATE TABLE IF NOT EXISTS metrics ON CLUSTER '{cluster}' AS {database}.metrics_local
ENGINE = Distributed('{cluster}', '{database}', metrics_local, cityHash64(project, run_id));
