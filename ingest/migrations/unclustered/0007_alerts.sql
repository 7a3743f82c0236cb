-- User alerts (emitter.alert) and Pulse's own gradient-health flags.
CREATE TABLE IF NOT EXISTS alerts
(
    project LowCardinality(String),
    run_id  String,
    ts      DateTime64(6, 'UTC'),
    level   LowCardinality(String),
    title   String,
    text    String
)
ENGINE = ReplacingMergeTree
ORDER BY (project, run_id, ts, title)
