-- Which blobs each project has uploaded (not a public table: users' SQL cannot read it).
-- The blob store is shared by every project, but a project may name a blob in a manifest,
-- skip its upload, or download it only once it has sent those bytes itself: no key learns
-- what another project stores, not even whether it stores it.
--
-- Clustered twin of unclustered/0105_artifact_blobs.sql: `artifact_blobs_local` is a replicated table on
-- every node (one Keeper path per shard, one replica per node), and `artifact_blobs` is the
-- Distributed table over all shards that the ingest and users' SQL use.
-- Sharded by cityHash64(project, sha256): every row of one project's blob lands on one shard.
-- Columns are identical to the unclustered twin (tests/test_deploy_cluster.py checks it).
CREATE TABLE IF NOT EXISTS artifact_blobs_local ON CLUSTER '{cluster}'
(
    project     LowCardinality(String),
    sha256      String,
    size        UInt64,
    uploaded_at DateTime64(6, 'UTC')
)
ENGINE = ReplicatedReplacingMergeTree('/clickhouse/tables/{shard}/{database}/artifact_blobs_local', '{replica}')
ORDER BY (project, sha256);

CREATE TABLE IF NOT EXISTS artifact_blobs ON CLUSTER '{cluster}' AS {database}.artifact_blobs_local
ENGINE = Distributed('{cluster}', '{database}', artifact_blobs_local, cityHash64(project, sha256));
