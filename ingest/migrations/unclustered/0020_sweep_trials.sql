-- One row per sweep trial version (claim, heartbeat-driven stop order, end);
-- read with FINAL. A trial is one run of the sweep's program: run_id is the
-- run it logs to. `objective` is the value the controller optimises, read from
-- the run's summary (metric.name: its last value, or its define_metric summary).
CREATE TABLE IF NOT EXISTS sweep_trials
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
ENGINE = ReplacingMergeTree(updated_at)
ORDER BY (sweep_id, run_id)
