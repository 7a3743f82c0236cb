-- User alerts (emitter.alert) and Pulse's own gradient-health flags.
--
-- Clustered twin of unclustered/0007_alerts.sql: `alerts_local` is a replicated table on
-- every node (one Keeper path per shard, one replica per node), and `alerts` is the
-- Distributed table over all shards that the ingest and users' SQL use.
-- Sharded by cityHash64(project, run_id): every row of a run, retried batches included,
-- lands on one shard.
-- That matters: ReplacingMergeTree (and FINAL) collapse duplicates only within a
-- shard, never across shards.
-- Columns are identical to the unclustered twin (tests/test_deploy.py checks it).
CREATE TABLE IF NOT EXISTS alerts_local ON CLUSTER '{cluster}'
(
    project LowCardinality(String),
    run_id  String,
    ts      DateTime64(6, 'UTC'),
    level   LowCardinality(String),
    title   String,
    text    String
)
ENGINE = ReplicatedReplacingMergeTree('/clickhouse/tables/{shard}/{database}/alerts_local', '{replica}')
ORDER BY (project, run_id, ts, title);

CREATE TABLE IF NOT EXISTS alerts ON CLUSTER '{cluster}' AS {database}.alerts_local
ENGINE = Distributed('{cluster}', '{database}', alerts_local, cityHash64(project, run_id));
