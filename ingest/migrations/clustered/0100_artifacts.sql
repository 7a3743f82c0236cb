-- Artifacts: one row per (project, name), the artifact's type and description as last logged;
-- read with FINAL. Its versions are in artifact_versions, their files in artifact_files.
--
-- Clustered twin of unclustered/0100_artifacts.sql: `artifacts_local` is a replicated table on
-- every node (one Keeper path per shard, one replica per node), and `artifacts` is the
-- Distributed table over all shards that the ingest and users' SQL use.
-- Sharded by cityHash64(project, name): every version, file and alias row of one artifact lands on one shard, so the
-- ingest's FINAL reads (the next version number, where an alias points) are exact.
-- Columns are identical to the unclustered twin (tests/test_deploy_cluster.py checks it).
CREATE TABLE IF NOT EXISTS artifacts_local ON CLUSTER '{cluster}'
(
    project     LowCardinality(String),
    name        String,
    type        LowCardinality(String),
    description String CODEC(ZSTD),
    created_at  DateTime64(6, 'UTC'),
    updated_at  DateTime64(6, 'UTC')
)
ENGINE = ReplicatedReplacingMergeTree('/clickhouse/tables/{shard}/{database}/artifacts_local', '{replica}', updated_at)
ORDER BY (project, name);

CREATE TABLE IF NOT EXISTS artifacts ON CLUSTER '{cluster}' AS {database}.artifacts_local
ENGINE = Distributed('{cluster}', '{database}', artifacts_local, cityHash64(project, name));
