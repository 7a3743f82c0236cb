-- An artifact version's manifest: one row per file. `sha256` names the blob in the blob
-- store (the same one as media's), "" for a reference; a reference keeps its URI
-- (s3://, file://) and, when known, its ETag or sha256 in `ref_digest`; it is not uploaded.
--
-- Clustered twin of unclustered/0102_artifact_files.sql: `artifact_files_local` is a replicated table on
-- every node (one Keeper path per shard, one replica per node), and `artifact_files` is the
-- Distributed table over all shards that the ingest and users' SQL use.
-- Sharded by cityHash64(project, name): every version, file and alias row of one artifact lands on one shard, so the
-- ingest's FINAL reads (the next version number, where an alias points) are exact.
-- Columns are identical to the unclustered twin (tests/test_deploy_cluster.py checks it).
CREATE TABLE IF NOT EXISTS artifact_files_local ON CLUSTER '{cluster}'
(
    project    LowCardinality(String),
    name       String,
    version    UInt32,
    path       String,
    sha256     String,
    size       UInt64,
    ref_uri    String,
    ref_digest String
)
ENGINE = ReplicatedReplacingMergeTree('/clickhouse/tables/{shard}/{database}/artifact_files_local', '{replica}')
ORDER BY (project, name, version, path);

CREATE TABLE IF NOT EXISTS artifact_files ON CLUSTER '{cluster}' AS {database}.artifact_files_local
ENGINE = Distributed('{cluster}', '{database}', artifact_files_local, cityHash64(project, name));
