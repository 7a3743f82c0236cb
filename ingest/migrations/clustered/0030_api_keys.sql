-- API keys, stored hashed (sha256 of a 256-bit random secret). Read with FINAL.
-- project = '' means every project; admin keys manage keys.
--
-- Clustered twin of unclustered/0030_api_keys.sql: `api_keys_local` is a replicated table on
-- every node (one Keeper path per shard, one replica per node), and `api_keys` is the
-- Distributed table over all shards that the ingest and users' SQL use.
-- Sharded by cityHash64(key_id): every version of a key lands on one shard; a lookup by
-- secret reads all shards through the Distributed table.
-- That matters: ReplacingMergeTree (and FINAL) collapse duplicates only within a
-- shard, never across shards.
-- Columns are identical to the unclustered twin (tests/test_deploy.py checks it).
CREATE TABLE IF NOT EXISTS api_keys_local ON CLUSTER '{cluster}'
(
    key_id     String,
    secret_sha256 String,
    project    String,
    read_only  UInt8,
    admin      UInt8,
    revoked    UInt8,
    note       String,
    created_at DateTime64(6, 'UTC'),
    updated_at DateTime64(6, 'UTC')
)
ENGINE = ReplicatedReplacingMergeTree('/clickhouse/tables/{shard}/{database}/api_keys_local', '{replica}', updated_at)
ORDER BY key_id;

CREATE TABLE IF NOT EXISTS api_keys ON CLUSTER '{cluster}' AS {database}.api_keys_local
ENGINE = Distributed('{cluster}', '{database}', api_keys_local, cityHash64(key_id));
