-- Lineage: which run produced each artifact version (`output`) and which runs used it
-- (`input`). `project` is the artifact's, `run_project` the run's (a run may use another
-- project's artifact). A repeated log or use collapses to one row.
--
-- Clustered twin of unclustered/0104_artifact_usage.sql: `artifact_usage_local` is a replicated table on
-- every node (one Keeper path per shard, one replica per node), and `artifact_usage` is the
-- Distributed table over all shards that the ingest and users' SQL use.
-- Sharded by cityHash64(project, run_id): a run's lineage rows, each repeated log or use included, land on one shard.
-- Columns are identical to the unclustered twin (tests/test_deploy_cluster.py checks it).
CREATE TABLE IF NOT EXISTS artifact_usage_local ON CLUSTER '{cluster}'
(
    project     LowCardinality(String),
    name        String,
    version     UInt32,
    run_project LowCardinality(String),
    run_id      String,
    direction   LowCardinality(String),
    ts          DateTime64(6, 'UTC')
)
ENGINE = ReplicatedReplacingMergeTree('/clickhouse/tables/{shard}/{database}/artifact_usage_local', '{replica}')
ORDER BY (project, name, version, direction, run_project, run_id);

CREATE TABLE IF NOT EXISTS artifact_usage ON CLUSTER '{cluster}' AS {database}.artifact_usage_local
ENGINE = Distributed('{cluster}', '{database}', artifact_usage_local, cityHash64(project, run_id));
