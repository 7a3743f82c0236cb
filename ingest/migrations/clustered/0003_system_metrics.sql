-- System samples (CPU, memory, disk, network, per-GPU through NVML).
--
-- Clustered twin of unclustered/0003_system_metrics.sql: `system_metrics_local` is a replicated table on
-- every node (one Keeper path per shard, one replica per node), and `system_metrics` is the
-- Distributed table over all shards that the ingest and users' SQL use.
-- Sharded by cityHash64(project, run_id): every row of a run, retried batches included,
-- lands on one shard.
-- That matters: ReplacingMergeTree (and FINAL) collapse duplicates only within a
-- shard, never across shards.
-- Columns are identical to the unclustered twin (tests/test_deploy.py checks it).
CREATE TABLE IF NOT EXISTS system_metrics_local ON CLUSTER '{cluster}'
(
    project LowCardinality(String),
    run_id  String,
    host    LowCardinality(String),
    device  LowCardinality(String),
    key     LowCardinality(String),
    ts      DateTime64(6, 'UTC') CODEC(DoubleDelta, ZSTD),
    value   Float64 CODEC(Gorilla, ZSTD)
)
ENGINE = ReplicatedReplacingMergeTree('/clickhouse/tables/{shard}/{database}/system_metrics_local', '{replica}')
ORDER BY (project, run_id, host, device, key, ts);

CREATE TABLE IF NOT EXISTS system_metrics ON CLUSTER '{cluster}' AS {database}.system_metrics_local
ENGINE = Distributed('{cluster}', '{database}', system_metrics_local, cityHash64(project, run_id));
