-- Aliases (`latest`, and users' own: `best`, `prod`): one row per (project, name, alias), the
-- newest wins, so an alias points to exactly one version; read with FINAL. A move is one
-- insert of all the aliases that move, stamped with one strictly increasing updated_at.
--
-- Clustered twin of unclustered/0103_artifact_aliases.sql: `artifact_aliases_local` is a replicated table on
-- every node (one Keeper path per shard, one replica per node), and `artifact_aliases` is the
-- Distributed table over all shards that the ingest and users' SQL use.
-- Sharded by cityHash64(project, name): every version, file and alias row of one artifact lands on one shard, so the
-- ingest's FINAL reads (the next version number, where an alias points) are exact.
-- Columns are identical to the unclustered twin (tests/test_deploy_cluster.py checks it).
CREATE TABLE IF NOT EXISTS artifact_aliases_local ON CLUSTER '{cluster}'
(
    project    LowCardinality(String),
    name       String,
    alias      String,
    version    UInt32,
    updated_at DateTime64(6, 'UTC')
)
ENGINE = ReplicatedReplacingMergeTree('/clickhouse/tables/{shard}/{database}/artifact_aliases_local', '{replica}', updated_at)
ORDER BY (project, name, alias);

CREATE TABLE IF NOT EXISTS artifact_aliases ON CLUSTER '{cluster}' AS {database}.artifact_aliases_local
ENGINE = Distributed('{cluster}', '{database}', artifact_aliases_local, cityHash64(project, name));
