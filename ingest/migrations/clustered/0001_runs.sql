-- One row per run version; read with FINAL (or argMax(..., updated_at)).
--
-- Clustered twin of unclustered/0001_runs.sql: `runs_local` is a replicated table on
-- every node (one Keeper path per shard, one replica per node), and `runs` is the
-- Distributed table over all shards that the ingest and users' SQL use.
-- Sharded by cityHash64(project, run_id): every row of a run, retried batches included,
-- lands on one shard.
-- That matters: ReplacingMergeTree (and FINAL) collapse duplicates only within a
-- shard, never across shards.
-- Columns are identical to the unclustered twin (tests/test_deploy.py checks it).
CREATE TABLE IF NOT EXISTS runs_local ON CLUSTER '{cluster}'
(
    project      LowCardinality(String),
    run_id       String,
    name         String,
    `group`      String,
    job_type     LowCardinality(String),
    tags         Array(String),
    notes        String,
    sweep_id     String,
    config       String CODEC(ZSTD),
    state        LowCardinality(String),
    exit_code    Int32,
    error        String,
    host         String,
    created_at   DateTime64(6, 'UTC'),
    updated_at   DateTime64(6, 'UTC'),
    heartbeat_at DateTime64(6, 'UTC'),
    summary      String CODEC(ZSTD),
    metric_defs  String CODEC(ZSTD)
)
ENGINE = ReplicatedReplacingMergeTree('/clickhouse/tables/{shard}/{database}/runs_local', '{replica}', updated_at)
ORDER BY (project, run_id);

CREATE TABLE IF NOT EXISTS runs ON CLUSTER '{cluster}' AS {database}.runs_local
ENGINE = Distributed('{cluster}', '{database}', runs_local, cityHash64(project, run_id));
