-- Sweeps: the W&B YAML as JSON text; read with FINAL.
--
-- Clustered twin of unclustered/0008_sweeps.sql: `sweeps_local` is a replicated table on
-- every node (one Keeper path per shard, one replica per node), and `sweeps` is the
-- Distributed table over all shards that the ingest and users' SQL use.
-- Sharded by cityHash64(project, sweep_id): every version of a sweep's row lands on one shard.
-- That matters: ReplacingMergeTree (and FINAL) collapse duplicates only within a
-- shard, never across shards.
-- Columns are identical to the unclustered twin (tests/test_deploy.py checks it).
CREATE TABLE IF NOT EXISTS sweeps_local ON CLUSTER '{cluster}'
(
    project    LowCardinality(String),
    sweep_id   String,
    config     String CODEC(ZSTD),
    state      LowCardinality(String),
    created_at DateTime64(6, 'UTC'),
    updated_at DateTime64(6, 'UTC')
)
ENGINE = ReplicatedReplacingMergeTree('/clickhouse/tables/{shard}/{database}/sweeps_local', '{replica}', updated_at)
ORDER BY (project, sweep_id);

CREATE TABLE IF NOT EXISTS sweeps ON CLUSTER '{cluster}' AS {database}.sweeps_local
ENGINE = Distributed('{cluster}', '{database}', sweeps_local, cityHash64(project, sweep_id));
