-- A run's console output (see unclustered/0122_logs.sql).
--
-- Clustered twin of unclustered/0122_logs.sql: `logs_local` is a replicated table on every node
-- (one Keeper path per shard, one replica per node), and `logs` is the Distributed table over all
-- shards that the ingest and users' SQL use, sharded by cityHash64(project, run_id) so that a
-- retried line collapses on its run's shard.
CREATE TABLE IF NOT EXISTS logs_local ON CLUSTER '{cluster}'
(
    project LowCardinality(String),
    run_id  String,
    ts      DateTime64(6, 'UTC') CODEC(DoubleDelta, ZSTD),
    stream  LowCardinality(String),
    line_no UInt64 CODEC(DoubleDelta, ZSTD),
    text    String CODEC(ZSTD)
)
ENGINE = ReplicatedReplacingMergeTree('/clickhouse/tables/{shard}/{database}/logs_local', '{replica}')
ORDER BY (project, run_id, ts, stream, line_no);

CREATE TABLE IF NOT EXISTS logs ON CLUSTER '{cluster}' AS {database}.logs_local
ENGINE = Distributed('{cluster}', '{database}', logs_local, cityHash64(project, run_id))
