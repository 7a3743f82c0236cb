-- One row per sweep trial version (claim, heartbeat-driven stop order, end);
-- read with FINAL. A trial is one run of the sweep's program: run_id is the
-- run it logs to. `objective` is the value the controller optimises, read from
-- the run's summary (metric.name: its last value, or its define_metric summary).
--
-- Clustered twin of unclustered/0020_sweep_trials.sql: `sweep_trials_local` is a replicated table on
-- every node (one Keeper path per shard, one replica per node), and `sweep_trials` is the
-- Distributed table over all shards that the ingest and users' SQL use.
-- Sharded by cityHash64(project, sweep_id), like `sweeps`: all of a sweep's trials, and
-- every version of each, land on one shard, so the controller's FINAL read is exact.
-- That matters: ReplacingMergeTree (and FINAL) collapse duplicates only within a
-- shard, never across shards.
-- Columns are identical to the unclustered twin (tests/test_deploy.py checks it).
CREATE TABLE IF NOT EXISTS sweep_trials_local ON CLUSTER '{cluster}'
(
    project     LowCardinality(String),
    sweep_id    String,
    run_id      String,
    seq         UInt32,
    grid_index  Int64,
    params      String CODEC(ZSTD),
    state       LowCardinality(String),
    agent_id    String,
    host        String,
    claim_id    String,
    exit_code   Int32,
    error       String,
    stop_reason String,
    objective   Nullable(Float64),
    claimed_at  DateTime64(6, 'UTC'),
    ended_at    Nullable(DateTime64(6, 'UTC')),
    updated_at  DateTime64(6, 'UTC')
)
ENGINE = ReplicatedReplacingMergeTree('/clickhouse/tables/{shard}/{database}/sweep_trials_local', '{replica}', updated_at)
ORDER BY (sweep_id, run_id);

CREATE TABLE IF NOT EXISTS sweep_trials ON CLUSTER '{cluster}' AS {database}.sweep_trials_local
ENGINE = Distributed('{cluster}', '{database}', sweep_trials_local, cityHash64(project, sweep_id));
