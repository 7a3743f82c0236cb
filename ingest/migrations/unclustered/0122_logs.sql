-- A run's console output: the lines its process wrote to stdout and stderr (emitter/console.py
-- tees them, as W&B does; PULSE_CONSOLE=off turns it off). `line_no` counts a process's lines,
-- both streams together, from 1; a resent batch repeats (ts, stream, line_no) and collapses.
CREATE TABLE IF NOT EXISTS logs
(
    project LowCardinality(String),
    run_id  String,
    ts      DateTime64(6, 'UTC') CODEC(DoubleDelta, ZSTD),
    stream  LowCardinality(String),
    line_no UInt64 CODEC(DoubleDelta, ZSTD),
    text    String CODEC(ZSTD)
)
ENGINE = ReplacingMergeTree
ORDER BY (project, run_id, ts, stream, line_no)
