-- The module graph of a watched model, stored once per run.
--
-- Clustered twin of unclustered/0006_model_graphs.sql: `model_graphs_local` is a replicated table on
-- every node (one Keeper path per shard, one replica per node), and `model_graphs` is the
-- Distributed table over all shards that the ingest and users' SQL use.
-- Sharded by cityHash64(project, run_id): every row of a run, retried batches included,
-- lands on one shard.
-- That matters: ReplacingMergeTree (and FINAL) collapse duplicates only within a
-- shard, never across shards.
-- Columns are identical to the unclustered twin (tests/test_deploy.py checks it).
CREATE TABLE IF NOT EXISTS model_graphs_local ON CLUSTER '{cluster}'
(
    project LowCardinality(String),
    run_id  String,
    ts      DateTime64(6, 'UTC'),
    graph   String CODEC(ZSTD)
)
ENGINE = ReplicatedReplacingMergeTree('/clickhouse/tables/{shard}/{database}/model_graphs_local', '{replica}', ts)
ORDER BY (project, run_id);

CREATE TABLE IF NOT EXISTS model_graphs ON CLUSTER '{cluster}' AS {database}.model_graphs_local
ENGINE = Distributed('{cluster}', '{database}', model_graphs_local, cityHash64(project, run_id));
