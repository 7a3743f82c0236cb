-- Media metadata; the bytes live in a content-addressed blob store (uri).
--
-- Clustered twin of unclustered/0005_media.sql: `media_local` is a replicated table on
-- every node (one Keeper path per shard, one replica per node), and `media` is the
-- Distributed table over all shards that the ingest and users' SQL use.
-- Sharded by cityHash64(project, run_id): every row of a run, retried batches included,
-- lands on one shard.
-- That matters: ReplacingMergeTree (and FINAL) collapse duplicates only within a
-- shard, never across shards.
-- Columns are identical to the unclustered twin (tests/test_deploy.py checks it).
CREATE TABLE IF NOT EXISTS media_local ON CLUSTER '{cluster}'
(
    project LowCardinality(String),
    run_id  String,
    key     LowCardinality(String),
    step    Int64,
    idx     UInt32,
    kind    LowCardinality(String),
    uri     String,
    sha256  FixedString(64),
    mime    LowCardinality(String),
    width   UInt32,
    height  UInt32,
    caption String
)
ENGINE = ReplicatedReplacingMergeTree('/clickhouse/tables/{shard}/{database}/media_local', '{replica}')
ORDER BY (project, run_id, key, step, idx);

CREATE TABLE IF NOT EXISTS media ON CLUSTER '{cluster}' AS {database}.media_local
ENGINE = Distributed('{cluster}', '{database}', media_local, cityHash64(project, run_id));
