-- One row per artifact version (v0, v1, ... per project and name); read with FINAL.
-- `digest` is the sha256 of the canonical manifest (pulse/artifact_manifest.py): identical
-- files make no new version. `metadata` is JSON text; `size` and `file_count` cover every
-- entry, references included; `state` is `committed` (a version row exists only once all
-- its blobs are stored). Versions are allocated by the ingest under a lock per (project,
-- name) (ingest/artifact_store.py), so on a cluster artifact RPCs go to one replica.
--
-- Clustered twin of unclustered/0101_artifact_versions.sql: `artifact_versions_local` is a replicated table on
-- every node (one Keeper path per shard, one replica per node), and `artifact_versions` is the
-- Distributed table over all shards that the ingest and users' SQL use.
-- Sharded by cityHash64(project, name): every version, file and alias row of one artifact lands on one shard, so the
-- ingest's FINAL reads (the next version number, where an alias points) are exact.
-- Columns are identical to the unclustered twin (tests/test_deploy_cluster.py checks it).
CREATE TABLE IF NOT EXISTS artifact_versions_local ON CLUSTER '{cluster}'
(
    project        LowCardinality(String),
    name           String,
    version        UInt32,
    type           LowCardinality(String),
    digest         String,
    description    String CODEC(ZSTD),
    metadata       String CODEC(ZSTD),
    size           UInt64,
    file_count     UInt32,
    created_by_run String,
    state          LowCardinality(String),
    created_at     DateTime64(6, 'UTC'),
    updated_at     DateTime64(6, 'UTC')
)
ENGINE = ReplicatedReplacingMergeTree('/clickhouse/tables/{shard}/{database}/artifact_versions_local', '{replica}', updated_at)
ORDER BY (project, name, version);

CREATE TABLE IF NOT EXISTS artifact_versions ON CLUSTER '{cluster}' AS {database}.artifact_versions_local
ENGINE = Distributed('{cluster}', '{database}', artifact_versions_local, cityHash64(project, name));
